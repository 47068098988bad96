//! What an online attacker learns and can do: nothing about which names exist, no more guesses
//! than the limits allow, no way to make the server fall over; and failed actors come back.

use std::time::Duration;

use blindfold_actors::Role;
use blindfold_events::KdfParams;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let server = TestServer::start().await;
    server
        .client()
        .sign_up("erin", "the real password")
        .await
        .expect(StatusCode::CREATED);

    let wrong_password = server.client().log_in("erin", "not the password").await;
    let unknown_user = server
        .client()
        .log_in("nobody-by-this-name", "not the password")
        .await;
    let invalid_name = server.client().log_in("\u{0}", "not the password").await;
    let empty_password = server.client().log_in("erin", "").await;
    let huge_password = server.client().log_in("erin", &"p".repeat(5000)).await;

    for reply in [
        &unknown_user,
        &invalid_name,
        &empty_password,
        &huge_password,
    ] {
        assert_eq!(reply.status, wrong_password.status);
        assert_eq!(reply.body, wrong_password.body);
    }
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.code(), "invalid_credentials");
}

#[tokio::test]
async fn recovery_for_an_unknown_user_and_with_a_wrong_recovery_key_gets_the_same_answer() {
    let server = TestServer::start().await;
    server
        .client()
        .sign_up("gwen", "the real password")
        .await
        .expect(StatusCode::CREATED);
    let wrong_key = "0000-0000-0000-0000-0000-0000-0000-0000";
    let recover = |username: &str, recovery_key: &str| json!({"username": username, "recovery_key": recovery_key, "new_password": "a new password"});

    let wrong_recovery_key = server
        .client()
        .send_json(Method::POST, "/v1/recovery", &recover("gwen", wrong_key))
        .await;
    let unknown_user = server
        .client()
        .send_json(
            Method::POST,
            "/v1/recovery",
            &recover("nobody-by-this-name", wrong_key),
        )
        .await;
    let invalid_name = server
        .client()
        .send_json(Method::POST, "/v1/recovery", &recover("\u{0}", wrong_key))
        .await;
    for reply in [&unknown_user, &invalid_name] {
        assert_eq!(reply.status, wrong_recovery_key.status);
        assert_eq!(reply.body, wrong_recovery_key.body);
    }
    assert_eq!(wrong_recovery_key.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_recovery_key.code(), "invalid_credentials");

    let malformed_known = server
        .client()
        .send_json(Method::POST, "/v1/recovery", &recover("gwen", "%%%"))
        .await;
    let malformed_unknown = server
        .client()
        .send_json(
            Method::POST,
            "/v1/recovery",
            &recover("nobody-by-this-name", "%%%"),
        )
        .await;
    assert_eq!(malformed_known.status, malformed_unknown.status);
    assert_eq!(malformed_known.body, malformed_unknown.body);
    assert_eq!(malformed_known.code(), "invalid_request");
}

#[tokio::test]
async fn a_full_derivation_queue_answers_503_at_once_and_other_routes_keep_answering() {
    let slow = KdfParams {
        m_cost_kib: 32 * 1024,
        t_cost: 6,
        p_cost: 1,
    };
    let server = TestServer::start_with(|config| {
        config.kdf_workers = 1;
        config.kdf_queue = 0;
        config.kdf_params = slow;
    })
    .await;
    let mut frank = server.client();
    frank
        .sign_up("frank", "frank's password")
        .await
        .expect(StatusCode::CREATED);

    let attempts = (0..6).map(|_| {
        let mut client = server.client();
        async move { client.log_in("frank", "frank's password").await }
    });
    let (replies, me) = tokio::join!(futures_util::future::join_all(attempts), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        frank.me().await
    });

    me.expect(StatusCode::OK);
    let refused: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !refused.is_empty(),
        "one worker and no queue must refuse concurrent logins"
    );
    for reply in refused {
        assert_eq!(reply.code(), "overloaded");
        assert!(reply.headers.contains_key("retry-after"));
    }
    assert!(replies.iter().any(|r| r.status == StatusCode::OK));
    server
        .client()
        .raw(Method::GET, "/healthz", &[], Vec::new())
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn failed_actors_are_restarted_and_the_next_request_succeeds() {
    let server = TestServer::start().await;
    let mut grace = server.client();
    grace
        .sign_up("grace", "grace's password")
        .await
        .expect(StatusCode::CREATED);

    for (n, role) in [
        Role::Sealer,
        Role::Ledger,
        Role::KdfWorker(0),
        Role::KdfWorker(1),
    ]
    .into_iter()
    .enumerate()
    {
        server.server.actors.fail(role);
        wait_for_restarts(&server, n as u64 + 1).await;
        grace.me().await.expect(StatusCode::OK);
        grace
            .send(Method::PUT, "/v1/me/items/after-restart", b"ok".to_vec())
            .await
            .expect(StatusCode::NO_CONTENT);
        grace
            .log_in("grace", "grace's password")
            .await
            .expect(StatusCode::OK);
    }
}

async fn wait_for_restarts(server: &TestServer, count: u64) {
    for _ in 0..200 {
        if server.server.actors.restarts() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the supervisor did not restart the failed actor");
}

#[tokio::test]
async fn guessing_past_the_limit_is_refused_for_known_and_unknown_names_alike() {
    let server = TestServer::start_with(|config| {
        config.limit_per_handle.burst = 3;
        config.limit_per_handle.per_minute = 3;
    })
    .await;
    server
        .client()
        .sign_up("heidi", "heidi's password")
        .await
        .expect(StatusCode::CREATED);
    // Sign-up took one attempt from heidi's budget; a minute refills it.
    server.clock.advance(60);

    for name in ["heidi", "no-such-user"] {
        for _ in 0..3 {
            server
                .client()
                .log_in(name, "wrong guess")
                .await
                .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
        }
        let limited = server
            .client()
            .log_in(name, "wrong guess")
            .await
            .expect_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(limited.headers.contains_key("retry-after"));
    }
}

#[tokio::test]
async fn guessing_at_a_password_does_not_keep_the_owner_from_recovering() {
    let server = TestServer::start_with(|config| {
        config.limit_per_handle.burst = 2;
        config.limit_per_handle.per_minute = 2;
    })
    .await;
    let recovery_key = server
        .client()
        .sign_up("ivy", "ivy's password")
        .await
        .json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_owned();
    server.clock.advance(60);
    for _ in 0..2 {
        server.client().log_in("ivy", "wrong guess").await;
    }
    server
        .client()
        .log_in("ivy", "ivy's password")
        .await
        .expect_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    let recover = |key: &str| json!({"username": "ivy", "recovery_key": key, "new_password": "ivy's new password"});
    let wrong_key = "0000-0000-0000-0000-0000-0000-0000-0000";
    server
        .client()
        .send_json(Method::POST, "/v1/recovery", &recover(wrong_key))
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    server
        .client()
        .send_json(Method::POST, "/v1/recovery", &recover(&recovery_key))
        .await
        .expect(StatusCode::OK);
    // Recovery has a budget of its own, and it runs out too.
    server
        .client()
        .send_json(Method::POST, "/v1/recovery", &recover(wrong_key))
        .await
        .expect_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn dpop_nonces_are_demanded_and_then_accepted() {
    let server = TestServer::start_with(|config| config.dpop_nonces = true).await;
    let client = server.client();
    let body =
        serde_json::to_vec(&json!({"username": "ivan", "password": "ivan's password"})).unwrap();

    let first = client
        .send(Method::POST, "/v1/accounts", body.clone())
        .await
        .expect_problem(StatusCode::UNAUTHORIZED, "use_dpop_nonce");
    let nonce = first.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let proof = client.key.proof(
        "POST",
        &client.url("/v1/accounts"),
        None,
        Some(&nonce),
        server.now(),
    );
    client
        .raw(
            Method::POST,
            "/v1/accounts",
            &[("dpop", proof), ("content-type", "application/json".into())],
            body,
        )
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn guessing_the_password_through_a_stolen_session_is_limited_too() {
    let server = TestServer::start_with(|config| {
        config.limit_per_handle.burst = 3;
        config.limit_per_handle.per_minute = 3;
    })
    .await;
    let mut olga = server.client();
    olga.sign_up("olga", "olga's password")
        .await
        .expect(StatusCode::CREATED);
    server.clock.advance(60);

    let guess = json!({"current_password": "a guess", "new_password": "whatever it is"});
    for _ in 0..2 {
        olga.send_json(Method::PUT, "/v1/me/password", &guess)
            .await
            .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    olga.send_json(
        Method::DELETE,
        "/v1/me",
        &json!({"password": "another guess"}),
    )
    .await
    .expect_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    olga.send_json(
        Method::DELETE,
        "/v1/me",
        &json!({"password": "olga's password"}),
    )
    .await
    .expect_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    olga.me().await.expect(StatusCode::OK);
}

#[tokio::test]
async fn proofs_without_a_live_token_are_not_remembered() {
    let server = TestServer::start_with(|config| config.replay_capacity = 4).await;
    let mut pete = server.client();
    pete.sign_up("pete", "pete's password")
        .await
        .expect(StatusCode::CREATED);

    // Forty well-formed proofs carrying a fake token: each refused, none kept.
    let fake = "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for _ in 0..40 {
        let proof = pete.proof("GET", "/v1/me", Some(fake));
        let headers = [("authorization", format!("DPoP {fake}")), ("dpop", proof)];
        pete.raw(Method::GET, "/v1/me", &headers, Vec::new())
            .await
            .expect_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    pete.me().await.expect(StatusCode::OK);
}

#[tokio::test]
async fn a_full_replay_cache_answers_503_with_the_wait_until_room_comes_back() {
    // Sign-up spends one proof; the cache holds two.
    let server = TestServer::start_with(|config| config.replay_capacity = 2).await;
    let mut quinn = server.client();
    quinn
        .sign_up("quinn", "quinn's password")
        .await
        .expect(StatusCode::CREATED);
    quinn.me().await.expect(StatusCode::OK);

    let refused = quinn
        .me()
        .await
        .expect_problem(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The first proof is forgotten a window (60 s) and a second after its iat.
    assert!((55..=61).contains(&wait), "Retry-After {wait}");

    server.clock.advance(wait);
    quinn.me().await.expect(StatusCode::OK);
}
