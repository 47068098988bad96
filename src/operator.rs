//! What the operator runs: the server itself, a rebuild of the projections, and the keyring
//! that both need.
//!
//! The keyring (the one master secret) lives apart from the data directory, so a copy of the
//! data directory alone yields no key. The operator commands never print a key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use blindfold_actors::crypto::dpop::ReplayCache;
use blindfold_actors::crypto::keys::{MasterSecret, ServerKeys};
use blindfold_events::{EventStore, FjallStore, KdfParams, PostgresStore, StoreError};

use crate::server::rate_limit::Limit;
use crate::server::{ConnectionLimits, ServerConfig, SpentProofs, SystemClock};

/// A PostgreSQL connection URL. It may carry a password, so Debug never prints it.
#[derive(Clone)]
pub struct StoreUrl(String);

impl std::str::FromStr for StoreUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(StoreUrl(url.to_owned()))
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(<redacted>)")
    }
}

/// Where the keys and the data are.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// The shared PostgreSQL store (`postgres://USER:PASSWORD@HOST/DATABASE`), for several
    /// servers on one database; tables are created on first start. Without it, the embedded
    /// store in --data.
    #[arg(long = "store-url", env = "BLINDFOLD_STORE_URL", value_name = "URL")]
    pub store_url: Option<StoreUrl>,

    /// The data directory of the embedded store (created on first start); unused with
    /// --store-url.
    #[arg(
        long = "data",
        env = "BLINDFOLD_DATA",
        default_value = "blindfold-data",
        value_name = "DIR"
    )]
    pub data: PathBuf,

    /// The keyring file holding the master secret (created with mode 0600 on first start).
    /// Ignored when BLINDFOLD_MASTER_KEY is set. Must not be inside the data directory.
    #[arg(
        long,
        env = "BLINDFOLD_KEYRING",
        default_value = "blindfold.keyring",
        value_name = "FILE"
    )]
    pub keyring: PathBuf,

    /// Key id of the token key that seals new tokens; tokens sealed with the previous id still
    /// open until they expire. Raise it by one to rotate.
    #[arg(long, env = "BLINDFOLD_TOKEN_KEY_ID", default_value_t = 1)]
    pub token_key_id: u8,
}

/// `blindfold serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Where the keys and the data are.
    #[command(flatten)]
    pub store: StoreArgs,

    /// Address to listen on.
    #[arg(long, env = "BLINDFOLD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Public base URL clients use (DPoP proofs are checked against it) [default: http://LISTEN].
    #[arg(long, env = "BLINDFOLD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Access-token lifetime in seconds.
    #[arg(long, env = "BLINDFOLD_TOKEN_TTL", default_value_t = 900)]
    pub token_ttl: u64,

    /// Absolute session lifetime in seconds.
    #[arg(long, env = "BLINDFOLD_SESSION_TTL", default_value_t = 43_200)]
    pub session_ttl: u64,

    /// Seconds a DPoP proof's iat may differ from now.
    #[arg(long, env = "BLINDFOLD_DPOP_WINDOW", default_value_t = 60)]
    pub dpop_window: u64,

    /// Require server-issued DPoP nonces.
    #[arg(long, env = "BLINDFOLD_DPOP_NONCES")]
    pub dpop_nonces: bool,

    /// DPoP proofs remembered at once against replay (about 100 bytes each); a proof is
    /// remembered for the DPoP window. Past it, requests get 503 until entries expire.
    #[arg(
        long,
        env = "BLINDFOLD_DPOP_REPLAY_CAPACITY",
        default_value_t = 1_000_000
    )]
    pub dpop_replay_capacity: usize,

    /// Key-derivation workers [default: one per core].
    #[arg(long, env = "BLINDFOLD_KDF_WORKERS")]
    pub kdf_workers: Option<usize>,

    /// Derivations that may wait before log-ins get 503 [default: 16 per worker].
    #[arg(long, env = "BLINDFOLD_KDF_QUEUE")]
    pub kdf_queue: Option<usize>,

    /// Argon2id memory for new passwords, in KiB.
    #[arg(long, env = "BLINDFOLD_KDF_MEMORY_KIB", default_value_t = 19 * 1024)]
    pub kdf_memory_kib: u32,

    /// Argon2id passes for new passwords.
    #[arg(long, env = "BLINDFOLD_KDF_ITERATIONS", default_value_t = 2)]
    pub kdf_iterations: u32,

    /// Largest item value in bytes.
    #[arg(long, env = "BLINDFOLD_MAX_ITEM_BYTES", default_value_t = 1024 * 1024)]
    pub max_item_bytes: usize,

    /// Connections open at once; past it the server stops accepting until one closes.
    #[arg(long, env = "BLINDFOLD_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Connections open at once from one client address (IPv6: one /64).
    #[arg(
        long,
        env = "BLINDFOLD_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 64
    )]
    pub max_connections_per_address: usize,

    /// Seconds a client has to send a request head (also the idle time of a keep-alive
    /// connection).
    #[arg(long, env = "BLINDFOLD_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,

    /// Seconds a write to a client may make no progress before its connection is closed.
    #[arg(long, env = "BLINDFOLD_WRITE_TIMEOUT", default_value_t = 30)]
    pub write_timeout: u64,

    /// Seconds a client has to send a request body once its head has arrived.
    #[arg(long, env = "BLINDFOLD_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,

    /// MiB of request bodies held in memory at once, across all requests; past it, bodies are
    /// refused with 503.
    #[arg(long, env = "BLINDFOLD_BODY_MEMORY_MIB", default_value_t = 64)]
    pub body_memory_mib: usize,

    /// Credential attempts per minute per client address (also the burst).
    #[arg(long, env = "BLINDFOLD_RATE_PER_ADDRESS", default_value_t = 60)]
    pub rate_per_address: u32,

    /// Credential attempts per minute per username, existing or not (also the burst).
    #[arg(long, env = "BLINDFOLD_RATE_PER_USERNAME", default_value_t = 10)]
    pub rate_per_username: u32,
}

impl ServeArgs {
    /// The server configuration these arguments describe.
    pub fn config(&self) -> ServerConfig {
        let defaults = ServerConfig::default();
        ServerConfig {
            listen: self.listen,
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", self.listen))
                .trim_end_matches('/')
                .to_owned(),
            token_ttl: self.token_ttl,
            session_ttl: self.session_ttl,
            dpop_window: self.dpop_window,
            dpop_nonces: self.dpop_nonces,
            replay_capacity: self.dpop_replay_capacity,
            kdf_params: KdfParams {
                m_cost_kib: self.kdf_memory_kib,
                t_cost: self.kdf_iterations,
                p_cost: 1,
            },
            kdf_workers: self.kdf_workers.unwrap_or(defaults.kdf_workers),
            kdf_queue: self.kdf_queue.unwrap_or(defaults.kdf_queue),
            max_item_bytes: self.max_item_bytes,
            body_timeout: Duration::from_secs(self.body_timeout),
            body_memory: self.body_memory_mib.saturating_mul(1024 * 1024),
            connections: ConnectionLimits {
                total: self.max_connections,
                per_address: self.max_connections_per_address,
                header_timeout: Duration::from_secs(self.header_timeout),
                write_timeout: Duration::from_secs(self.write_timeout),
            },
            limit_per_address: Limit {
                burst: self.rate_per_address,
                per_minute: self.rate_per_address,
            },
            limit_per_handle: Limit {
                burst: self.rate_per_username,
                per_minute: self.rate_per_username,
            },
            ..defaults
        }
    }
}

/// Why an operator command failed. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The keyring could not be read, created or trusted.
    #[error("keyring: {0}")]
    Keyring(String),
    /// The store (the data directory or the database) could not be opened.
    #[error("store: {0}")]
    Store(String),
    /// The server did not start.
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
}

/// The server keys, from `BLINDFOLD_MASTER_KEY` or the keyring file (created on first start).
pub fn load_keys(args: &StoreArgs) -> Result<ServerKeys, OperatorError> {
    let master = match std::env::var("BLINDFOLD_MASTER_KEY") {
        Ok(encoded) => MasterSecret::from_base64(encoded.trim())
            .map_err(|e| OperatorError::Keyring(e.to_string()))?,
        Err(_) => {
            if args.store_url.is_none() {
                refuse_keyring_inside(&args.keyring, &args.data)?;
            }
            let (master, created) = MasterSecret::load_or_create(&args.keyring)
                .map_err(|e| OperatorError::Keyring(e.to_string()))?;
            if created {
                tracing::info!(path = %args.keyring.display(), "keyring.created");
            }
            master
        }
    };
    ServerKeys::derive(&master, args.token_key_id)
        .map_err(|e| OperatorError::Keyring(e.to_string()))
}

/// The event store a command runs on.
pub enum OpenedStore {
    /// The embedded store in the data directory: one process.
    Embedded(Arc<FjallStore>),
    /// The shared store in PostgreSQL: any number of servers.
    Shared(Arc<PostgresStore>),
}

impl OpenedStore {
    /// The store, behind the trait.
    pub fn events(&self) -> Arc<dyn EventStore> {
        match self {
            OpenedStore::Embedded(store) => Arc::clone(store) as Arc<dyn EventStore>,
            OpenedStore::Shared(store) => Arc::clone(store) as Arc<dyn EventStore>,
        }
    }

    /// Where a server on this store remembers spent DPoP proofs: in memory beside the embedded
    /// store, in the database beside the shared one (servers that share a store must share it).
    pub fn spent_proofs(&self, config: &ServerConfig) -> SpentProofs {
        match self {
            OpenedStore::Embedded(_) => {
                SpentProofs::InMemory(ReplayCache::new(config.replay_capacity, config.dpop_window))
            }
            OpenedStore::Shared(store) => {
                SpentProofs::Shared(store.replay_table(config.dpop_window))
            }
        }
    }
}

/// Opens the event store: PostgreSQL at `--store-url` if given, else the embedded store in the
/// data directory (created on first start).
pub fn open_store(args: &StoreArgs, keys: &ServerKeys) -> Result<OpenedStore, OperatorError> {
    match &args.store_url {
        Some(url) => open_shared_store(url, keys),
        None => open_embedded_store(args, keys),
    }
}

fn open_shared_store(url: &StoreUrl, keys: &ServerKeys) -> Result<OpenedStore, OperatorError> {
    let store = PostgresStore::open(&url.0, keys.storage.clone()).map_err(|error| match error {
        StoreError::Corrupt => OperatorError::Store(
            "this keyring does not open this database (wrong master key?)".into(),
        ),
        other => OperatorError::Store(format!("database: {other}")),
    })?;
    tracing::info!("store.opened_shared");
    Ok(OpenedStore::Shared(Arc::new(store)))
}

fn open_embedded_store(args: &StoreArgs, keys: &ServerKeys) -> Result<OpenedStore, OperatorError> {
    create_private_dir(&args.data)?;
    let store =
        FjallStore::open(&args.data, keys.storage.clone()).map_err(|error| match error {
            StoreError::Corrupt => OperatorError::Store(
                "this keyring does not open this data directory (wrong master key?)".into(),
            ),
            StoreError::Backend(detail) if detail.contains("Locked") => OperatorError::Store(
                "the data directory is in use by another process (stop the server first)".into(),
            ),
            other => OperatorError::Store(other.to_string()),
        })?;
    tracing::info!(path = %args.data.display(), "store.opened");
    Ok(OpenedStore::Embedded(Arc::new(store)))
}

/// `blindfold serve`: runs until interrupted.
pub async fn serve(args: ServeArgs) -> Result<(), OperatorError> {
    let keys = load_keys(&args.store)?;
    let store = open_store(&args.store, &keys)?;
    let config = args.config();
    tracing::info!(public_url = %config.public_url, kdf_workers = config.kdf_workers, "server.starting");

    let spent_proofs = store.spent_proofs(&config);
    let server = crate::server::start_with(
        config,
        keys,
        store.events(),
        spent_proofs,
        Arc::new(SystemClock),
    )
    .await?;
    shutdown_signal().await;
    tracing::info!("server.stopping");
    server.shutdown().await;
    Ok(())
}

/// `blindfold rebuild`: drops the projections and replays the log.
pub fn rebuild(args: StoreArgs) -> Result<(), OperatorError> {
    let keys = load_keys(&args)?;
    let store = open_store(&args, &keys)?.events();
    let started = std::time::Instant::now();
    let report = store
        .rebuild()
        .map_err(|e| OperatorError::Store(e.to_string()))?;
    println!(
        "rebuilt {} accounts from {} events in {:.2?} ({} corrupt streams skipped)",
        report.accounts,
        report.events,
        started.elapsed(),
        report.corrupt_streams
    );
    Ok(())
}

/// The keyring must not sit inside the data directory: a copy of that directory must yield no
/// key. Both are compared as canonical paths (no `..`, no symlinks), so the data directory is
/// created here, with mode 0700, if it does not exist yet.
fn refuse_keyring_inside(keyring: &Path, data: &Path) -> Result<(), OperatorError> {
    create_private_dir(data)?;
    let data = std::fs::canonicalize(data).map_err(|e| OperatorError::Store(e.to_string()))?;

    let name = keyring
        .file_name()
        .ok_or_else(|| OperatorError::Keyring("the keyring path names no file".into()))?;
    let parent = match keyring.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let parent =
        std::fs::canonicalize(parent).map_err(|e| OperatorError::Keyring(e.to_string()))?;
    let keyring = match std::fs::canonicalize(parent.join(name)) {
        Ok(existing) => existing,
        Err(_) => parent.join(name),
    };
    if keyring.starts_with(&data) {
        return Err(OperatorError::Keyring(
            "the keyring must not be inside the data directory".into(),
        ));
    }
    Ok(())
}

/// Makes `dir` a directory only its owner can enter: creates it with mode 0700 if it does not
/// exist, and tightens an existing one that its group or others may enter (logging that it
/// did, with the path, which is the operator's own). Every operator command that opens the
/// data directory comes through here.
fn create_private_dir(dir: &Path) -> Result<(), OperatorError> {
    if dir.exists() {
        return tighten_private_dir(dir);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| OperatorError::Store(e.to_string()))
}

/// Takes group and other permissions off an existing directory.
#[cfg(unix)]
fn tighten_private_dir(dir: &Path) -> Result<(), OperatorError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)
        .map_err(|e| OperatorError::Store(e.to_string()))?
        .permissions()
        .mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| OperatorError::Store(e.to_string()))?;
    tracing::warn!(
        path = %dir.display(),
        was = format_args!("{:o}", mode & 0o777),
        "data_dir.permissions_tightened"
    );
    Ok(())
}

/// Permissions are the platform's business off Unix.
#[cfg(not(unix))]
fn tighten_private_dir(_dir: &Path) -> Result<(), OperatorError> {
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyring_inside_the_data_directory_is_refused_however_the_path_is_spelled() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        assert!(refuse_keyring_inside(&data.join("keyring"), &data).is_err());

        let dotted = root.path().join("data/../data");
        assert!(refuse_keyring_inside(&dotted.join("keyring"), &data).is_err());
        assert!(refuse_keyring_inside(&data.join("keyring"), &dotted).is_err());

        let link = root.path().join("link");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        assert!(refuse_keyring_inside(&link.join("keyring"), &data).is_err());

        assert!(refuse_keyring_inside(&root.path().join("blindfold.keyring"), &data).is_ok());
    }

    #[test]
    fn the_data_directory_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("fresh");
        create_private_dir(&data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn an_existing_data_directory_open_to_others_is_tightened_when_the_store_opens() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let args = StoreArgs {
            data: data.clone(),
            keyring: root.path().join("blindfold.keyring"),
            token_key_id: 1,
            store_url: None,
        };
        let master = MasterSecret::generate().unwrap();
        let keys = ServerKeys::derive(&master, 1).unwrap();

        open_store(&args, &keys).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn the_keyring_check_tightens_an_existing_data_directory_too() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();

        refuse_keyring_inside(&root.path().join("blindfold.keyring"), &data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
