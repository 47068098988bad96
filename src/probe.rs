//! `blindfold probe-enumeration`: measures whether a server's log-in answer takes a different
//! time for an unknown username than for a known one with a wrong password.
//!
//! It signs up one account with a random name, then alternates log-ins as a random unknown name
//! and as that account with a wrong password, each with a fresh device key, and compares the two
//! distributions of response times (medians and the two-sample Kolmogorov–Smirnov statistic).
//! It must only ever be pointed at a server its user runs: it creates an account there, and the
//! server's per-username rate limit must be raised for the wrong-password samples to get through.

use std::time::{Duration, Instant};

use blindfold_actors::crypto::dpop::DeviceKey;
use serde_json::json;

/// Samples of each kind thrown away before measuring (connection set-up, first derivations).
const WARM_UP: usize = 5;

/// The Kolmogorov distribution's coefficient for α = 0.05.
const KS_C_ALPHA_05: f64 = 1.358;

/// `blindfold probe-enumeration`.
#[derive(Clone, Debug, clap::Args)]
pub struct ProbeArgs {
    /// Log-ins of each kind to time (unknown username; known username, wrong password).
    #[arg(long, default_value_t = 300)]
    pub samples: usize,
}

/// What a probe measured.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// Response times of log-ins as unknown usernames, in milliseconds.
    pub unknown_user_ms: Vec<f64>,
    /// Response times of log-ins as the known username with a wrong password, in milliseconds.
    pub wrong_password_ms: Vec<f64>,
    /// Statuses that were not 401, as (kind, status) pairs; should be empty.
    pub unexpected: Vec<(&'static str, u16)>,
}

/// Why the probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A request failed to reach the server or its answer was unreadable.
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused to create the probe's account.
    #[error("sign-up refused with status {0}")]
    SignUp(u16),
    /// No device key could be made.
    #[error("device key: {0}")]
    Device(String),
}

/// Runs the probe against `server` and prints its report.
pub async fn run(server: &str, args: ProbeArgs) -> Result<(), ProbeError> {
    let report = probe(server.trim_end_matches('/'), args.samples).await?;
    print!("{report}");
    Ok(())
}

/// Signs up one account on `server`, then times `samples` log-ins of each kind, alternating.
pub async fn probe(server: &str, samples: usize) -> Result<ProbeReport, ProbeError> {
    let http = reqwest::Client::new();
    let known = random_name("probe")?;
    let status = send(
        &http,
        server,
        "/v1/accounts",
        &known,
        "probe-password-right",
    )
    .await?
    .0;
    if status != 201 {
        return Err(ProbeError::SignUp(status));
    }

    let mut report = ProbeReport {
        unknown_user_ms: Vec::new(),
        wrong_password_ms: Vec::new(),
        unexpected: Vec::new(),
    };
    for round in 0..samples + WARM_UP {
        let unknown = random_name("nobody")?;
        let (unknown_status, unknown_ms) = send(
            &http,
            server,
            "/v1/sessions",
            &unknown,
            "probe-password-wrong",
        )
        .await?;
        let (wrong_status, wrong_ms) = send(
            &http,
            server,
            "/v1/sessions",
            &known,
            "probe-password-wrong",
        )
        .await?;
        if round < WARM_UP {
            continue;
        }
        report.record("unknown_user", unknown_status, unknown_ms);
        report.record("wrong_password", wrong_status, wrong_ms);
    }
    Ok(report)
}

impl ProbeReport {
    fn record(&mut self, kind: &'static str, status: u16, ms: f64) {
        if status != 401 {
            self.unexpected.push((kind, status));
            return;
        }
        match kind {
            "unknown_user" => self.unknown_user_ms.push(ms),
            _ => self.wrong_password_ms.push(ms),
        }
    }
}

/// One log-in or sign-up with a fresh device key (retrying once with a server nonce if asked):
/// its status and how long the last attempt took in milliseconds.
async fn send(
    http: &reqwest::Client,
    server: &str,
    path: &str,
    username: &str,
    password: &str,
) -> Result<(u16, f64), ProbeError> {
    let key = DeviceKey::generate_p256().map_err(|e| ProbeError::Device(e.to_string()))?;
    let url = format!("{server}{path}");
    let body = json!({ "username": username, "password": password });
    let mut nonce: Option<String> = None;
    loop {
        let proof = key.proof("POST", &url, None, nonce.as_deref(), unix_now());
        let started = Instant::now();
        let response = http
            .post(&url)
            .header("dpop", proof)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let offered = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = response.bytes().await?;
        let elapsed = started.elapsed();
        let wants_nonce = status == 401 && contains(&answer, b"use_dpop_nonce");
        match offered {
            Some(offered) if wants_nonce && nonce.is_none() => nonce = Some(offered),
            _ => return Ok((status, millis(elapsed))),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `prefix-` and 16 random hex digits.
fn random_name(prefix: &str) -> Result<String, ProbeError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| ProbeError::Device(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}-{hex}"))
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The two-sample Kolmogorov–Smirnov statistic D: the largest distance between the two
/// empirical distribution functions (0 when either sample is empty).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// The asymptotic p-value of D for samples of sizes `n` and `m`: the Kolmogorov distribution's
/// tail at `sqrt(n m / (n + m)) · D`.
pub fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    let effective = (n * m) as f64 / (n + m).max(1) as f64;
    let lambda = (effective.sqrt() + 0.12 + 0.11 / effective.sqrt()) * d;
    if lambda < 1e-3 {
        return 1.0;
    }
    let tail: f64 = (1..=100)
        .map(|k| {
            let k = k as f64;
            let sign = if k as u64 % 2 == 1 { 1.0 } else { -1.0 };
            sign * (-2.0 * k * k * lambda * lambda).exp()
        })
        .sum();
    (2.0 * tail).clamp(0.0, 1.0)
}

/// The D above which the two distributions differ at α = 0.05.
pub fn ks_critical_value(n: usize, m: usize) -> f64 {
    KS_C_ALPHA_05 * (((n + m) as f64) / ((n * m).max(1) as f64)).sqrt()
}

impl std::fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, m) = (self.unknown_user_ms.len(), self.wrong_password_ms.len());
        let (unknown, wrong) = (
            median(&self.unknown_user_ms),
            median(&self.wrong_password_ms),
        );
        let d = ks_statistic(&self.unknown_user_ms, &self.wrong_password_ms);
        writeln!(
            f,
            "samples             {n} unknown user, {m} wrong password"
        )?;
        writeln!(f, "median unknown user {unknown:.2} ms")?;
        writeln!(f, "median wrong pass.  {wrong:.2} ms")?;
        writeln!(f, "difference          {:+.2} ms", unknown - wrong)?;
        writeln!(f, "KS statistic D      {d:.4}")?;
        writeln!(f, "KS p-value          {:.4}", ks_p_value(d, n, m))?;
        writeln!(f, "critical D (a=0.05) {:.4}", ks_critical_value(n, m))?;
        if !self.unexpected.is_empty() {
            writeln!(
                f,
                "non-401 answers     {} (excluded; raise the rate limits)",
                self.unexpected.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_have_d_zero_and_p_one() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(ks_statistic(&a, &a), 0.0);
        assert_eq!(ks_p_value(0.0, 4, 4), 1.0);
    }

    #[test]
    fn disjoint_samples_have_d_one_and_a_small_p_value() {
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        let b: Vec<f64> = (200..300).map(f64::from).collect();
        assert_eq!(ks_statistic(&a, &b), 1.0);
        assert!(ks_p_value(1.0, 100, 100) < 1e-10);
        assert!(ks_critical_value(100, 100) > 0.19 && ks_critical_value(100, 100) < 0.2);
    }

    #[test]
    fn the_median_of_an_even_sample_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
