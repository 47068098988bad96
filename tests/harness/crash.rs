//! Crash consistency: the server is killed with SIGKILL at random moments while clients sign up
//! and write items; after each restart every acknowledged write is there and readable, and an
//! offline `blindfold rebuild` reproduces the live projections.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blindfold_actors::crypto::keys::{MasterSecret, ServerKeys};
use blindfold_events::FjallStore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{Client, HIGH_LIMITS, SMALL_KDF, ServerFiles};

/// Rounds of write, kill and restart (`BLINDFOLD_CRASH_ROUNDS` overrides).
const DEFAULT_ROUNDS: usize = 10;
/// Clients writing at once.
const WRITERS: usize = 6;
/// Items each new account writes.
const ITEMS_PER_ACCOUNT: usize = 3;

/// What the server acknowledged for one account.
#[derive(Clone, Debug, Default)]
struct Acked {
    password: String,
    items: BTreeMap<String, Vec<u8>>,
}

type Ledger = Arc<Mutex<BTreeMap<String, Acked>>>;

fn random_below(bound: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % bound
}

/// Signs up accounts and writes their items until the server goes away, recording each write
/// the server acknowledged.
async fn writer(http: reqwest::Client, base: String, round: usize, writer: usize, ledger: Ledger) {
    for n in 0.. {
        let username = format!("crash-{round}-{writer}-{n}");
        let password = format!("password-{round}-{writer}-{n}");
        let mut client = Client::new(&http, &base);
        match client.sign_up(&username, &password, json!({"n": n})).await {
            Ok(reply) if reply.status == StatusCode::CREATED => {}
            _ => return,
        }
        let acked = Acked {
            password,
            items: BTreeMap::new(),
        };
        ledger.lock().unwrap().insert(username.clone(), acked);
        for item in 0..ITEMS_PER_ACCOUNT {
            let name = format!("item-{item}");
            let value = format!("value {round} {writer} {n} {item}").into_bytes();
            let path = format!("/v1/me/items/{name}");
            match client.send(Method::PUT, &path, value.clone()).await {
                Ok(reply) if reply.status == StatusCode::NO_CONTENT => {}
                _ => return,
            }
            ledger
                .lock()
                .unwrap()
                .get_mut(&username)
                .unwrap()
                .items
                .insert(name, value);
        }
    }
}

/// Logs in as each account and reads each acknowledged item back; returns what `/v1/me` and
/// `/v1/me/items` answer per account.
async fn verify(base: &str, accounts: BTreeMap<String, Acked>) -> BTreeMap<String, (Value, Value)> {
    let http = reqwest::Client::new();
    let mut checks = JoinSet::new();
    for (username, acked) in accounts {
        let (http, base) = (http.clone(), base.to_owned());
        checks.spawn(async move {
            let mut client = Client::new(&http, &base);
            let mut login = client.log_in(&username, &acked.password).await.unwrap();
            // The derivation pool sheds load with 503; that is pushback, not a lost account.
            while login.status == StatusCode::SERVICE_UNAVAILABLE {
                tokio::time::sleep(Duration::from_millis(20)).await;
                login = client.log_in(&username, &acked.password).await.unwrap();
            }
            assert_eq!(
                login.status,
                StatusCode::OK,
                "acknowledged account {username} lost"
            );
            for (name, value) in &acked.items {
                let reply = client
                    .send(Method::GET, &format!("/v1/me/items/{name}"), Vec::new())
                    .await
                    .unwrap();
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "acknowledged item of {username} lost"
                );
                assert_eq!(
                    &reply.body, value,
                    "acknowledged item of {username} changed"
                );
            }
            let me = client
                .send(Method::GET, "/v1/me", Vec::new())
                .await
                .unwrap()
                .json();
            let mut items = client
                .send(Method::GET, "/v1/me/items", Vec::new())
                .await
                .unwrap()
                .json();
            assert_eq!(me["username"], username.as_str());
            // A token's own expiry is not part of the projection.
            if let Some(list) = items["items"].as_array_mut() {
                list.sort_by_key(|item| item["name"].as_str().unwrap_or_default().to_owned());
            }
            (username, (me, items))
        });
    }
    let mut views = BTreeMap::new();
    while let Some(result) = checks.join_next().await {
        let (username, view) = result.unwrap();
        views.insert(username, view);
    }
    views
}

fn projection_snapshot(files: &ServerFiles) -> Vec<blindfold_events::fjall_store::RawEntry> {
    let (master, _) = MasterSecret::load_or_create(&files.keyring()).unwrap();
    let keys = ServerKeys::derive(&master, 1).unwrap();
    let store = FjallStore::open(&files.data(), keys.storage.clone()).unwrap();
    store.projection_snapshot().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_rebuild_reproduces_the_live_projections() {
    let rounds = std::env::var("BLINDFOLD_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let files = ServerFiles::new();
    let args: Vec<&str> = SMALL_KDF
        .iter()
        .chain(HIGH_LIMITS.iter())
        .copied()
        .collect();
    let http = reqwest::Client::new();
    let ledger: Ledger = Arc::default();
    let mut previous_round = BTreeMap::new();

    for round in 0..rounds {
        let server = files.start(&args, "warn").await;
        verify(&server.base, previous_round).await;

        let before: Vec<String> = ledger.lock().unwrap().keys().cloned().collect();
        let mut writers = JoinSet::new();
        for w in 0..WRITERS {
            writers.spawn(writer(
                http.clone(),
                server.base.clone(),
                round,
                w,
                Arc::clone(&ledger),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100 + random_below(500))).await;
        server.kill();
        writers.shutdown().await;

        let ledger = ledger.lock().unwrap();
        assert!(
            ledger.len() > before.len(),
            "round {round} acknowledged no sign-up"
        );
        previous_round = ledger
            .iter()
            .filter(|(name, _)| !before.contains(name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }

    // Every acknowledged write of every round, then the live view against the rebuilt one.
    let everything = ledger.lock().unwrap().clone();
    let server = files.start(&args, "warn").await;
    let live = verify(&server.base, everything.clone()).await;
    server.kill();
    let live_snapshot = projection_snapshot(&files);

    let report = files.operator("rebuild");
    // Sign-ups the kill cut off before their answer may exist too: at least the acknowledged.
    let rebuilt_accounts: usize = report
        .split_whitespace()
        .skip_while(|word| *word != "rebuilt")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rebuilt_accounts >= everything.len(), "{report}");
    assert!(report.contains("(0 corrupt streams skipped)"), "{report}");
    assert!(
        projection_snapshot(&files) == live_snapshot,
        "rebuild changed the projections"
    );

    let server = files.start(&args, "warn").await;
    let rebuilt = verify(&server.base, everything).await;
    server.kill();
    assert_eq!(live, rebuilt);
    eprintln!(
        "survived {rounds} SIGKILL rounds with {} acknowledged accounts",
        live.len()
    );
}
