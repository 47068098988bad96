//! The whole journey of one user, over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn a_user_signs_up_stores_secrets_changes_password_and_logs_out_everywhere() {
    let server = TestServer::start().await;
    let mut alice = server.client();

    let signed_up = alice
        .sign_up("Alice", "correct horse battery")
        .await
        .expect(StatusCode::CREATED);
    let body = signed_up.json();
    assert_eq!(body["token_type"], "DPoP");
    assert!(body["recovery_key"].as_str().unwrap().len() >= 32);
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["session_expires_in"].as_u64().unwrap() >= body["expires_in"].as_u64().unwrap());

    let me = alice.me().await.expect(StatusCode::OK).json();
    assert_eq!(me, json!({"username": "Alice", "profile": {}}));

    alice
        .send_json(
            Method::PUT,
            "/v1/me/profile",
            &json!({"email": "alice@example.org"}),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        alice.me().await.json()["profile"]["email"],
        "alice@example.org"
    );

    // Items: put, get, list, overwrite, delete.
    alice
        .send(
            Method::PUT,
            "/v1/me/items/ssh%20key",
            b"-----BEGIN KEY-----".to_vec(),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    alice
        .send(Method::PUT, "/v1/me/items/notes", vec![0, 159, 146, 150])
        .await
        .expect(StatusCode::NO_CONTENT);
    let got = alice
        .send(Method::GET, "/v1/me/items/ssh%20key", Vec::new())
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.body, b"-----BEGIN KEY-----");
    assert_eq!(got.headers["content-type"], "application/octet-stream");
    assert_eq!(
        alice
            .send(Method::GET, "/v1/me/items/notes", Vec::new())
            .await
            .body,
        vec![0, 159, 146, 150]
    );

    let list = alice
        .send(Method::GET, "/v1/me/items", Vec::new())
        .await
        .expect(StatusCode::OK)
        .json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["notes", "ssh key"]);
    assert_eq!(list["items"][1]["size"], 19);

    alice
        .send(Method::PUT, "/v1/me/items/notes", b"v2".to_vec())
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        alice
            .send(Method::GET, "/v1/me/items/notes", Vec::new())
            .await
            .body,
        b"v2"
    );
    alice
        .send(Method::DELETE, "/v1/me/items/notes", Vec::new())
        .await
        .expect(StatusCode::NO_CONTENT);
    alice
        .send(Method::GET, "/v1/me/items/notes", Vec::new())
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not_found");
    alice
        .send(Method::DELETE, "/v1/me/items/notes", Vec::new())
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not_found");

    // Password change: the old token dies, the answer carries a new one, data stays readable.
    let old_token = alice.token.clone();
    let changed = alice
        .send_json(Method::PUT, "/v1/me/password", &json!({"current_password": "correct horse battery", "new_password": "tr0ub4dor&3 is worse"}))
        .await
        .expect(StatusCode::OK);
    alice.keep_token(&changed);
    assert_ne!(alice.token, old_token);
    let mut stale = server.client();
    stale.key =
        blindfold_actors::crypto::dpop::DeviceKey::from_bytes(&alice.key.to_bytes()).unwrap();
    stale.token = old_token;
    stale
        .me()
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_revoked");

    // Log in with the new password only.
    let mut laptop = server.client();
    laptop
        .log_in("alice", "correct horse battery")
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    laptop
        .log_in("ALICE", "tr0ub4dor&3 is worse")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        laptop
            .send(Method::GET, "/v1/me/items/ssh%20key", Vec::new())
            .await
            .body,
        b"-----BEGIN KEY-----"
    );

    // Refresh: a new token for the same device and session.
    let refreshed = laptop
        .send(Method::POST, "/v1/sessions/refresh", Vec::new())
        .await
        .expect(StatusCode::OK);
    let before_refresh = laptop.token.clone();
    laptop.keep_token(&refreshed);
    assert_ne!(laptop.token, before_refresh);
    laptop.me().await.expect(StatusCode::OK);

    // Log out everywhere: every token so far is dead, on every device.
    laptop
        .send(Method::DELETE, "/v1/sessions", Vec::new())
        .await
        .expect(StatusCode::NO_CONTENT);
    laptop
        .me()
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    alice
        .me()
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    laptop
        .send(Method::POST, "/v1/sessions/refresh", Vec::new())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_revoked");
}

#[tokio::test]
async fn recovery_replaces_the_password_ends_sessions_and_rotates_the_recovery_key() {
    let server = TestServer::start().await;
    let mut bob = server.client();
    let recovery_key = bob.sign_up("bob", "first password").await.json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.send(Method::PUT, "/v1/me/items/diary", b"dear diary".to_vec())
        .await
        .expect(StatusCode::NO_CONTENT);

    let mut phone = server.client();
    let mangled = recovery_key.to_lowercase().replace('-', " ");
    let recovered = phone
        .send_json(
            Method::POST,
            "/v1/recovery",
            &json!({"username": "bob", "recovery_key": mangled, "new_password": "second password"}),
        )
        .await
        .expect(StatusCode::OK);
    phone.keep_token(&recovered);
    let next_key = recovered.json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(next_key, recovery_key);

    assert_eq!(
        phone
            .send(Method::GET, "/v1/me/items/diary", Vec::new())
            .await
            .body,
        b"dear diary"
    );
    bob.me()
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    server
        .client()
        .log_in("bob", "second password")
        .await
        .expect(StatusCode::OK);

    let reused =
        json!({"username": "bob", "recovery_key": recovery_key, "new_password": "third password"});
    server
        .client()
        .send_json(Method::POST, "/v1/recovery", &reused)
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn a_taken_username_is_refused_whatever_its_case() {
    let server = TestServer::start().await;
    server
        .client()
        .sign_up("Carol", "password one")
        .await
        .expect(StatusCode::CREATED);
    server
        .client()
        .sign_up("carol", "password two")
        .await
        .expect_problem(StatusCode::CONFLICT, "username_taken");
}

#[tokio::test]
async fn health_and_metrics_answer_without_authentication() {
    let server = TestServer::start().await;
    let client = server.client();
    client
        .raw(Method::GET, "/healthz", &[], Vec::new())
        .await
        .expect(StatusCode::OK);
    let metrics = client
        .raw(Method::GET, "/metrics", &[], Vec::new())
        .await
        .expect(StatusCode::OK);
    assert!(
        String::from_utf8(metrics.body)
            .unwrap()
            .contains("blindfold_http_responses_total")
    );
}

#[tokio::test]
async fn a_profile_comes_back_exactly_as_it_was_written() {
    let server = TestServer::start().await;
    let mut quinn = server.client();
    quinn
        .sign_up("quinn", "quinn's password")
        .await
        .expect(StatusCode::CREATED);

    let profile = br#"{"n":123456789012345678901234567890,"f":0.1000000000000000055511151231257827,"s":"\u00e9"}"#;
    quinn
        .send(Method::PUT, "/v1/me/profile", profile.to_vec())
        .await
        .expect(StatusCode::NO_CONTENT);
    let me = String::from_utf8(quinn.me().await.expect(StatusCode::OK).body).unwrap();
    assert!(me.contains(std::str::from_utf8(profile).unwrap()), "{me}");

    for not_an_object in [&b"[1]"[..], b"\"text\"", b"42", b"null"] {
        quinn
            .send(Method::PUT, "/v1/me/profile", not_an_object.to_vec())
            .await
            .expect_problem(StatusCode::BAD_REQUEST, "invalid_request");
    }
}
