//! blindfold's access token beside three other symmetric token formats, all carrying the same
//! claims, all measured in one run on one machine:
//!
//! - blindfold: postcard claims padded to a fixed size, AES-256-GCM-SIV (`TokenKeys::seal/open`);
//! - PASETO v4.local (pasetors): JSON claims, XChaCha20 + BLAKE2b-MAC, claim validation;
//! - Branca (branca): the same JSON as payload, XChaCha20-Poly1305;
//! - JWT HS256 (jsonwebtoken): the same JSON, HMAC-SHA256, signed but not encrypted.
//!
//! The JSON claims spell out what blindfold's binary claims hold: the handle, user key, device
//! thumbprint and token id as base64url, the epoch, the three times and the login methods.
//! Every `open` checks expiry, as blindfold's does.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use blindfold_actors::crypto::keys::{MasterSecret, TokenKeys};
use blindfold_actors::crypto::token::{Methods, TokenClaims};
use blindfold_actors::crypto::user_key::UserKey;
use blindfold_events::Handle;
use criterion::{Criterion, criterion_group, criterion_main};
use pasetors::claims::{Claims, ClaimsValidationRules};
use pasetors::keys::{Generate, SymmetricKey};
use pasetors::token::UntrustedToken;
use pasetors::version4::V4;
use pasetors::{Local, local};
use serde::{Deserialize, Serialize};

const HANDLE: [u8; 32] = [1; 32];
const USER_KEY: [u8; 32] = [2; 32];
const EPOCH: u64 = 3;
const JKT: [u8; 32] = [4; 32];
const TOKEN_ID: [u8; 16] = [5; 16];
const LIFETIME: u64 = 900;
const SESSION: u64 = 43_200;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The claims as JSON, for the formats whose payload is JSON (or, for Branca, any bytes).
#[derive(Serialize, Deserialize)]
struct JsonClaims {
    sub: String,
    uk: String,
    epoch: u64,
    jkt: String,
    iat: u64,
    exp: u64,
    sxp: u64,
    amr: u8,
    jti: String,
}

fn json_claims(iat: u64) -> JsonClaims {
    JsonClaims {
        sub: b64(&HANDLE),
        uk: b64(&USER_KEY),
        epoch: EPOCH,
        jkt: b64(&JKT),
        iat,
        exp: iat + LIFETIME,
        sxp: iat + SESSION,
        amr: Methods::PASSWORD.bits(),
        jti: b64(&TOKEN_ID),
    }
}

fn blindfold(c: &mut Criterion) {
    let Ok(master) = MasterSecret::generate() else { return };
    let keys = TokenKeys::derive(&master, 1);
    let iat = now();
    let claims = TokenClaims {
        handle: Handle(HANDLE),
        user_key: UserKey::from_bytes(USER_KEY),
        epoch: EPOCH,
        jkt: JKT,
        issued_at: iat,
        expires_at: iat + LIFETIME,
        session_expires_at: iat + SESSION,
        methods: Methods::PASSWORD,
        token_id: TOKEN_ID,
    };
    let Ok(token) = keys.seal(&claims) else { return };
    println!("token length: blindfold {} bytes", token.len());

    c.bench_function("token/blindfold/seal", |b| b.iter(|| keys.seal(black_box(&claims))));
    c.bench_function("token/blindfold/open", |b| {
        b.iter(|| keys.open(black_box(&token), iat + 1).is_ok())
    });
}

fn paseto_claims(json: &JsonClaims) -> Claims {
    let mut claims = Claims::new_expires_in(&Duration::from_secs(LIFETIME)).unwrap();
    claims.subject(&json.sub).unwrap();
    claims.token_identifier(&json.jti).unwrap();
    claims.add_additional("uk", json.uk.clone()).unwrap();
    claims.add_additional("epoch", json.epoch).unwrap();
    claims.add_additional("jkt", json.jkt.clone()).unwrap();
    claims.add_additional("sxp", json.sxp).unwrap();
    claims.add_additional("amr", json.amr).unwrap();
    claims
}

fn paseto_v4_local(c: &mut Criterion) {
    let key = SymmetricKey::<V4>::generate().unwrap();
    let claims = paseto_claims(&json_claims(now()));
    let rules = ClaimsValidationRules::new();
    let token = local::encrypt(&key, &claims, None, None).unwrap();
    println!("token length: paseto v4.local {} bytes", token.len());

    c.bench_function("token/paseto_v4_local/seal", |b| {
        b.iter(|| local::encrypt(&key, black_box(&claims), None, None).is_ok())
    });
    c.bench_function("token/paseto_v4_local/open", |b| {
        b.iter(|| {
            let untrusted = UntrustedToken::<Local, V4>::try_from(black_box(token.as_str()));
            untrusted.and_then(|t| local::decrypt(&key, &t, &rules, None, None)).is_ok()
        })
    });
}

fn branca(c: &mut Criterion) {
    let key = [6u8; 32];
    let payload = serde_json::to_vec(&json_claims(now())).unwrap();
    let timestamp = now() as u32;
    let token = branca::encode(&payload, &key, timestamp).unwrap();
    println!("token length: branca {} bytes", token.len());

    c.bench_function("token/branca/seal", |b| {
        b.iter(|| branca::encode(black_box(&payload), &key, timestamp).is_ok())
    });
    c.bench_function("token/branca/open", |b| {
        b.iter(|| {
            let payload = branca::decode(black_box(&token), &key, LIFETIME as u32);
            payload.is_ok_and(|p| serde_json::from_slice::<JsonClaims>(&p).is_ok())
        })
    });
}

fn jwt_hs256(c: &mut Criterion) {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    let encoding = EncodingKey::from_secret(&[7; 32]);
    let decoding = DecodingKey::from_secret(&[7; 32]);
    let header = Header::new(Algorithm::HS256);
    let validation = Validation::new(Algorithm::HS256);
    let claims = json_claims(now());
    let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
    println!("token length: jwt hs256 {} bytes", token.len());

    c.bench_function("token/jwt_hs256/seal", |b| {
        b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &encoding).is_ok())
    });
    c.bench_function("token/jwt_hs256/open", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<JsonClaims>(black_box(&token), &decoding, &validation).is_ok()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = blindfold, paseto_v4_local, branca, jwt_hs256
}
criterion_main!(benches);
