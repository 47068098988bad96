//! Cost of checking one DPoP proof, the work every authenticated request pays.

use std::hint::black_box;

use blindfold_actors::crypto::dpop::{DeviceKey, ProofContext, ReplayCache, verify};
use criterion::{Criterion, criterion_group, criterion_main};

const NOW: u64 = 1_700_000_000;
const URL: &str = "https://id.example/v1/items";
const TOKEN: &str = "v1.an-access-token-of-realistic-length-0123456789abcdefghijklmnopqrstuvwxyz";

fn context() -> ProofContext<'static> {
    ProofContext {
        method: "GET",
        url: URL,
        access_token: Some(TOKEN),
        now: NOW,
        max_age_secs: 60,
        nonce_key: None,
    }
}

fn verification(c: &mut Criterion) {
    let keys = [
        ("dpop/verify/es256", DeviceKey::generate_p256()),
        ("dpop/verify/eddsa", DeviceKey::generate_ed25519()),
    ];
    for (name, key) in keys {
        let Ok(key) = key else { return };
        let proof = key.proof("GET", URL, Some(TOKEN), None, NOW);
        c.bench_function(name, |b| {
            b.iter(|| verify(black_box(&proof), black_box(&context())))
        });
    }
}

fn replay_cache(c: &mut Criterion) {
    let cache = ReplayCache::new(1 << 20, 60);
    let mut counter = 0u64;
    c.bench_function("dpop/replay/check_and_remember", |b| {
        b.iter(|| {
            counter += 1;
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&counter.to_le_bytes());
            // Time moves on one second every 1000 proofs, so entries expire as in service.
            let now = NOW + counter / 1000;
            black_box(cache.check_and_remember(digest, now, now))
        })
    });
}

criterion_group!(benches, verification, replay_cache);
criterion_main!(benches);
