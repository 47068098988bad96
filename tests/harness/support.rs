//! The server binary as a child process, and a DPoP client for it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blindfold_actors::crypto::dpop::DeviceKey;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Argon2 flags small enough for tests that do not measure the derivation itself.
pub const SMALL_KDF: [&str; 4] = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"];

/// Rate-limit and per-address connection flags high enough that only the derivation pool
/// pushes back.
pub const HIGH_LIMITS: [&str; 6] = [
    "--rate-per-address",
    "1000000",
    "--rate-per-username",
    "1000000",
    "--max-connections-per-address",
    "4096",
];

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One run of `blindfold serve` as a child process, its stderr appended to `log`.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
}

/// Where a server keeps its data, keyring and log: a temporary directory holding all three, the
/// keyring outside the data directory.
pub struct ServerFiles {
    pub root: tempfile::TempDir,
}

impl ServerFiles {
    pub fn new() -> ServerFiles {
        ServerFiles {
            root: tempfile::tempdir().unwrap(),
        }
    }
    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }
    pub fn keyring(&self) -> PathBuf {
        self.root.path().join("blindfold.keyring")
    }
    pub fn log(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// Starts the server on a free port with `args` and `RUST_LOG=rust_log`, and waits until
    /// `/healthz` answers.
    pub async fn start(&self, args: &[&str], rust_log: &str) -> ServerProcess {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_blindfold"))
            .arg("serve")
            .arg("--data")
            .arg(self.data())
            .arg("--keyring")
            .arg(self.keyring())
            .args(["--listen", &listen])
            .args(args)
            .env_remove("BLINDFOLD_MASTER_KEY")
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let server = ServerProcess {
            child,
            base: format!("http://{listen}"),
        };
        server.wait_until_healthy().await;
        server
    }

    /// Runs a `blindfold` operator command (`rebuild`, `inspect`) on the stopped data directory.
    pub fn operator(&self, command: &str) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_blindfold"))
            .arg(command)
            .arg("--data")
            .arg(self.data())
            .arg("--keyring")
            .arg(self.keyring())
            .env_remove("BLINDFOLD_MASTER_KEY")
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{command} failed: {stdout}{stderr}"
        );
        stdout + &stderr
    }
}

impl ServerProcess {
    async fn wait_until_healthy(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("{}/healthz", self.base);
            if let Ok(reply) = http.get(url).send().await
                && reply.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "the server did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap the process.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device key and, once signed in, a token.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub key: DeviceKey,
    pub token: Option<String>,
    /// The URL proofs are made for, when it is not `base` (servers behind one public name).
    pub public_url: Option<String>,
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Client {
    pub fn new(http: &reqwest::Client, base: &str) -> Client {
        Client {
            http: http.clone(),
            base: base.to_owned(),
            key: DeviceKey::generate_p256().unwrap(),
            token: None,
            public_url: None,
        }
    }

    /// Sends with a fresh proof and, when signed in, the token. `Err` when the connection failed.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Reply, reqwest::Error> {
        let url = format!("{}{path}", self.base);
        let token = self.token.as_deref();
        let htu = format!("{}{path}", self.public_url.as_deref().unwrap_or(&self.base));
        let proof = self.key.proof(method.as_str(), &htu, token, None, now());
        let mut request = self
            .http
            .request(method, &url)
            .header("dpop", proof)
            .body(body);
        if let Some(token) = token {
            request = request.header("authorization", format!("DPoP {token}"));
        }
        if !path.starts_with("/v1/me/items/") {
            request = request.header("content-type", "application/json");
        }
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?.to_vec();
        Ok(Reply { status, body })
    }

    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Reply, reqwest::Error> {
        self.send(method, path, serde_json::to_vec(body).unwrap())
            .await
    }

    /// Keeps the token of a successful token response.
    pub fn keep_token(&mut self, reply: &Reply) {
        if reply.status.is_success()
            && let Some(token) = reply.json()["access_token"].as_str()
        {
            self.token = Some(token.to_owned());
        }
    }

    pub async fn sign_up(
        &mut self,
        username: &str,
        password: &str,
        profile: Value,
    ) -> Result<Reply, reqwest::Error> {
        let body = json!({"username": username, "password": password, "profile": profile});
        let reply = self.send_json(Method::POST, "/v1/accounts", &body).await?;
        self.keep_token(&reply);
        Ok(reply)
    }

    pub async fn log_in(
        &mut self,
        username: &str,
        password: &str,
    ) -> Result<Reply, reqwest::Error> {
        let body = json!({"username": username, "password": password});
        let reply = self.send_json(Method::POST, "/v1/sessions", &body).await?;
        self.keep_token(&reply);
        Ok(reply)
    }
}

/// Every file under `dir`, whole.
pub fn every_file(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.push((path, bytes));
            }
        }
    }
    files
}
