//! Storage figures on one data set: 100,000 accounts of 10 events each (1,000,000 events).
//!
//! - **rebuild against a plain scan:** the time `rebuild` takes to replay every event (open
//!   each envelope, apply it, write the projections), beside a raw iteration over the same
//!   `events` keyspace that decrypts nothing. The scan runs before and after the rebuild; the
//!   faster of the two is the yardstick.
//! - **cold start:** a fresh process opens the store and reads one account; it reports the time
//!   of each step and its resident memory (`VmRSS`, `VmHWM` from `/proc/self/status`).
//!
//! Run: `cargo bench -p blindfold-events --bench storage`. `STORAGE_ACCOUNTS` and
//! `STORAGE_EVENTS_PER_ACCOUNT` change the data set (defaults 100000 and 10).

use std::path::Path;
use std::time::{Duration, Instant};

use blindfold_events::{
    Append, Event, EventStore, FjallStore, Handle, ItemId, KdfParams, PasswordWrap, StorageKey,
};
use fjall::{Database, KeyspaceCreateOptions};

/// Appends per write batch while loading the data set.
const LOAD_BATCH: u64 = 10_000;

fn storage_key() -> StorageKey {
    StorageKey::from_bytes([8; 32])
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn handle(n: u64) -> Handle {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    // The rest varies too, as a real HMAC output does, so keys do not share long prefixes.
    bytes[8..16].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
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

/// A 256-byte item value with its sealed name.
fn item_put(n: u64) -> Event {
    Event::ItemPut {
        item_id: ItemId([(n % 16) as u8; 32]),
        sealed_name: vec![6; 40],
        sealed_value: vec![7; 256 + 28],
        size: 256,
    }
}

/// Writes `accounts` streams of `per_account` events, round by round, `LOAD_BATCH` per batch.
fn load(dir: &Path, accounts: u64, per_account: u64) -> Duration {
    let store = FjallStore::open(dir, storage_key()).expect("store");
    let started = Instant::now();
    for round in 0..per_account {
        let mut first = 0;
        while first < accounts {
            let last = (first + LOAD_BATCH).min(accounts);
            let appends = (first..last)
                .map(|n| Append {
                    handle: handle(n),
                    expected_version: round,
                    at: 1,
                    events: vec![if round == 0 {
                        created()
                    } else {
                        item_put(round)
                    }],
                })
                .collect();
            assert!(
                store.append_batch(appends).iter().all(Result::is_ok),
                "load failed"
            );
            first = last;
        }
    }
    started.elapsed()
}

/// Iterates the raw `events` keyspace: (entries, bytes, time).
fn plain_scan(dir: &Path) -> (u64, u64, Duration) {
    let db = Database::builder(dir).open().expect("database");
    let events = db
        .keyspace("events", KeyspaceCreateOptions::default)
        .expect("keyspace");
    let started = Instant::now();
    let (mut entries, mut bytes) = (0u64, 0u64);
    for guard in events.iter() {
        let (key, value) = guard.into_inner().expect("entry");
        entries += 1;
        bytes += (key.len() + value.len()) as u64;
    }
    (entries, bytes, started.elapsed())
}

fn rebuild(dir: &Path) -> (u64, Duration) {
    let store = FjallStore::open(dir, storage_key()).expect("store");
    let started = Instant::now();
    let report = store.rebuild().expect("rebuild");
    (report.events, started.elapsed())
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In a fresh process: open the store, read one account, report times and memory.
fn cold_start(dir: &Path, accounts: u64) {
    let baseline = status_kib("VmRSS:");
    let started = Instant::now();
    let store = FjallStore::open(dir, storage_key()).expect("store");
    let opened = started.elapsed();
    let found = store
        .account(&handle(accounts / 2))
        .expect("read")
        .is_some();
    let first_read = started.elapsed() - opened;
    println!(
        "cold start: open {opened:.2?}, first read {first_read:.2?} (found: {found}), \
         total {:.2?}; VmRSS {} KiB (before open {baseline} KiB), VmHWM {} KiB",
        started.elapsed(),
        status_kib("VmRSS:"),
        status_kib("VmHWM:"),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let accounts = env_u64("STORAGE_ACCOUNTS", 100_000);
    let per_account = env_u64("STORAGE_EVENTS_PER_ACCOUNT", 10);
    if let Some(at) = args.iter().position(|a| a == "--cold-start") {
        let dir = args.get(at + 1).expect("a directory after --cold-start");
        cold_start(Path::new(dir), accounts);
        return;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let total = accounts * per_account;
    let loaded = load(dir.path(), accounts, per_account);
    println!(
        "loaded {total} events ({accounts} accounts x {per_account}) in {loaded:.2?} \
         ({:.0} events/s, {LOAD_BATCH} appends per batch)",
        total as f64 / loaded.as_secs_f64()
    );

    let (entries, bytes, scan_before) = plain_scan(dir.path());
    assert_eq!(entries, total, "plain scan saw every event");
    let (events, rebuilt) = rebuild(dir.path());
    assert_eq!(events, total, "rebuild replayed every event");
    let (_, _, scan_after) = plain_scan(dir.path());
    let scan = scan_before.min(scan_after);

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "plain scan: {entries} entries, {} MiB, {scan_before:.2?} before and {scan_after:.2?} \
         after the rebuild ({:.0} events/s at best)",
        bytes / (1024 * 1024),
        rate(scan)
    );
    println!(
        "rebuild: {events} events in {rebuilt:.2?} ({:.0} events/s)",
        rate(rebuilt)
    );
    println!(
        "rebuild speed / plain scan speed = {:.1} %",
        100.0 * scan.as_secs_f64() / rebuilt.as_secs_f64()
    );

    for _ in 0..2 {
        let exe = std::env::current_exe().expect("own path");
        let status = std::process::Command::new(exe)
            .arg("--cold-start")
            .arg(dir.path())
            .status()
            .expect("cold-start process");
        assert!(status.success(), "cold-start process failed");
    }
}
