//! `blindfold bench`: a load generator for a running server.
//!
//! Many concurrent clients, each with its own device key and account, drive the real HTTP API
//! with real DPoP proofs, one operation at a time for a fixed time each: log-in, `GET /v1/me`,
//! item put, item get, refresh. For each it reports throughput and the p50 and p99 latency of
//! the requests that succeeded, and counts the refused ones by status and code.
//!
//! It also measures one Argon2id derivation at the server's parameters, in this run, and from it
//! the log-in ceiling: `workers ÷ one derivation's time`, the most log-ins per second the
//! server's derivation pool can complete. Log-in throughput is reported as a share of it. Given
//! the server's process id it samples the server's resident memory during the log-in flood.
//!
//! It is a measuring tool for a server you run yourself: it creates accounts with throwaway
//! passwords and must never be pointed at a server holding real users.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blindfold_actors::crypto::dpop::DeviceKey;
use blindfold_actors::crypto::password::{Password, Pepper, derive_password_key};
use blindfold_events::KdfParams;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// `blindfold bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the server under test; must equal its public URL (DPoP `htu`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,

    /// Concurrent clients, each with its own device key and account.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,

    /// Seconds each operation is driven for.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,

    /// Size of the item values put and got, in bytes.
    #[arg(long, default_value_t = 256)]
    pub item_bytes: usize,

    /// The server's key-derivation workers (its --kdf-workers) [default: one per core].
    #[arg(long)]
    pub kdf_workers: Option<usize>,

    /// The server's Argon2id memory in KiB (its --kdf-memory-kib).
    #[arg(long, default_value_t = 19 * 1024)]
    pub kdf_memory_kib: u32,

    /// The server's Argon2id passes (its --kdf-iterations).
    #[arg(long, default_value_t = 2)]
    pub kdf_iterations: u32,

    /// Device keys: ES256 (P-256) or EdDSA (Ed25519).
    #[arg(long, default_value = "ES256", value_parser = ["ES256", "EdDSA"])]
    pub algorithm: String,

    /// Process id of the server, to sample its resident memory (Linux /proc) during log-ins.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Why a load run stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A device key could not be made.
    #[error("device key: {0}")]
    DeviceKey(String),
    /// The accounts the clients use could not be created.
    #[error("setup: {0}")]
    Setup(String),
    /// The reference derivation failed.
    #[error("reference derivation failed")]
    Derivation,
}

/// The operations measured, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    LogIn,
    Me,
    ItemPut,
    ItemGet,
    Refresh,
}

impl Operation {
    const ALL: [Operation; 5] = [
        Operation::LogIn,
        Operation::Me,
        Operation::ItemPut,
        Operation::ItemGet,
        Operation::Refresh,
    ];

    fn label(self) -> &'static str {
        match self {
            Operation::LogIn => "login (POST /v1/sessions)",
            Operation::Me => "GET /v1/me",
            Operation::ItemPut => "item put (PUT /v1/me/items/{name})",
            Operation::ItemGet => "item get (GET /v1/me/items/{name})",
            Operation::Refresh => "refresh (POST /v1/sessions/refresh)",
        }
    }
}

/// One simulated device: its key, its account and its current token.
struct Client {
    http: reqwest::Client,
    base: String,
    key: DeviceKey,
    username: String,
    password: String,
    token: Option<String>,
    item: Vec<u8>,
}

/// What one request came back with.
struct Answer {
    status: StatusCode,
    code: String,
    token: Option<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Client {
    /// Sends one request with a fresh proof and, if `with_token`, the current token.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        with_token: bool,
    ) -> Answer {
        let url = format!("{}{}", self.base, path);
        let token = if with_token {
            self.token.as_deref()
        } else {
            None
        };
        let proof = self
            .key
            .proof(method.as_str(), &url, token, None, unix_now());
        let mut request = self.http.request(method, &url).header("dpop", proof);
        if let Some(token) = token {
            request = request.header("authorization", format!("DPoP {token}"));
        }
        if !body.is_empty() {
            request = request.header("content-type", content_type).body(body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let bytes = response.bytes().await.unwrap_or_default();
                let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
                let field = |name: &str| {
                    json.as_ref()
                        .and_then(|j| j[name].as_str())
                        .map(str::to_owned)
                };
                Answer {
                    status,
                    code: field("code").unwrap_or_default(),
                    token: field("access_token"),
                }
            }
            Err(_) => Answer {
                status: StatusCode::BAD_GATEWAY,
                code: "transport_error".into(),
                token: None,
            },
        }
    }

    fn credentials(&self) -> Vec<u8> {
        json!({ "username": self.username, "password": self.password })
            .to_string()
            .into_bytes()
    }

    async fn sign_up(&mut self) -> Answer {
        let answer = self
            .send(
                Method::POST,
                "/v1/accounts",
                self.credentials(),
                "application/json",
                false,
            )
            .await;
        if answer.token.is_some() {
            self.token.clone_from(&answer.token);
        }
        answer
    }

    /// Runs one operation; keeps the new token of log-in and refresh.
    async fn run(&mut self, operation: Operation) -> Answer {
        const JSON: &str = "application/json";
        const BYTES: &str = "application/octet-stream";
        let answer = match operation {
            Operation::LogIn => {
                self.send(
                    Method::POST,
                    "/v1/sessions",
                    self.credentials(),
                    JSON,
                    false,
                )
                .await
            }
            Operation::Me => {
                self.send(Method::GET, "/v1/me", Vec::new(), JSON, true)
                    .await
            }
            Operation::ItemPut => {
                let item = self.item.clone();
                self.send(Method::PUT, "/v1/me/items/bench", item, BYTES, true)
                    .await
            }
            Operation::ItemGet => {
                self.send(Method::GET, "/v1/me/items/bench", Vec::new(), BYTES, true)
                    .await
            }
            Operation::Refresh => {
                self.send(Method::POST, "/v1/sessions/refresh", Vec::new(), JSON, true)
                    .await
            }
        };
        if answer.token.is_some() {
            self.token.clone_from(&answer.token);
        }
        answer
    }
}

/// What one client saw during one operation's run.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    refused: BTreeMap<String, u64>,
}

/// Drives `operation` from every client until `deadline`; gives the clients back.
async fn drive(
    clients: Vec<Client>,
    operation: Operation,
    seconds: u64,
) -> (Vec<Client>, Tally, Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let answer = client.run(operation).await;
                    if answer.status.is_success() {
                        tally.latencies.push(sent.elapsed());
                        continue;
                    }
                    let key = format!("{} {}", answer.status.as_u16(), answer.code);
                    *tally.refused.entry(key).or_default() += 1;
                    // Refused for load (503, 429): back off briefly, as a real client would.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (client, tally)
            })
        })
        .collect();

    let mut clients = Vec::new();
    let mut total = Tally::default();
    for task in tasks {
        if let Ok((client, tally)) = task.await {
            clients.push(client);
            total.latencies.extend(tally.latencies);
            for (key, count) in tally.refused {
                *total.refused.entry(key).or_default() += count;
            }
        }
    }
    (clients, total, started.elapsed())
}

/// The `q` quantile of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted
        .get(rank - 1)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Resident memory of `pid` in KiB: (VmRSS, VmHWM).
fn resident_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Median time of one Argon2id derivation at `params`, measured here and now.
async fn one_derivation(params: KdfParams) -> Result<Duration, LoadError> {
    let mut times = Vec::new();
    for round in 0..5u8 {
        let elapsed = tokio::task::spawn_blocking(move || {
            let password = Password::from("a password of ordinary length");
            let pepper = Pepper::from_bytes([round; 32]);
            let started = Instant::now();
            derive_password_key(&password, &[round; 16], &params, &pepper)
                .map(|_| started.elapsed())
        })
        .await
        .map_err(|_| LoadError::Derivation)?
        .map_err(|_| LoadError::Derivation)?;
        times.push(elapsed);
    }
    times.sort();
    times
        .get(times.len() / 2)
        .copied()
        .ok_or(LoadError::Derivation)
}

/// Time for `workers` derivations run at once, each on its own thread, as the pool runs them.
async fn parallel_derivations(params: KdfParams, workers: usize) -> Result<Duration, LoadError> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|n| {
            tokio::task::spawn_blocking(move || {
                let password = Password::from("a password of ordinary length");
                let pepper = Pepper::from_bytes([n as u8; 32]);
                derive_password_key(&password, &[n as u8; 16], &params, &pepper).is_ok()
            })
        })
        .collect();
    for task in tasks {
        if !task.await.map_err(|_| LoadError::Derivation)? {
            return Err(LoadError::Derivation);
        }
    }
    Ok(started.elapsed())
}

/// Makes the clients and their accounts (sign-ups, retried while the server is busy).
async fn set_up(args: &BenchArgs) -> Result<Vec<Client>, LoadError> {
    let mut run_id = [0u8; 4];
    getrandom::fill(&mut run_id).map_err(|e| LoadError::Setup(e.to_string()))?;
    let run_id = u32::from_le_bytes(run_id);
    let base = args.server.trim_end_matches('/').to_owned();

    let mut tasks = Vec::new();
    for n in 0..args.clients {
        let key = match args.algorithm.as_str() {
            "EdDSA" => DeviceKey::generate_ed25519(),
            _ => DeviceKey::generate_p256(),
        }
        .map_err(|e| LoadError::DeviceKey(e.to_string()))?;
        let mut client = Client {
            http: reqwest::Client::new(),
            base: base.clone(),
            key,
            username: format!("bench{run_id:08x}n{n}"),
            password: format!("load test password {n} {run_id}"),
            token: None,
            item: vec![b'x'; args.item_bytes],
        };
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                let answer = client.sign_up().await;
                if answer.status == StatusCode::CREATED {
                    return Ok(client);
                }
                if !matches!(answer.status.as_u16(), 429 | 503) {
                    return Err(format!(
                        "sign-up answered {} {}",
                        answer.status, answer.code
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err("sign-up kept being refused for load".to_owned())
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        let client = task.await.map_err(|e| LoadError::Setup(e.to_string()))?;
        clients.push(client.map_err(LoadError::Setup)?);
    }
    Ok(clients)
}

/// Samples the server's resident memory every 100 ms until stopped: (min, max) VmRSS in KiB.
fn sample_memory(
    pid: u32,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<(u64, u64)>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        let (mut low, mut high) = (u64::MAX, 0);
        while !flag.load(Ordering::Relaxed) {
            if let Some((rss, _)) = resident_kib(pid) {
                low = low.min(rss);
                high = high.max(rss);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (low, high)
    });
    (stop, task)
}

/// `blindfold bench`: sets up the clients, drives each operation in turn and prints the results.
pub async fn run(args: BenchArgs) -> Result<(), LoadError> {
    let workers = args.kdf_workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let params = KdfParams {
        m_cost_kib: args.kdf_memory_kib,
        t_cost: args.kdf_iterations,
        p_cost: 1,
    };
    let baseline = args.server_pid.and_then(resident_kib);

    let derivation = one_derivation(params).await?;
    let ceiling = workers as f64 / derivation.as_secs_f64();
    println!(
        "one Argon2id derivation (m={} KiB, t={}, p=1): {:.1} ms; {workers} workers: \
         login ceiling {ceiling:.1}/s",
        params.m_cost_kib,
        params.t_cost,
        derivation.as_secs_f64() * 1000.0
    );

    let parallel = parallel_derivations(params, workers).await?;
    println!(
        "{workers} derivations at once: {:.1} ms (what the cores deliver together: {:.1}/s)",
        parallel.as_secs_f64() * 1000.0,
        workers as f64 / parallel.as_secs_f64()
    );

    let setup = Instant::now();
    let mut clients = set_up(&args).await?;
    println!(
        "{} clients ({} device keys) signed up in {:.1?}; {} s per operation, items of {} bytes",
        clients.len(),
        args.algorithm,
        setup.elapsed(),
        args.seconds,
        args.item_bytes
    );
    println!();
    println!("| operation | ok | refused | per second | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");

    let mut memory = None;
    let mut after_flood = None;
    let mut login_rate = 0.0;
    for operation in Operation::ALL {
        let sampler = match (operation, args.server_pid) {
            (Operation::LogIn, Some(pid)) => Some(sample_memory(pid)),
            _ => None,
        };
        let (back, mut tally, elapsed) = drive(clients, operation, args.seconds).await;
        clients = back;
        if let Some((stop, task)) = sampler {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            memory = task.await.ok();
            after_flood = args.server_pid.and_then(resident_kib);
        }

        tally.latencies.sort();
        let ok = tally.latencies.len();
        let rate = ok as f64 / elapsed.as_secs_f64();
        if operation == Operation::LogIn {
            login_rate = rate;
        }
        let refused: u64 = tally.refused.values().sum();
        println!(
            "| {} | {ok} | {refused} | {rate:.1} | {:.2} | {:.2} |",
            operation.label(),
            quantile_ms(&tally.latencies, 0.50),
            quantile_ms(&tally.latencies, 0.99),
        );
        for (reason, count) in &tally.refused {
            eprintln!("  {}: {count} refused with {reason}", operation.label());
        }
    }

    // The machine may be busier at one end of the run than at the other: measure again and
    // take the faster derivation, which gives the higher (stricter) ceiling.
    let again = one_derivation(params).await?;
    let fastest = derivation.min(again);
    let ceiling = workers as f64 / fastest.as_secs_f64();
    println!();
    println!(
        "one derivation again after the run: {:.1} ms; ceiling from the faster of the two: \
         {ceiling:.1}/s",
        again.as_secs_f64() * 1000.0
    );
    println!(
        "login throughput {login_rate:.1}/s = {:.1} % of the ceiling",
        100.0 * login_rate / ceiling
    );
    if let Some(pid) = args.server_pid {
        report_memory(
            pid,
            Memory {
                baseline,
                during: memory,
                after_flood,
            },
            workers,
            params,
        );
    }
    Ok(())
}

/// The server's resident memory in KiB at the points the run samples it.
struct Memory {
    /// (VmRSS, VmHWM) before the run.
    baseline: Option<(u64, u64)>,
    /// (lowest, highest) VmRSS sampled during the log-in flood.
    during: Option<(u64, u64)>,
    /// (VmRSS, VmHWM) right after the log-in flood.
    after_flood: Option<(u64, u64)>,
}

fn report_memory(pid: u32, memory: Memory, workers: usize, params: KdfParams) {
    let argon = workers as u64 * u64::from(params.m_cost_kib);
    let mib = |kib: u64| kib as f64 / 1024.0;
    if let Some((rss, _)) = memory.baseline {
        println!("server VmRSS before the run: {:.1} MiB", mib(rss));
    }
    if let Some((low, high)) = memory.during {
        println!(
            "server VmRSS during the login flood: {:.1} to {:.1} MiB",
            mib(low),
            mib(high)
        );
    }
    if let Some((rss, hwm)) = memory.after_flood {
        println!(
            "server right after the login flood: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            mib(rss),
            mib(hwm)
        );
    }
    if let Some((rss, hwm)) = resident_kib(pid) {
        println!(
            "server VmRSS after the run {:.1} MiB, VmHWM {:.1} MiB; workers x Argon2 memory = \
             {:.1} MiB",
            mib(rss),
            mib(hwm),
            mib(argon)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_no_latencies_are_zero() {
        assert_eq!(quantile_ms(&[], 0.99), 0.0);
    }

    #[test]
    fn the_median_and_the_99th_percentile_are_the_nearest_ranks() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&sorted, 0.50), 50.0);
        assert_eq!(quantile_ms(&sorted, 0.99), 99.0);
        assert_eq!(quantile_ms(&sorted[..1], 0.99), 1.0);
    }

    #[test]
    fn resident_memory_of_this_process_is_readable() {
        let (rss, hwm) = resident_kib(std::process::id()).unwrap_or_default();
        assert!(rss > 0 && hwm >= rss);
    }
}
