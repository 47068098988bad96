//! Prometheus text metrics: counts and timings only, never anything about a user.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::App;

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Counters shared by all requests.
#[derive(Default)]
pub(crate) struct Metrics {
    by_class: [AtomicU64; 5],
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_micros: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub kdf_refused: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn observe(&self, status: StatusCode, elapsed: Duration) {
        let class = usize::from(status.as_u16() / 100).saturating_sub(1).min(4);
        if let Some(counter) = self.by_class.get(class) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        for (bound, counter) in BUCKETS.iter().zip(&self.duration_buckets) {
            if seconds <= *bound {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// The exposition text.
    pub(crate) fn render(&self, app: &App) -> Response {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE blindfold_http_responses_total counter");
        let mut total = 0;
        for (index, counter) in self.by_class.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            total += count;
            let _ = writeln!(
                out,
                "blindfold_http_responses_total{{class=\"{}xx\"}} {count}",
                index + 1
            );
        }
        let _ = writeln!(
            out,
            "# TYPE blindfold_http_request_duration_seconds histogram"
        );
        for (bound, counter) in BUCKETS.iter().zip(&self.duration_buckets) {
            let count = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "blindfold_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "blindfold_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let sum = self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "blindfold_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "blindfold_http_request_duration_seconds_count {total}");
        let _ = writeln!(out, "# TYPE blindfold_tokens_issued_total counter");
        let _ = writeln!(
            out,
            "blindfold_tokens_issued_total {}",
            self.tokens_issued.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE blindfold_kdf_refused_total counter");
        let _ = writeln!(
            out,
            "blindfold_kdf_refused_total {}",
            self.kdf_refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE blindfold_kdf_outstanding gauge");
        let _ = writeln!(
            out,
            "blindfold_kdf_outstanding {}",
            app.actors.kdf.outstanding()
        );

        let mut response = Response::new(out.into());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    }
}
