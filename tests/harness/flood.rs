//! Log-in flood: far more concurrent log-ins than the derivation pool holds, at the production
//! Argon2 memory cost. Every answer is a deliberate one (200, 401, 429 or 503), the health check
//! keeps answering, and the server's memory stays bounded by the pool, not by the flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;

use crate::support::{Client, HIGH_LIMITS, ServerFiles};

/// Concurrent log-ins in the flood.
const LOGINS: usize = 400;
/// Derivation workers and queue the server runs with.
const WORKERS: u64 = 2;
const QUEUE: u64 = 8;
/// The default Argon2id memory, KiB.
const ARGON2_KIB: u64 = 19 * 1024;
/// Memory beyond the workers' Argon2 blocks that the server may use under the flood, KiB: the
/// idle server (about 51 MiB resident here, most of it the store's block cache and the debug
/// build's code), the buffers of the connections in flight, and allocator slack.
const OVERHEAD_KIB: u64 = 64 * 1024;
/// The slowest acceptable health check during the flood.
const HEALTH_DEADLINE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_shed_with_bounded_memory_while_health_checks_answer() {
    let files = ServerFiles::new();
    let (workers, queue) = (WORKERS.to_string(), QUEUE.to_string());
    let mut args = vec![
        "--kdf-workers",
        workers.as_str(),
        "--kdf-queue",
        queue.as_str(),
    ];
    args.extend(HIGH_LIMITS);
    let server = files.start(&args, "warn").await;
    let idle_kib = server.memory_kib("VmRSS");

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut owner = Client::new(&http, &server.base);
    let created = owner
        .sign_up("flood-owner", "flood-owner-password", json!({}))
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED);

    // Health checks and memory samples for as long as the flood lasts.
    let flooding = Arc::new(AtomicBool::new(true));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let health = tokio::spawn(health_checks(
        http.clone(),
        server.base.clone(),
        Arc::clone(&flooding),
    ));
    let pid = server.pid();
    let sampler = {
        let (flooding, peak_rss) = (Arc::clone(&flooding), Arc::clone(&peak_rss));
        tokio::spawn(async move {
            while flooding.load(Ordering::Relaxed) {
                peak_rss.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let started = Instant::now();
    let mut logins = JoinSet::new();
    for n in 0..LOGINS {
        let (http, base) = (http.clone(), server.base.clone());
        logins.spawn(async move {
            let mut client = Client::new(&http, &base);
            let (username, password) = match n % 3 {
                0 => ("flood-owner".to_owned(), "flood-owner-password"),
                1 => ("flood-owner".to_owned(), "not-the-password"),
                _ => (format!("flood-nobody-{n}"), "whatever"),
            };
            client
                .log_in(&username, password)
                .await
                .map(|reply| reply.status)
        });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(result) = logins.join_next().await {
        let status = result.unwrap().expect("a log-in got no HTTP answer");
        *statuses.entry(status.as_u16()).or_default() += 1;
    }
    let flood_time = started.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let (health_count, slowest_health) = health.await.unwrap();
    sampler.await.unwrap();
    let hwm_kib = server.memory_kib("VmHWM");
    server.kill();

    let bound_kib = WORKERS * ARGON2_KIB + OVERHEAD_KIB;
    eprintln!(
        "flood of {LOGINS} log-ins in {flood_time:.2?}: {statuses:?}; {health_count} health checks, \
         slowest {slowest_health:.2?}; resident memory idle {idle_kib} KiB, peak sampled {} KiB, \
         high-water mark {hwm_kib} KiB, bound {bound_kib} KiB",
        peak_rss.load(Ordering::Relaxed)
    );
    for status in statuses.keys() {
        assert!(
            [200, 401, 429, 503].contains(status),
            "unexpected status {status}: {statuses:?}"
        );
    }
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "the pool was never full: {statuses:?}"
    );
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 0,
        "no log-in got through: {statuses:?}"
    );
    assert!(health_count > 0, "no health check ran during the flood");
    assert!(
        slowest_health < HEALTH_DEADLINE,
        "a health check took {slowest_health:.2?}"
    );
    assert!(
        hwm_kib < bound_kib,
        "peak resident memory {hwm_kib} KiB over the bound {bound_kib} KiB"
    );
}

/// `/healthz` every 50 ms while `flooding`: how many answered, and the slowest. Panics on any
/// answer but 200.
async fn health_checks(
    http: reqwest::Client,
    base: String,
    flooding: Arc<AtomicBool>,
) -> (usize, Duration) {
    let (mut count, mut slowest) = (0, Duration::ZERO);
    while flooding.load(Ordering::Relaxed) {
        let started = Instant::now();
        let reply = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("health check failed");
        assert_eq!(reply.status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        count += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (count, slowest)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
