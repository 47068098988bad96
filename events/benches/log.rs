//! Costs of the event log: one envelope, one group commit, and a rebuild of 100,000 events.

use std::hint::black_box;
use std::time::Duration;

use blindfold_events::{
    Append, Event, EventStore, FjallStore, Handle, ItemId, KdfParams, PasswordWrap, RecordedEvent,
    StorageKey,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const REBUILD_EVENTS: u64 = 100_000;
const ACCOUNTS: u64 = 1_000;

fn handle(n: u64) -> Handle {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    Handle(bytes)
}

fn created() -> Event {
    Event::AccountCreated {
        sealed_username: vec![1; 40],
        sealed_profile: vec![2; 200],
        password: PasswordWrap {
            salt: [3; 16],
            params: KdfParams::default(),
            wrapped_user_key: vec![4; 60],
        },
        wrapped_user_key_recovery: vec![5; 60],
    }
}

/// A typical event: a 256-byte item value with its sealed name.
fn item_put(n: u64) -> Event {
    Event::ItemPut {
        item_id: ItemId([(n % 16) as u8; 32]),
        sealed_name: vec![6; 40],
        sealed_value: vec![7; 256 + 28],
        size: 256,
    }
}

fn envelope(c: &mut Criterion) {
    let recorded = RecordedEvent {
        version: 7,
        at: 1_700_000_000,
        event: item_put(1),
    };
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal_and_open_item_put_256b", |b| {
        b.iter(|| {
            blindfold_events::seal_and_open_for_benches(&[9; 32], &handle(1), black_box(&recorded))
        })
    });
    group.finish();
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path(), StorageKey::from_bytes([8; 32])).unwrap();
    let mut versions = vec![0u64; 64];
    let mut group = c.benchmark_group("append_batch");
    group.throughput(Throughput::Elements(64));
    group.bench_function("64_appends_one_fsync", |b| {
        b.iter(|| {
            let appends = (0..64u64)
                .map(|n| {
                    let expected = versions[n as usize];
                    let event = if expected == 0 {
                        created()
                    } else {
                        item_put(n)
                    };
                    Append {
                        handle: handle(n),
                        expected_version: expected,
                        at: 1,
                        events: vec![event],
                    }
                })
                .collect();
            for (n, result) in store.append_batch(appends).into_iter().enumerate() {
                versions[n] = result.unwrap();
            }
        })
    });
    group.finish();
}

fn rebuild(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path(), StorageKey::from_bytes([8; 32])).unwrap();
    let per_account = REBUILD_EVENTS / ACCOUNTS;
    for round in 0..per_account {
        let appends = (0..ACCOUNTS)
            .map(|n| {
                let event = if round == 0 {
                    created()
                } else {
                    item_put(round)
                };
                Append {
                    handle: handle(n),
                    expected_version: round,
                    at: 1,
                    events: vec![event],
                }
            })
            .collect();
        assert!(store.append_batch(appends).iter().all(Result::is_ok));
    }

    let mut group = c.benchmark_group("rebuild");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(REBUILD_EVENTS));
    group.bench_function("100k_events_1k_accounts", |b| {
        b.iter(|| assert_eq!(store.rebuild().unwrap().events, REBUILD_EVENTS))
    });
    group.finish();
}

criterion_group!(benches, envelope, group_commit, rebuild);
criterion_main!(benches);
