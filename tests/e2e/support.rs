//! A real server on a real socket, and a client that speaks DPoP to it.

use std::sync::Arc;

use blindfold::server::{self, Clock, ManualClock, RunningServer, ServerConfig};
use blindfold_actors::crypto::dpop::DeviceKey;
use blindfold_actors::crypto::keys::{MasterSecret, ServerKeys};
use blindfold_events::{FjallStore, KdfParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Argon2 parameters small enough for tests; production uses the defaults.
pub const TEST_KDF: KdfParams = KdfParams {
    m_cost_kib: 1024,
    t_cost: 1,
    p_cost: 1,
};

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub data: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let master = MasterSecret::generate().unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: String::new(),
            kdf_params: TEST_KDF,
            kdf_workers: 2,
            ..ServerConfig::default()
        };
        config.limit_per_address.burst = 10_000;
        config.limit_per_address.per_minute = 10_000;
        config.limit_per_handle.burst = 1_000;
        config.limit_per_handle.per_minute = 1_000;
        tweak(&mut config);

        let clock = Arc::new(ManualClock::starting_now());
        let server = Self::launch(
            &master,
            data.path(),
            config,
            Arc::clone(&clock) as Arc<dyn Clock>,
        )
        .await;
        let base = format!("http://{}", server.addr);
        TestServer {
            server,
            base,
            clock,
            data,
        }
    }

    async fn launch(
        master: &MasterSecret,
        dir: &std::path::Path,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> RunningServer {
        let keys = ServerKeys::derive(master, 1).unwrap();
        let store = Arc::new(FjallStore::open(dir, keys.storage.clone()).unwrap());
        server::start(config, keys, store, clock).await.unwrap()
    }

    pub fn client(&self) -> TestClient {
        TestClient::new(self, DeviceKey::generate_p256().unwrap())
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }
}

/// A client holding one device key and, once signed in, one token.
pub struct TestClient {
    pub http: reqwest::Client,
    pub base: String,
    pub key: DeviceKey,
    pub token: Option<String>,
    pub clock: Arc<ManualClock>,
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The problem `code`, if this is an error.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Reply {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    #[track_caller]
    pub fn expect_problem(self, status: StatusCode, code: &str) -> Reply {
        assert_eq!(
            (self.status, self.code().as_str()),
            (status, code),
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.headers["content-type"], "application/problem+json");
        self
    }
}

impl TestClient {
    pub fn new(server: &TestServer, key: DeviceKey) -> TestClient {
        TestClient {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            key,
            token: None,
            clock: Arc::clone(&server.clock),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A valid proof for this request, with `ath` when a token is given.
    pub fn proof(&self, method: &str, path: &str, token: Option<&str>) -> String {
        self.key
            .proof(method, &self.url(path), token, None, self.clock.now())
    }

    /// Sends a request with exactly the headers given.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends a request with a fresh proof and, if signed in, the token.
    pub async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> Reply {
        let token = self.token.as_deref();
        let mut headers = vec![("dpop", self.proof(method.as_str(), path, token))];
        if let Some(token) = token {
            headers.push(("authorization", format!("DPoP {token}")));
        }
        if !body.is_empty() && !path.starts_with("/v1/me/items/") {
            headers.push(("content-type", "application/json".into()));
        }
        self.raw(method, path, &headers, body).await
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.send(method, path, serde_json::to_vec(body).unwrap())
            .await
    }

    /// Keeps the token of a token response.
    pub fn keep_token(&mut self, reply: &Reply) {
        self.token = reply.json()["access_token"].as_str().map(str::to_owned);
    }

    pub async fn sign_up(&mut self, username: &str, password: &str) -> Reply {
        let reply = self
            .send_json(
                Method::POST,
                "/v1/accounts",
                &json!({"username": username, "password": password}),
            )
            .await;
        if reply.status == StatusCode::CREATED {
            self.keep_token(&reply);
        }
        reply
    }

    pub async fn log_in(&mut self, username: &str, password: &str) -> Reply {
        let reply = self
            .send_json(
                Method::POST,
                "/v1/sessions",
                &json!({"username": username, "password": password}),
            )
            .await;
        if reply.status == StatusCode::OK {
            self.keep_token(&reply);
        }
        reply
    }

    pub async fn me(&self) -> Reply {
        self.send(Method::GET, "/v1/me", Vec::new()).await
    }
}
