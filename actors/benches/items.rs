//! Cost of sealing and opening one item value (AES-256-GCM-SIV under a key derived from the user
//! key, bound to the item and its version) at 100 B, 4 KiB and 1 MiB, the largest value the
//! server accepts by default.

use std::hint::black_box;

use blindfold_actors::crypto::data::{open_item_value, seal_item_value};
use blindfold_actors::crypto::user_key::UserKey;
use blindfold_events::{Handle, ItemId};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SIZES: [(&str, usize); 3] = [("100B", 100), ("4KiB", 4 * 1024), ("1MiB", 1024 * 1024)];

fn item_values(c: &mut Criterion) {
    let user_key = UserKey::from_bytes([1; 32]);
    let handle = Handle([2; 32]);
    let item_id = ItemId([3; 32]);
    let version = 7;

    let mut group = c.benchmark_group("item_value");
    for (label, size) in SIZES {
        let value = vec![4u8; size];
        let sealed = seal_item_value(&user_key, &handle, &item_id, version, &value).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", label), &value, |b, value| {
            b.iter(|| seal_item_value(&user_key, &handle, &item_id, version, black_box(value)))
        });
        group.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, sealed| {
            b.iter(|| open_item_value(&user_key, &handle, &item_id, version, black_box(sealed)))
        });
    }
    group.finish();
}

criterion_group!(benches, item_values);
criterion_main!(benches);
