//! Fuzzes DPoP proof parsing and verification, with and without an access token and a nonce key.

#![no_main]

use blindfold_actors::crypto::dpop::{NonceKey, ProofContext, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let nonce_key = NonceKey::from_bytes([5; 32]);
    let plain = ProofContext {
        method: "POST",
        url: "http://127.0.0.1:8080/v1/sessions",
        access_token: None,
        now: 1_700_000_000,
        max_age_secs: 60,
        nonce_key: None,
    };
    let _ = verify(proof, &plain);
    let strict = ProofContext { access_token: Some("v1.token"), nonce_key: Some(&nonce_key), ..plain };
    let _ = verify(proof, &strict);
});
