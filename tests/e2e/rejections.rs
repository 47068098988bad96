//! Every way a token or a proof can be wrong, each refused with its code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{TestClient, TestServer};
use blindfold_actors::crypto::dpop::DeviceKey;

async fn signed_in(server: &TestServer) -> TestClient {
    let mut client = server.client();
    let name = format!("user{}", rand_suffix());
    client
        .sign_up(&name, "a fine password")
        .await
        .expect(StatusCode::CREATED);
    client
}

fn rand_suffix() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

fn auth(token: &str, proof: String) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("DPoP {token}")), ("dpop", proof)]
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[tokio::test]
async fn a_token_used_with_a_proof_from_another_key_is_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let token = alice.token.clone().unwrap();

    let thief = DeviceKey::generate_p256().unwrap();
    let proof = thief.proof(
        "GET",
        &alice.url("/v1/me"),
        Some(&token),
        None,
        server.now(),
    );
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, proof), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");

    let thief = DeviceKey::generate_ed25519().unwrap();
    let proof = thief.proof(
        "GET",
        &alice.url("/v1/me"),
        Some(&token),
        None,
        server.now(),
    );
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, proof), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
}

#[tokio::test]
async fn a_replayed_proof_is_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let token = alice.token.clone().unwrap();
    let proof = alice.proof("GET", "/v1/me", Some(&token));

    alice
        .raw(
            Method::GET,
            "/v1/me",
            &auth(&token, proof.clone()),
            Vec::new(),
        )
        .await
        .expect(StatusCode::OK);
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, proof), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
}

#[tokio::test]
async fn a_proof_for_another_method_or_url_is_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let token = alice.token.clone().unwrap();

    let wrong_method = alice.proof("POST", "/v1/me", Some(&token));
    alice
        .raw(
            Method::GET,
            "/v1/me",
            &auth(&token, wrong_method),
            Vec::new(),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");

    let wrong_url = alice.proof("GET", "/v1/me/items", Some(&token));
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, wrong_url), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");

    let other_host = alice.key.proof(
        "GET",
        "https://evil.example/v1/me",
        Some(&token),
        None,
        server.now(),
    );
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, other_host), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
}

#[tokio::test]
async fn a_stale_or_future_iat_is_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let token = alice.token.clone().unwrap();
    let url = alice.url("/v1/me");

    let stale = alice
        .key
        .proof("GET", &url, Some(&token), None, server.now() - 600);
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, stale), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
    let future = alice
        .key
        .proof("GET", &url, Some(&token), None, server.now() + 600);
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, future), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
}

#[tokio::test]
async fn a_missing_or_wrong_ath_is_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let token = alice.token.clone().unwrap();

    let without_ath = alice.proof("GET", "/v1/me", None);
    alice
        .raw(
            Method::GET,
            "/v1/me",
            &auth(&token, without_ath),
            Vec::new(),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
    let wrong_ath = alice.proof("GET", "/v1/me", Some("some other token"));
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, wrong_ath), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
}

#[tokio::test]
async fn alg_none_and_hs256_proofs_are_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let token = alice.token.clone().unwrap();
    let claims = json!({"jti": "j1", "htm": "GET", "htu": alice.url("/v1/me"), "iat": server.now(), "ath": ath(&token)});

    let none_header = json!({"typ": "dpop+jwt", "alg": "none", "jwk": alice.key.public_jwk()});
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(none_header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, unsigned), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");

    let hs_header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": alice.key.public_jwk()});
    let hs = alice.key.sign_jws(&hs_header, &claims);
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, hs), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");

    let mut private = alice.key.public_jwk();
    private["d"] = json!("AAAA");
    let leaky = alice.key.sign_jws(
        &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
        &claims,
    );
    alice
        .raw(Method::GET, "/v1/me", &auth(&token, leaky), Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
}

#[tokio::test]
async fn a_missing_proof_or_token_is_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let token = alice.token.clone().unwrap();

    let only_token = vec![("authorization", format!("DPoP {token}"))];
    alice
        .raw(Method::GET, "/v1/me", &only_token, Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
    let bearer = vec![
        ("authorization", format!("Bearer {token}")),
        ("dpop", alice.proof("GET", "/v1/me", Some(&token))),
    ];
    alice
        .raw(Method::GET, "/v1/me", &bearer, Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    let only_proof = vec![("dpop", alice.proof("GET", "/v1/me", None))];
    alice
        .raw(Method::GET, "/v1/me", &only_proof, Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_tampered_token_is_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let token = alice.token.clone().unwrap();

    for position in [3, token.len() / 2, token.len() - 2] {
        let mut bytes = token.clone().into_bytes();
        bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let proof = alice.proof("GET", "/v1/me", Some(&tampered));
        alice
            .raw(Method::GET, "/v1/me", &auth(&tampered, proof), Vec::new())
            .await
            .expect_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

#[tokio::test]
async fn an_expired_token_is_rejected_and_cannot_be_refreshed() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    server.clock.advance(15 * 60 + 1);
    alice
        .me()
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_expired");
    alice
        .send(Method::POST, "/v1/sessions/refresh", Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_expired");
}

#[tokio::test]
async fn refresh_never_outlives_the_session() {
    let server = TestServer::start_with(|config| {
        config.token_ttl = 600;
        config.session_ttl = 1000;
    })
    .await;
    let mut alice = signed_in(&server).await;
    server.clock.advance(500);
    let refreshed = alice
        .send(Method::POST, "/v1/sessions/refresh", Vec::new())
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        refreshed.json()["expires_in"],
        500,
        "capped by the session expiry"
    );
    assert_eq!(refreshed.json()["session_expires_in"], 500);
    alice.keep_token(&refreshed);
    server.clock.advance(500);
    alice
        .me()
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_expired");
}

#[tokio::test]
async fn a_token_refresh_from_another_device_is_rejected() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    let mut thief = server.client();
    thief.token = alice.token.clone();
    thief
        .send(Method::POST, "/v1/sessions/refresh", Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
}

#[tokio::test]
async fn bad_bodies_are_refused_with_clear_codes_and_change_nothing() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;

    let unknown_field = json!({"username": "x", "password": "long enough", "admin": true});
    server
        .client()
        .send_json(Method::POST, "/v1/accounts", &unknown_field)
        .await
        .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");
    server
        .client()
        .send(Method::POST, "/v1/sessions", b"{not json".to_vec())
        .await
        .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");
    let short = json!({"username": "dave", "password": "short"});
    server
        .client()
        .send_json(Method::POST, "/v1/accounts", &short)
        .await
        .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");

    let too_big = vec![b'x'; 1024 * 1024 + 1];
    alice
        .send(Method::PUT, "/v1/me/items/big", too_big)
        .await
        .expect_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let long_name = format!("/v1/me/items/{}", "n".repeat(256));
    alice
        .send(Method::PUT, &long_name, b"v".to_vec())
        .await
        .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");
    alice
        .send(Method::PUT, "/v1/me/profile", b"[1,2]".to_vec())
        .await
        .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");

    let list = alice
        .send(Method::GET, "/v1/me/items", Vec::new())
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(list["items"], json!([]));

    server
        .client()
        .raw(Method::GET, "/nowhere", &[], Vec::new())
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not_found");
    let not_allowed = server
        .client()
        .raw(Method::PATCH, "/v1/me", &[], Vec::new())
        .await
        .expect_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(not_allowed.headers["allow"], "GET, DELETE");
    let item = server
        .client()
        .raw(Method::POST, "/v1/me/items/x", &[], Vec::new())
        .await
        .expect_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(item.headers["allow"], "GET, PUT, DELETE");
    server
        .client()
        .raw(Method::HEAD, "/healthz", &[], Vec::new())
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_profile_nested_deeper_than_32_levels_is_refused_at_sign_up_and_on_replace() {
    let server = TestServer::start().await;
    let deep = |levels: usize| format!("{{\"a\":{}1{}}}", "[".repeat(levels), "]".repeat(levels));
    let sign_up = format!(
        r#"{{"username":"deep","password":"a fine password","profile":{}}}"#,
        deep(10_000)
    );
    server
        .client()
        .send(Method::POST, "/v1/accounts", sign_up.into_bytes())
        .await
        .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");

    let alice = signed_in(&server).await;
    alice
        .send(Method::PUT, "/v1/me/profile", deep(32).into_bytes())
        .await
        .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");
    alice
        .send(Method::PUT, "/v1/me/profile", deep(10_000).into_bytes())
        .await
        .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");
    alice
        .send(Method::PUT, "/v1/me/profile", deep(31).into_bytes())
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_item_name_with_a_malformed_escape_or_a_control_character_is_refused() {
    let server = TestServer::start().await;
    let alice = signed_in(&server).await;
    for name in ["%", "%Z", "%ZZ", "a%2", "%00", "line%0Abreak", "%7F"] {
        alice
            .send(Method::PUT, &format!("/v1/me/items/{name}"), b"v".to_vec())
            .await
            .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");
    }
    alice
        .send(Method::PUT, "/v1/me/items/100%25", b"v".to_vec())
        .await
        .expect(StatusCode::NO_CONTENT);

    let list = alice
        .send(Method::GET, "/v1/me/items", Vec::new())
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["name"], "100%");
}
