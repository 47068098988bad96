//! TOTP, backup codes, recovery with a second factor, account deletion and the security log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::rfc6238;
use crate::support::{TestClient, TestServer};

struct Enrolled {
    client: TestClient,
    secret: Vec<u8>,
    backup_codes: Vec<String>,
    recovery_key: String,
}

async fn enrolled(server: &TestServer, username: &str, password: &str) -> Enrolled {
    let mut client = server.client();
    let recovery_key = client.sign_up(username, password).await.json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let begun = client
        .send(Method::POST, "/v1/me/totp", Vec::new())
        .await
        .expect(StatusCode::OK)
        .json();
    let secret = rfc6238::base32_decode(begun["secret"].as_str().unwrap());
    assert!(
        begun["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/blindfold:")
    );

    let wrong = json!({"enrollment": begun["enrollment"], "code": "000000"});
    let wrong_code = client
        .send_json(Method::POST, "/v1/me/totp/confirm", &wrong)
        .await;
    if rfc6238::code(&secret, server.now()) != "000000" {
        wrong_code.expect_problem(StatusCode::UNAUTHORIZED, "invalid_second_factor");
    }
    let confirm =
        json!({"enrollment": begun["enrollment"], "code": rfc6238::code(&secret, server.now())});
    let confirmed = client
        .send_json(Method::POST, "/v1/me/totp/confirm", &confirm)
        .await
        .expect(StatusCode::OK)
        .json();
    let backup_codes: Vec<String> = confirmed["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backup_codes.len(), 10);
    Enrolled {
        client,
        secret,
        backup_codes,
        recovery_key,
    }
}

fn login_body(username: &str, password: &str, totp: Option<&str>) -> Value {
    match totp {
        Some(code) => json!({"username": username, "password": password, "totp": code}),
        None => json!({"username": username, "password": password}),
    }
}

#[tokio::test]
async fn with_totp_on_a_login_needs_a_fresh_code_and_each_code_works_once() {
    let server = TestServer::start().await;
    let user = enrolled(&server, "judy", "judy's password").await;
    let device = server.client();

    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("judy", "judy's password", None),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "second_factor_required");
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("judy", "wrong password", None),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");

    let confirm_code = rfc6238::code(&user.secret, server.now());
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("judy", "judy's password", Some(&confirm_code)),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_second_factor");

    server.clock.advance(30);
    let code = rfc6238::code(&user.secret, server.now());
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("judy", "judy's password", Some(&code)),
        )
        .await
        .expect(StatusCode::OK);
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("judy", "judy's password", Some(&code)),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_second_factor");

    server.clock.advance(60);
    let later = rfc6238::code(&user.secret, server.now() - 30);
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("judy", "judy's password", Some(&later)),
        )
        .await
        .expect(StatusCode::OK);
    let earlier = rfc6238::code(&user.secret, server.now() - 60);
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("judy", "judy's password", Some(&earlier)),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_second_factor");
}

#[tokio::test]
async fn a_backup_code_works_once_and_regenerating_invalidates_the_old_set() {
    let server = TestServer::start().await;
    let mut user = enrolled(&server, "ken", "ken's password").await;
    let device = server.client();

    let first = user.backup_codes[0].to_lowercase().replace('-', " ");
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("ken", "ken's password", Some(&first)),
        )
        .await
        .expect(StatusCode::OK);
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("ken", "ken's password", Some(&first)),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_second_factor");

    server.clock.advance(30);
    let code = json!({"code": rfc6238::code(&user.secret, server.now())});
    let fresh = user
        .client
        .send_json(Method::POST, "/v1/me/backup-codes", &code)
        .await
        .expect(StatusCode::OK)
        .json();
    let old = &user.backup_codes[1];
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("ken", "ken's password", Some(old)),
        )
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_second_factor");
    let new = fresh["backup_codes"][0].as_str().unwrap();
    device
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("ken", "ken's password", Some(new)),
        )
        .await
        .expect(StatusCode::OK);

    // Turning TOTP off needs a code; then the password alone is enough again.
    server.clock.advance(30);
    let off = json!({"code": rfc6238::code(&user.secret, server.now())});
    user.client
        .send_json(Method::DELETE, "/v1/me/totp", &off)
        .await
        .expect(StatusCode::NO_CONTENT);
    user.client
        .log_in("ken", "ken's password")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn recovery_with_totp_on_needs_a_code_and_ends_every_earlier_session() {
    let server = TestServer::start().await;
    let user = enrolled(&server, "lena", "lena's password").await;

    let mut device = server.client();
    let without = json!({"username": "lena", "recovery_key": user.recovery_key, "new_password": "lena's new password"});
    device
        .send_json(Method::POST, "/v1/recovery", &without)
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "second_factor_required");

    server.clock.advance(30);
    let with = json!({"username": "lena", "recovery_key": user.recovery_key, "new_password": "lena's new password", "totp": rfc6238::code(&user.secret, server.now())});
    let recovered = device
        .send_json(Method::POST, "/v1/recovery", &with)
        .await
        .expect(StatusCode::OK);
    device.keep_token(&recovered);
    device.me().await.expect(StatusCode::OK);
    user.client
        .me()
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_revoked");

    let again = json!({"username": "lena", "recovery_key": user.recovery_key, "new_password": "another password", "totp": user.backup_codes[0]});
    server
        .client()
        .send_json(Method::POST, "/v1/recovery", &again)
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn a_deleted_account_is_gone_for_good_and_its_name_is_free_again() {
    let server = TestServer::start().await;
    let mut mallory = server.client();
    mallory
        .sign_up("ShreddedMike", "mike's password")
        .await
        .expect(StatusCode::CREATED);
    mallory
        .send_json(
            Method::PUT,
            "/v1/me/profile",
            &json!({"email": "shredded-canary@example.org"}),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    mallory
        .send(
            Method::PUT,
            "/v1/me/items/shredded-item-name",
            b"ShreddedCanaryValue".to_vec(),
        )
        .await
        .expect(StatusCode::NO_CONTENT);

    mallory
        .send_json(Method::DELETE, "/v1/me", &json!({"password": "not it"}))
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    mallory
        .send_json(
            Method::DELETE,
            "/v1/me",
            &json!({"password": "mike's password"}),
        )
        .await
        .expect(StatusCode::NO_CONTENT);

    mallory
        .me()
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    let deleted = server
        .client()
        .log_in("shreddedmike", "mike's password")
        .await;
    let unknown = server
        .client()
        .log_in("never-existed", "mike's password")
        .await;
    assert_eq!(
        (deleted.status, deleted.body),
        (unknown.status, unknown.body)
    );

    let mut again = server.client();
    again
        .sign_up("ShreddedMike", "a new password")
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(again.me().await.json()["profile"], json!({}));
    assert_eq!(
        again
            .send(Method::GET, "/v1/me/items", Vec::new())
            .await
            .json()["items"],
        json!([])
    );

    // The old account's token is worthless against the new account of the same name, even
    // though both start at epoch 0: nothing it asks for happens.
    for (method, path, body) in [
        (Method::GET, "/v1/me", Vec::new()),
        (Method::PUT, "/v1/me/items/planted", b"x".to_vec()),
        (Method::PUT, "/v1/me/profile", b"{}".to_vec()),
        (Method::POST, "/v1/sessions/refresh", Vec::new()),
        (Method::DELETE, "/v1/sessions", Vec::new()),
    ] {
        mallory
            .send(method, path, body)
            .await
            .expect_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    }
    again.me().await.expect(StatusCode::OK);
    assert_eq!(
        again
            .send(Method::GET, "/v1/me/items", Vec::new())
            .await
            .json()["items"],
        json!([])
    );
    again
        .send(Method::GET, "/v1/me/items/shredded-item-name", Vec::new())
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not_found");

    for canary in [
        "shredded-canary@example.org",
        "ShreddedCanaryValue",
        "shredded-item-name",
    ] {
        assert!(
            !crate::blindness::found_in_dir(server.data.path(), canary.as_bytes()),
            "{canary} on disk"
        );
    }
}

#[tokio::test]
async fn the_security_log_lists_what_happened_newest_first_and_only_the_user_can_read_it() {
    let server = TestServer::start().await;
    let mut user = enrolled(&server, "nina", "nina's password").await;
    let device = user.client.key.thumbprint().short();

    server.clock.advance(30);
    server
        .client()
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("nina", "nina's password", Some("123456")),
        )
        .await;
    let code = rfc6238::code(&user.secret, server.now());
    let logged_in = user
        .client
        .send_json(
            Method::POST,
            "/v1/sessions",
            &login_body("nina", "nina's password", Some(&code)),
        )
        .await
        .expect(StatusCode::OK);
    user.client.keep_token(&logged_in);
    let changed = user
        .client
        .send_json(Method::PUT, "/v1/me/password", &json!({"current_password": "nina's password", "new_password": "nina's second password"}))
        .await
        .expect(StatusCode::OK);
    user.client.keep_token(&changed);

    let log = user
        .client
        .send(Method::GET, "/v1/me/security-log", Vec::new())
        .await
        .expect(StatusCode::OK)
        .json();
    let events: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "password_changed",
            "login",
            "second_factor_failed",
            "totp_enabled",
            "account_created"
        ]
    );
    let newest = &log["entries"][0];
    assert_eq!(newest["device"], device.as_str());
    assert!(newest["at"].as_u64().unwrap() >= server.now() - 1);

    user.client
        .send(Method::DELETE, "/v1/sessions", Vec::new())
        .await
        .expect(StatusCode::NO_CONTENT);
    user.client
        .log_in("nina", "nina's second password")
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "second_factor_required");

    for plaintext in [
        "second_factor_failed",
        "password_changed",
        "totp_enabled",
        device.as_str(),
    ] {
        assert!(
            !crate::blindness::found_in_dir(server.data.path(), plaintext.as_bytes()),
            "{plaintext} on disk"
        );
    }
}
