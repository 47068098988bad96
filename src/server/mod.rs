//! The HTTP front end: thin by design. It parses, checks DPoP, asks the actors and answers.
//!
//! Nothing here holds a server key except the DPoP nonce key, and nothing per user outlives a
//! request: the token is the session. Handlers never log a username, handle, token, password,
//! key, profile field or item name.

mod accounts;
mod auth;
pub mod clock;
pub mod config;
mod items;
mod listener;
mod me;
mod metrics;
pub mod problem;
pub mod rate_limit;
mod router;
mod second_factor;
pub mod spent_proofs;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use blindfold_actors::crypto::dpop::{NonceKey, ReplayCache};
use blindfold_actors::crypto::keys::ServerKeys;
use blindfold_actors::sealer::SealerKeys;
use blindfold_actors::{ActorSetup, Actors};
use blindfold_events::{EventStore, Handle};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use warp::Filter;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::ServerConfig;
pub use listener::ConnectionLimits;
pub use spent_proofs::SpentProofs;

use metrics::Metrics;
use rate_limit::RateLimiter;

/// Everything a request handler may use. Shared by all requests.
pub(crate) struct App {
    config: ServerConfig,
    actors: Arc<Actors>,
    store: Arc<dyn EventStore>,
    nonce_key: NonceKey,
    spent_proofs: SpentProofs,
    per_address: RateLimiter<IpAddr>,
    per_handle: RateLimiter<Handle>,
    /// Recovery attempts per handle, apart from `per_handle`: guessing at a name's password
    /// must not also keep its owner from recovering.
    per_handle_recovery: RateLimiter<Handle>,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    /// Bytes of request bodies that may be held in memory at once, across all requests.
    body_budget: Arc<tokio::sync::Semaphore>,
}

/// A running server.
pub struct RunningServer {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The actors, for tests of supervision.
    pub actors: Arc<Actors>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets requests in flight finish, and stops the actors.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // Idle keep-alive connections would hold a graceful shutdown open indefinitely.
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        self.actors.stop();
    }
}

/// Starts the actors and the HTTP server on `config.listen`, remembering spent DPoP proofs in
/// this process (bounded by `config.replay_capacity`): right for a server that is alone on its
/// store.
///
/// An empty `config.public_url` means `http://` and the bound address (handy with port 0).
pub async fn start(
    config: ServerConfig,
    keys: ServerKeys,
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
) -> Result<RunningServer, StartError> {
    let spent_proofs =
        SpentProofs::InMemory(ReplayCache::new(config.replay_capacity, config.dpop_window));
    start_with(config, keys, store, spent_proofs, clock).await
}

/// As [`start`], with spent DPoP proofs remembered in `spent_proofs`: servers that share a
/// store must share this too, or a proof spent on one would pass on another.
pub async fn start_with(
    mut config: ServerConfig,
    keys: ServerKeys,
    store: Arc<dyn EventStore>,
    spent_proofs: SpentProofs,
    clock: Arc<dyn Clock>,
) -> Result<RunningServer, StartError> {
    let ServerKeys {
        index,
        tokens,
        pepper,
        dpop_nonce,
        decoy,
        ..
    } = keys;
    let actors = Actors::start(ActorSetup {
        kdf_workers: config.kdf_workers.max(1),
        kdf_queue: config.kdf_queue,
        kdf_params: config.kdf_params,
        pepper,
        decoy,
        sealer_keys: SealerKeys { index, tokens },
        store: Arc::clone(&store),
    })
    .await
    .map_err(|e| StartError::Actors(e.to_string()))?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(StartError::Listen)?;
    let addr = listener.local_addr().map_err(StartError::Listen)?;
    if config.public_url.is_empty() {
        config.public_url = format!("http://{addr}");
    }

    let app = Arc::new(App {
        spent_proofs,
        per_address: RateLimiter::new(config.limit_per_address, config.limit_max_keys),
        per_handle: RateLimiter::new(config.limit_per_handle, config.limit_max_keys),
        per_handle_recovery: RateLimiter::new(config.limit_per_handle, config.limit_max_keys),
        metrics: Metrics::default(),
        // A budget smaller than the largest item would refuse every item write.
        body_budget: Arc::new(tokio::sync::Semaphore::new(
            config.body_memory.max(config.max_item_bytes),
        )),
        nonce_key: dpop_nonce,
        actors: Arc::clone(&actors),
        store,
        clock,
        config,
    });

    let (shutdown, stop) = oneshot::channel::<()>();
    let limits = app.config.connections;
    let task = tokio::spawn(listener::serve(listener, filter(app), limits, async {
        let _ = stop.await;
    }));
    tracing::info!(%addr, "server.listening");
    Ok(RunningServer {
        addr,
        actors,
        shutdown: Some(shutdown),
        task,
    })
}

/// The one warp filter: it hands every request, whatever its route, to [`router::handle`],
/// which owns routing and turns every failure into problem+json.
fn filter(
    app: Arc<App>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(
            warp::ext::optional::<listener::PeerAddr>()
                .map(|peer: Option<listener::PeerAddr>| peer.map(|p| p.0)),
        )
        .and(warp::body::stream())
        .then(
            move |method, path: warp::path::FullPath, headers, remote: Option<SocketAddr>, body| {
                let app = Arc::clone(&app);
                let path = path.as_str().to_owned();
                router::handle(app, method, path, headers, remote, body)
            },
        )
        .recover(|_| async {
            Ok::<_, std::convert::Infallible>(problem::ApiError::NotFound.into_response())
        })
        .unify()
}

/// Entry points for the fuzzers: every parser that takes request bytes, without a server.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `body` as every JSON request body the API accepts. Must never panic.
    pub fn parse_request_bodies(body: &[u8]) {
        let _ = serde_json::from_slice::<super::accounts::SignUp>(body);
        let _ = serde_json::from_slice::<super::accounts::LogIn>(body);
        let _ = serde_json::from_slice::<super::accounts::Recover>(body);
        let _ = serde_json::from_slice::<super::me::ChangePassword>(body);
        let _ = serde_json::from_slice::<super::me::DeleteAccount>(body);
        let _ = serde_json::from_slice::<super::second_factor::Confirm>(body);
        let _ = serde_json::from_slice::<super::second_factor::CodeOnly>(body);
        let _ = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body);
    }

    /// Decodes an item-name path segment. Must never panic.
    pub fn decode_item_name(segment: &str) {
        let _ = super::items::decode_name(segment);
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The actors did not start.
    #[error("actors did not start: {0}")]
    Actors(String),
    /// The listen address could not be bound.
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
}
