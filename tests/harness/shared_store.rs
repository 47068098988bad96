//! Two `blindfold serve` processes on one PostgreSQL database, behind one public URL, as behind
//! a load balancer: an account made on one is there on the other, a write on one is read on
//! the other, a revocation on one holds on the other, and a proof spent on one is a replay on
//! the other.
//!
//! Needs `BLINDFOLD_TEST_POSTGRES_URL`; without it the test says it is skipped, unless
//! `BLINDFOLD_REQUIRE_POSTGRES=1`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Client, HIGH_LIMITS, SMALL_KDF, ServerFiles, now};

/// The one public URL both servers answer for.
const PUBLIC_URL: &str = "http://blindfold.test";

/// A schema of its own in the test database, dropped at the end.
struct Schema {
    admin_url: String,
    name: String,
    url: String,
}

/// Runs `sql` on the test database from a thread of its own: the sync client must not run on a
/// thread that drives tokio.
fn run_sql(url: &str, sql: String) -> Result<(), postgres::Error> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        postgres::Client::connect(&url, postgres::NoTls)?.batch_execute(&sql)
    })
    .join()
    .unwrap()
}

impl Schema {
    fn create() -> Option<Schema> {
        let Some(url) = std::env::var("BLINDFOLD_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            let required = std::env::var("BLINDFOLD_REQUIRE_POSTGRES").as_deref() == Ok("1");
            assert!(!required, "BLINDFOLD_TEST_POSTGRES_URL is not set");
            println!("skipped: BLINDFOLD_TEST_POSTGRES_URL not set");
            return None;
        };
        let name = format!("harness_{}_{}", std::process::id(), now());
        run_sql(&url, format!("CREATE SCHEMA {name}")).unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        let schema_url = format!("{url}{separator}options=-csearch_path%3D{name}");
        Some(Schema {
            admin_url: url,
            name,
            url: schema_url,
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = run_sql(
            &self.admin_url,
            format!("DROP SCHEMA {} CASCADE", self.name),
        );
    }
}

/// A client of the server at `base` that makes its proofs for the shared public URL.
fn client_of(http: &reqwest::Client, base: &str) -> Client {
    let mut client = Client::new(http, base);
    client.public_url = Some(PUBLIC_URL.to_owned());
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_serve_one_set_of_accounts() {
    let Some(schema) = Schema::create() else {
        return;
    };
    let files = ServerFiles::new();
    let mut args = vec!["--store-url", &schema.url, "--public-url", PUBLIC_URL];
    args.extend(SMALL_KDF);
    args.extend(HIGH_LIMITS);
    let one = files.start(&args, "info").await;
    let other = files.start(&args, "info").await;
    let http = reqwest::Client::new();

    // Sign up and write on one server.
    let mut alice = client_of(&http, &one.base);
    let signed_up = alice
        .sign_up(
            "alice",
            "correct horse battery",
            json!({"email": "a@example.org"}),
        )
        .await
        .unwrap();
    assert_eq!(signed_up.status, StatusCode::CREATED);
    let put = alice
        .send(
            Method::PUT,
            "/v1/me/items/notes",
            b"written on one".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(put.status, StatusCode::NO_CONTENT);

    // Log in and read on the other.
    let mut laptop = client_of(&http, &other.base);
    let logged_in = laptop
        .log_in("alice", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(logged_in.status, StatusCode::OK);
    let me = laptop
        .send(Method::GET, "/v1/me", Vec::new())
        .await
        .unwrap();
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "alice");
    assert_eq!(me.json()["profile"]["email"], "a@example.org");
    let notes = laptop
        .send(Method::GET, "/v1/me/items/notes", Vec::new())
        .await
        .unwrap();
    assert_eq!(notes.body, b"written on one");

    // A name taken on one server is taken on the other.
    let mut mallory = client_of(&http, &other.base);
    let taken = mallory
        .sign_up("alice", "another password", json!({}))
        .await
        .unwrap();
    assert_eq!(taken.status, StatusCode::CONFLICT);

    // A proof spent on the other server is a replay on the first.
    let token = laptop.token.clone().unwrap();
    let htu = format!("{PUBLIC_URL}/v1/me");
    let proof = laptop.key.proof("GET", &htu, Some(&token), None, now());
    for (base, expected) in [
        (&other.base, StatusCode::OK),
        (&one.base, StatusCode::UNAUTHORIZED),
    ] {
        let reply = http
            .get(format!("{base}/v1/me"))
            .header("dpop", &proof)
            .header("authorization", format!("DPoP {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), expected);
    }

    // Logging out everywhere on the first server ends the session opened on the other.
    let revoked = alice
        .send(Method::DELETE, "/v1/sessions", Vec::new())
        .await
        .unwrap();
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = laptop
        .send(Method::GET, "/v1/me", Vec::new())
        .await
        .unwrap();
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.json()["code"], "token_revoked");

    drop((one, other));
    let log = std::fs::read_to_string(files.log()).unwrap();
    assert!(log.contains("store.opened_shared"), "{log}");
}
