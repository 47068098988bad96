//! Server settings. Every field has a safe default; the CLI fills them from flags and
//! `BLINDFOLD_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use blindfold_events::KdfParams;

use super::listener::ConnectionLimits;
use super::rate_limit::Limit;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The public base URL clients reach the server at; DPoP `htu` is checked against it.
    pub public_url: String,
    /// Access-token lifetime in seconds.
    pub token_ttl: u64,
    /// Absolute session lifetime in seconds; refresh never extends it.
    pub session_ttl: u64,
    /// How far a DPoP proof's `iat` may be from now, in seconds; also how long a `jti` is kept.
    pub dpop_window: u64,
    /// Whether proofs must carry a server nonce (RFC 9449 §8).
    pub dpop_nonces: bool,
    /// Distinct `jti`s remembered at once: the memory bound of replay protection (about 100
    /// bytes each). Past it, authenticated requests get 503 until entries expire.
    pub replay_capacity: usize,
    /// Argon2id parameters for new and changed passwords.
    pub kdf_params: KdfParams,
    /// Key-derivation workers.
    pub kdf_workers: usize,
    /// Derivations that may wait before requests are refused with 503.
    pub kdf_queue: usize,
    /// Largest item value in bytes.
    pub max_item_bytes: usize,
    /// Largest JSON body in bytes.
    pub max_json_bytes: usize,
    /// Time a client has to send a whole request body once its head has arrived.
    pub body_timeout: Duration,
    /// Bytes of request bodies held in memory at once, across all requests; a body that does
    /// not fit is refused with 503. Bounds what slow or unauthenticated uploads can take.
    pub body_memory: usize,
    /// How many connections, from whom, and how long a request head may take.
    pub connections: ConnectionLimits,
    /// Credential attempts (sign-up, login, recovery) per client address.
    pub limit_per_address: Limit,
    /// Credential attempts per account handle, whether or not an account has it.
    pub limit_per_handle: Limit,
    /// Keys each rate limiter tracks at most.
    pub limit_max_keys: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            token_ttl: 15 * 60,
            session_ttl: 12 * 60 * 60,
            dpop_window: 60,
            dpop_nonces: false,
            replay_capacity: 1_000_000,
            kdf_params: KdfParams::default(),
            kdf_workers: cores,
            kdf_queue: 16 * cores,
            max_item_bytes: 1024 * 1024,
            max_json_bytes: 64 * 1024,
            body_timeout: Duration::from_secs(30),
            body_memory: 64 * 1024 * 1024,
            connections: ConnectionLimits::default(),
            limit_per_address: Limit {
                burst: 30,
                per_minute: 60,
            },
            limit_per_handle: Limit {
                burst: 10,
                per_minute: 10,
            },
            limit_max_keys: 100_000,
        }
    }
}
