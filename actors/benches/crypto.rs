//! Costs of blindfold's per-request cryptography: sealing and opening a token, wrapping and
//! unwrapping a user key, and one Argon2id derivation at the default parameters, with a fresh and
//! with a reused working memory.

use std::hint::black_box;

use blindfold_actors::crypto::keys::{MasterSecret, TokenKeys};
use blindfold_actors::crypto::password::{
    Password, Pepper, WrappingKey, derive_password_key, derive_password_key_with_memory, kdf_memory,
};
use blindfold_actors::crypto::token::{Methods, TokenClaims};
use blindfold_actors::crypto::user_key::{LoginMethod, UserKey, unwrap_user_key, wrap_user_key};
use blindfold_events::{Handle, KdfParams};
use criterion::{Criterion, criterion_group, criterion_main};

fn claims() -> TokenClaims {
    TokenClaims {
        handle: Handle([1; 32]),
        user_key: UserKey::from_bytes([2; 32]),
        epoch: 3,
        jkt: [4; 32],
        issued_at: 1_700_000_000,
        expires_at: 1_700_000_900,
        session_expires_at: 1_700_043_200,
        methods: Methods::PASSWORD,
        token_id: [5; 16],
    }
}

fn tokens(c: &mut Criterion) {
    let keys = TokenKeys::derive(&MasterSecret::generate().unwrap(), 1);
    let claims = claims();
    let token = keys.seal(&claims).unwrap();

    c.bench_function("token/seal", |b| {
        b.iter(|| keys.seal(black_box(&claims)).unwrap())
    });
    c.bench_function("token/open", |b| {
        b.iter(|| keys.open(black_box(&token), 1_700_000_100).unwrap())
    });
}

fn user_key_wraps(c: &mut Criterion) {
    let key = WrappingKey::from_bytes([6; 32]);
    let user_key = UserKey::from_bytes([7; 32]);
    let handle = Handle([8; 32]);
    let wrapped = wrap_user_key(&key, &user_key, &handle, LoginMethod::Password).unwrap();

    c.bench_function("user_key/wrap", |b| {
        b.iter(|| wrap_user_key(&key, black_box(&user_key), &handle, LoginMethod::Password))
    });
    c.bench_function("user_key/unwrap", |b| {
        b.iter(|| unwrap_user_key(&key, black_box(&wrapped), &handle, LoginMethod::Password))
    });
}

fn argon2id(c: &mut Criterion) {
    let params = KdfParams::default();
    let pepper = Pepper::from_bytes([9; 32]);
    let password = Password::from("correct horse battery staple");
    let salt = [10; 16];

    let mut group = c.benchmark_group("argon2id/m19MiB_t2_p1");
    group.sample_size(20);
    group.bench_function("fresh_memory", |b| {
        b.iter(|| derive_password_key(black_box(&password), &salt, &params, &pepper).unwrap())
    });
    let mut memory = kdf_memory(&params).unwrap();
    group.bench_function("reused_memory", |b| {
        b.iter(|| {
            derive_password_key_with_memory(&password, &salt, &params, &pepper, &mut memory)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, tokens, user_key_wraps, argon2id);
criterion_main!(benches);
