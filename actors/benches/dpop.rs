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

/// The bare signature checks on the same proofs, to show what parsing and claim checks add.
fn primitives_alone(c: &mut Criterion) {
    use base64::Engine as _;
    let base64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let Ok(key) = DeviceKey::generate_p256() else {
        return;
    };
    let proof = key.proof("GET", URL, Some(TOKEN), None, NOW);
    let Some((signing_input, signature)) = proof.rsplit_once('.') else {
        return;
    };
    let Ok(signature) = base64url.decode(signature) else {
        return;
    };
    let jwk = key.public_jwk();
    let coordinate = |name: &str| base64url.decode(jwk[name].as_str().unwrap_or_default());
    let (Ok(x), Ok(y)) = (coordinate("x"), coordinate("y")) else {
        return;
    };
    let point = [&[4u8][..], &x, &y].concat();
    c.bench_function("dpop/reference/ring_es256_verify", |b| {
        b.iter(|| {
            let key = ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                black_box(&point),
            );
            key.verify(black_box(signing_input.as_bytes()), black_box(&signature))
        })
    });

    let signing_key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let public = signing_key.verifying_key().to_bytes();
    let message = signing_input.as_bytes();
    let signature = ed25519_dalek::Signer::sign(&signing_key, message);
    c.bench_function("dpop/reference/dalek_eddsa_verify_strict", |b| {
        b.iter(|| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(black_box(&public));
            key.map(|key| key.verify_strict(black_box(message), black_box(&signature)))
        })
    });
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

criterion_group!(benches, verification, primitives_alone, replay_cache);
criterion_main!(benches);
