//! The shared event store on PostgreSQL: several stateless blindfold servers, one database,
//! every value sealed exactly as the embedded store seals it.
//!
//! ```text
//! table               key                 value
//! blindfold_meta      name                "schema-version" → 1, "key-check" → storage-key proof
//! blindfold_streams   handle              stream meta: version, stream key sealed by storage key
//! blindfold_events    (handle, version)   position (unique), envelope
//! blindfold_accounts  handle              AccountRecord but its version, sealed deterministically
//! blindfold_items     (handle, item id)   ItemEntry, sealed deterministically (projection)
//! blindfold_replay    jti digest          expiry of a spent DPoP proof (see [`ProofReplayTable`])
//! sequence blindfold_feed_positions       feed positions
//! ```
//!
//! The byte formats are those of [`crate::envelope`] and the steps those of [`crate::plan`], so
//! a database thief sees what a thief of fjall's directory sees: counts, sizes, blind handles
//! and item ids. The feed is the events table ordered by position.
//!
//! **Concurrency.** An append locks its stream's row (`SELECT … FOR UPDATE`) before it checks
//! the version, and a new stream is claimed by inserting its row (`ON CONFLICT DO NOTHING`), so
//! two servers appending to one stream are serialized by the database: the loser of a race
//! finds the winner's version and gets `Conflict`. The primary key on `(handle, version)` stands
//! behind that; a unique violation is a `Conflict` too. Nothing is ever overwritten.
//!
//! **Durability.** Every connection runs with `synchronous_commit = on`: a commit returns once
//! its WAL is flushed (and, if the cluster has synchronous standbys, once they have it).
//! `append_batch` runs all its appends in one transaction, each under its own savepoint, and
//! commits once: one WAL flush per batch (group commit). A crash loses nothing that returned
//! `Ok` and never leaves part of a transaction.
//!
//! This module must never write a user-readable byte, panic on stored bytes, or let a handle, a
//! key or a database error's detail (which can quote a row) reach a log or an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls, Row, Statement, Transaction};

use crate::envelope::{ProjectionSeal, StreamMeta};
use crate::fjall_store::RawEntry;
use crate::plan::{self, BatchKeys, Planned, Sealing, StreamFold, Writes};
use crate::{
    AccountRecord, Append, EventStore, FeedEntry, Handle, ItemEntry, ItemId, RebuildReport,
    RecordedEvent, StorageKey, StoreError, StoreStats,
};

/// The schema this code reads and writes. A database with another version is refused.
const SCHEMA_VERSION: &[u8] = &[1];
/// Connections a store keeps open by default.
pub const DEFAULT_CONNECTIONS: usize = 4;
/// Projection values a rebuild gathers before it inserts them in one statement.
const REBUILD_CHUNK: usize = 1024;
/// Rows a rebuild fetches from its cursor at a time.
const REBUILD_FETCH: i32 = 1024;
/// Arbitrary key of the advisory lock that serializes schema creation between servers.
const SCHEMA_LOCK: i64 = 0x626c_696e_6466_6f6c;
/// Spent proofs between two prunings of the replay table.
const REPLAY_PRUNE_EVERY: u64 = 1024;
/// Seconds past its expiry a spent proof stays in the shared table: the clock skew between
/// servers the pruning tolerates.
const REPLAY_PRUNE_MARGIN_SECS: i64 = 60;

/// Creates every table if it does not exist. Run under [`SCHEMA_LOCK`].
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blindfold_meta (name text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE IF NOT EXISTS blindfold_streams (handle bytea PRIMARY KEY, meta bytea NOT NULL);
CREATE TABLE IF NOT EXISTS blindfold_events (
    handle bytea NOT NULL,
    version bigint NOT NULL,
    position bigint NOT NULL UNIQUE,
    envelope bytea NOT NULL,
    PRIMARY KEY (handle, version)
);
CREATE SEQUENCE IF NOT EXISTS blindfold_feed_positions;
CREATE TABLE IF NOT EXISTS blindfold_accounts (handle bytea PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE IF NOT EXISTS blindfold_items (
    handle bytea NOT NULL,
    item_id bytea NOT NULL,
    entry bytea NOT NULL,
    PRIMARY KEY (handle, item_id)
);
CREATE TABLE IF NOT EXISTS blindfold_replay (digest bytea PRIMARY KEY, expires_at bigint NOT NULL);
";

/// The event store on PostgreSQL. Cheap to share behind an `Arc`; every method takes `&self`
/// and may be called from any thread, a tokio worker included.
///
/// Each connection lives on a thread of its own, and every call is handed to one of those
/// threads and waited for. The sync `postgres` client drives its socket with a private tokio
/// runtime and panics if it is used on a thread already running one, and the server calls
/// [`EventStore::account`] and its kin straight from async handlers (as it does with fjall,
/// whose reads are as short). Running every query on a connection thread makes each call safe
/// from any context: a tokio worker, a current-thread runtime, `spawn_blocking`, plain code.
/// The price is one hand-over between threads per call, small beside the round trip.
///
/// Dropping the store closes its connections once their threads finish their current call.
//
// LIMITATION: the caller waits for the reply, so an async handler that reads the store holds
// its tokio worker for one database round trip (as a fjall read holds it for a disk read, which
// is shorter). On a LAN that is well under a millisecond, but a slow database slows every
// worker, and a stalled one holds each caller up to `CALL_TIMEOUT` (10 s; connect, TCP and
// statement timeouts bound the stall on the connection's side too). The way out is an async read path (tokio-postgres) beside the sync trait, or reads
// moved to `spawn_blocking` in the handlers.
pub struct PostgresStore {
    pool: Arc<Pool>,
}

/// The keys every query that seals or opens needs. Shared with the connection threads.
struct Keys {
    storage_key: StorageKey,
    projection: ProjectionSeal,
}

impl Keys {
    fn sealing(&self) -> Sealing<'_> {
        Sealing {
            storage_key: &self.storage_key,
            projection: &self.projection,
        }
    }
}

/// A unit of work for a connection thread: given the connection (or why there is none).
type Job = Box<dyn FnOnce(Result<&mut Connection, StoreError>) + Send>;

/// The connection threads and the queue they take work from.
struct Pool {
    jobs: Mutex<Sender<Job>>,
    keys: Keys,
}

/// One open connection and its prepared statements.
struct Connection {
    client: Client,
    statements: Statements,
}

/// Every statement a store runs more than once, prepared once per connection.
struct Statements {
    lock_stream: Statement,
    claim_stream: Statement,
    update_stream: Statement,
    insert_events: Statement,
    positions: Statement,
    sealed_record: Statement,
    upsert_record: Statement,
    upsert_item: Statement,
    delete_item: Statement,
    account: Statement,
    items: Statement,
    item: Statement,
    stream: Statement,
    event: Statement,
    feed: Statement,
    spend_proof: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Self, StoreError> {
        let mut prepare = |sql: &str| client.prepare(sql).map_err(backend);
        Ok(Statements {
            lock_stream: prepare(
                "SELECT meta FROM blindfold_streams WHERE handle = $1 FOR UPDATE",
            )?,
            claim_stream: prepare(
                "INSERT INTO blindfold_streams (handle, meta) VALUES ($1, $2) \
                 ON CONFLICT (handle) DO NOTHING",
            )?,
            update_stream: prepare("UPDATE blindfold_streams SET meta = $2 WHERE handle = $1")?,
            insert_events: prepare(
                "INSERT INTO blindfold_events (handle, version, position, envelope) \
                 SELECT $1, v, p, e FROM UNNEST($2::bigint[], $3::bigint[], $4::bytea[]) \
                 AS t(v, p, e)",
            )?,
            positions: prepare(
                "SELECT nextval('blindfold_feed_positions') FROM generate_series(1, $1::bigint)",
            )?,
            sealed_record: prepare("SELECT record FROM blindfold_accounts WHERE handle = $1")?,
            upsert_record: prepare(
                "INSERT INTO blindfold_accounts (handle, record) VALUES ($1, $2) \
                 ON CONFLICT (handle) DO UPDATE SET record = EXCLUDED.record",
            )?,
            upsert_item: prepare(
                "INSERT INTO blindfold_items (handle, item_id, entry) VALUES ($1, $2, $3) \
                 ON CONFLICT (handle, item_id) DO UPDATE SET entry = EXCLUDED.entry",
            )?,
            delete_item: prepare("DELETE FROM blindfold_items WHERE handle = $1 AND item_id = $2")?,
            account: prepare(
                "SELECT a.record, s.meta FROM blindfold_accounts a \
                 LEFT JOIN blindfold_streams s ON s.handle = a.handle WHERE a.handle = $1",
            )?,
            items: prepare(
                "SELECT item_id, entry FROM blindfold_items WHERE handle = $1 ORDER BY item_id",
            )?,
            item: prepare("SELECT entry FROM blindfold_items WHERE handle = $1 AND item_id = $2")?,
            stream: prepare(
                "SELECT s.meta, e.version, e.envelope FROM blindfold_streams s \
                 LEFT JOIN blindfold_events e ON e.handle = s.handle \
                 WHERE s.handle = $1 ORDER BY e.version",
            )?,
            event: prepare(
                "SELECT s.meta, e.envelope FROM blindfold_streams s \
                 LEFT JOIN blindfold_events e ON e.handle = s.handle AND e.version = $2 \
                 WHERE s.handle = $1",
            )?,
            feed: prepare(
                "SELECT position, handle, version FROM blindfold_events \
                 WHERE position >= $1 ORDER BY position LIMIT $2",
            )?,
            spend_proof: prepare(
                "INSERT INTO blindfold_replay (digest, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (digest) DO UPDATE SET expires_at = EXCLUDED.expires_at \
                 WHERE blindfold_replay.expires_at <= $3",
            )?,
        })
    }
}

/// A failure of the database, without its detail: a database error's message and detail can
/// quote the row (a handle) that caused it, so only its SQLSTATE code is kept.
fn backend(error: postgres::Error) -> StoreError {
    match error.code() {
        Some(code) => StoreError::Backend(format!("database error {}", code.code())),
        None if error.is_closed() => StoreError::Backend("database connection closed".into()),
        None => StoreError::Backend("database unreachable or protocol failure".into()),
    }
}

/// Whether `error` is a unique violation: another writer took the row first.
fn lost_race(error: &postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn version_of(stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| StoreError::Corrupt)
}

fn stored_version(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Corrupt)
}

fn handle_of(bytes: &[u8]) -> Result<Handle, StoreError> {
    bytes
        .try_into()
        .map(Handle)
        .map_err(|_| StoreError::Corrupt)
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a key-value string), creates
    /// the schema if it is not there, and checks `storage_key` against the store's.
    ///
    /// Fails with [`StoreError::Corrupt`] if `storage_key` is not the key the store was created
    /// with: a wrong key never gets to write streams that the right key could not open.
    pub fn open(url: &str, storage_key: StorageKey) -> Result<PostgresStore, StoreError> {
        Self::open_with(url, storage_key, DEFAULT_CONNECTIONS)
    }

    /// As [`Self::open`], with `connections` connection threads (at least one).
    pub fn open_with(
        url: &str,
        storage_key: StorageKey,
        connections: usize,
    ) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url
            .parse()
            .map_err(|_| StoreError::Backend("the database URL does not parse".into()))?;
        bound_network_waits(&mut config);
        let keys = Keys {
            projection: ProjectionSeal::new(&storage_key)?,
            storage_key,
        };

        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let pool = Arc::new(Pool {
            jobs: Mutex::new(sender),
            keys,
        });
        for _ in 0..connections.max(1) {
            let config = config.clone();
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name("blindfold-postgres".into())
                .spawn(move || serve_jobs(&config, &receiver))
                .map_err(|_| StoreError::Backend("cannot start a connection thread".into()))?;
        }
        // Even the first connection is made on a connection thread: `open` may be called from
        // async code too.
        pool.run(|connection, keys| connection.check_store(&keys.projection))?;
        Ok(PostgresStore { pool })
    }

    /// The shared table of spent DPoP proofs, on this store's connections.
    pub fn replay_table(&self, window_secs: u64) -> ProofReplayTable {
        ProofReplayTable {
            pool: Arc::clone(&self.pool),
            window_secs,
            spent: AtomicU64::new(0),
        }
    }

    /// Every projection key and value, raw as stored: accounts first (keys prefixed `a`), then
    /// items (keys prefixed `i`), in key order. For tests that compare a rebuilt projection
    /// with the live one; the same form as the fjall store's.
    #[doc(hidden)]
    pub fn projection_snapshot(&self) -> Result<Vec<RawEntry>, StoreError> {
        self.pool.run(|connection, _| {
            let rows = connection
                .client
                .query(
                    "SELECT '\\x61'::bytea || handle, record FROM blindfold_accounts \
                     UNION ALL SELECT '\\x69'::bytea || handle || item_id, entry \
                     FROM blindfold_items ORDER BY 1",
                    &[],
                )
                .map_err(backend)?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    /// Every byte value stored in every table, one entry per column of each row. For tests
    /// that search the store for plaintext.
    #[doc(hidden)]
    pub fn stored_values_for_tests(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.pool.run(|connection, _| {
            let mut values = Vec::new();
            for sql in [
                "SELECT convert_to(name, 'UTF8'), value FROM blindfold_meta",
                "SELECT handle, meta FROM blindfold_streams",
                "SELECT handle, envelope FROM blindfold_events",
                "SELECT handle, record FROM blindfold_accounts",
                "SELECT handle || item_id, entry FROM blindfold_items",
                "SELECT digest, digest FROM blindfold_replay",
            ] {
                for row in connection.client.query(sql, &[]).map_err(backend)? {
                    values.push(row.get(0));
                    values.push(row.get(1));
                }
            }
            Ok(values)
        })
    }

    /// Rewrites the stored envelope of one event with `tamper`. Exists only so tests can
    /// corrupt stored bytes; nothing else may call it.
    #[doc(hidden)]
    pub fn tamper_with_envelope_for_tests(
        &self,
        handle: &Handle,
        version: u64,
        tamper: impl FnOnce(&mut Vec<u8>) + Send + 'static,
    ) -> Result<(), StoreError> {
        let handle = *handle;
        self.pool.run(move |connection, _| {
            let version = stored_version(version)?;
            let client = &mut connection.client;
            let row = client
                .query_opt(
                    "SELECT envelope FROM blindfold_events WHERE handle = $1 AND version = $2",
                    &[&&handle.0[..], &version],
                )
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            let mut envelope: Vec<u8> = row.get(0);
            tamper(&mut envelope);
            client
                .execute(
                    "UPDATE blindfold_events SET envelope = $3 WHERE handle = $1 AND version = $2",
                    &[&&handle.0[..], &version, &envelope],
                )
                .map_err(backend)?;
            Ok(())
        })
    }

    /// Removes one row of the store's own tables, named by its table and the SQL condition
    /// `filter` (with `handle` as `$1`). Exists only so tests can take stored rows away.
    #[doc(hidden)]
    pub fn remove_rows_for_tests(
        &self,
        table: &'static str,
        filter: &'static str,
        handle: &Handle,
    ) -> Result<u64, StoreError> {
        let handle = *handle;
        self.pool.run(move |connection, _| {
            let sql = format!("DELETE FROM blindfold_{table} WHERE {filter}");
            connection
                .client
                .execute(&sql, &[&&handle.0[..]])
                .map_err(backend)
        })
    }
}

/// The longest a request waits for the database, queueing for a connection included; past it
/// the call fails (and the request gets 503) rather than holding its thread. Rebuild alone has
/// no bound.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one statement may run, and wait for a lock, on the server side.
const STATEMENT_TIMEOUT: &str = "SET statement_timeout = '10s'; SET lock_timeout = '5s'";

/// Bounds what the URL leaves open: how long a connect may take and how long a dead peer goes
/// unnoticed (TCP keepalives, and unacknowledged writes), so a partitioned database shows up as
/// an error within seconds, not hours.
fn bound_network_waits(config: &mut Config) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(10));
    }
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
}

impl Connection {
    /// Connects, with `synchronous_commit` on whatever the server's default, makes sure the
    /// tables exist and prepares the statements.
    fn open(config: &Config) -> Result<Connection, StoreError> {
        let mut client = config.connect(NoTls).map_err(backend)?;
        // IMPORTANT: a commit must not return before its WAL is flushed: `Ok` means durable.
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(backend)?;
        client.batch_execute(STATEMENT_TIMEOUT).map_err(backend)?;
        create_schema(&mut client)?;
        let statements = Statements::prepare(&mut client)?;
        Ok(Connection { client, statements })
    }

    /// Checks the schema version and the storage key, writing both into a new store.
    fn check_store(&mut self, projection: &ProjectionSeal) -> Result<(), StoreError> {
        let mut tx = self.client.transaction().map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(backend)?;
        let insert = "INSERT INTO blindfold_meta (name, value) VALUES ($1, $2) \
                      ON CONFLICT (name) DO NOTHING";
        tx.execute(insert, &[&"schema-version", &SCHEMA_VERSION])
            .map_err(backend)?;
        tx.execute(insert, &[&"key-check", &projection.key_check()?])
            .map_err(backend)?;
        let read = |tx: &mut Transaction<'_>, name: &str| -> Result<Vec<u8>, StoreError> {
            let row = tx
                .query_one("SELECT value FROM blindfold_meta WHERE name = $1", &[&name])
                .map_err(backend)?;
            Ok(row.get(0))
        };
        if read(&mut tx, "schema-version")? != SCHEMA_VERSION {
            return Err(StoreError::Backend(
                "the database holds another schema version of blindfold".into(),
            ));
        }
        if !projection.verify_key_check(&read(&mut tx, "key-check")?) {
            return Err(StoreError::Corrupt);
        }
        tx.commit().map_err(backend)
    }
}

/// Creates the tables under an advisory lock, so servers starting together do not race on the
/// catalog.
fn create_schema(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(backend)?;
    // "already exists, skipping" on every connection is noise, not news.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .map_err(backend)?;
    tx.batch_execute(SCHEMA).map_err(backend)?;
    tx.commit().map_err(backend)
}

/// A connection thread: takes jobs until the store is dropped, connecting (again) whenever it
/// has no open connection. A job that finds the database unreachable fails with that error.
fn serve_jobs(config: &Config, jobs: &Mutex<Receiver<Job>>) {
    let mut connection: Option<Connection> = None;
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let opened = match connection.take() {
            Some(open) if !open.client.is_closed() => Ok(open),
            _ => Connection::open(config),
        };
        match opened {
            Ok(mut open) => {
                job(Ok(&mut open));
                connection = Some(open);
            }
            Err(error) => job(Err(error)),
        }
    }
}

impl Pool {
    /// Runs `work` on a connection thread and waits for its result, at most [`CALL_TIMEOUT`].
    fn run<R: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut Connection, &Keys) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.run_within(Some(CALL_TIMEOUT), work)
    }

    /// Runs `work` on a connection thread and waits for its result, at most `timeout` (or as
    /// long as it takes). A call that times out may still complete on its thread; its result
    /// is dropped, and for an append the caller reports a failure it cannot be sure of.
    fn run_within<R: Send + 'static>(
        self: &Arc<Self>,
        timeout: Option<Duration>,
        work: impl FnOnce(&mut Connection, &Keys) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, result) = mpsc::sync_channel(1);
        let pool = Arc::clone(self);
        let job: Job = Box::new(move |connection| {
            let outcome = connection.and_then(|connection| work(connection, &pool.keys));
            let _ = reply.send(outcome);
        });
        self.jobs
            .lock()
            .map_err(|_| StoreError::Backend("the connection queue failed".into()))?
            .send(job)
            .map_err(|_| StoreError::Backend("no connection thread is running".into()))?;
        match timeout {
            Some(timeout) => result.recv_timeout(timeout).map_err(|error| match error {
                mpsc::RecvTimeoutError::Timeout => {
                    StoreError::Backend("the database did not answer in time".into())
                }
                mpsc::RecvTimeoutError::Disconnected => {
                    StoreError::Backend("a connection thread failed".into())
                }
            })?,
            None => result
                .recv()
                .map_err(|_| StoreError::Backend("a connection thread failed".into()))?,
        }
    }
}

impl Connection {
    /// Every append of a batch in one transaction, each under a savepoint: an append that fails
    /// is rolled back alone, and the rest commit together, once.
    fn append_batch(
        &mut self,
        keys: &Keys,
        appends: &[Append],
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let statements = &self.statements;
        let mut tx = self.client.transaction().map_err(backend)?;
        let mut stream_keys = BatchKeys::default();
        let mut results = Vec::with_capacity(appends.len());
        for append in appends {
            let mut savepoint = tx.savepoint("append").map_err(backend)?;
            let result = append_one(&mut savepoint, statements, keys, &mut stream_keys, append);
            let result = match result {
                Ok(version) => {
                    savepoint.commit().map_err(backend)?;
                    Ok(version)
                }
                Err(error) => {
                    savepoint.rollback().map_err(backend)?;
                    stream_keys.forget(&append.handle);
                    match error {
                        WriteError::Store(error) => Err(error),
                        WriteError::LostRace => {
                            Err(conflict_after_race(&mut tx, statements, append)?)
                        }
                    }
                }
            };
            results.push(result);
        }
        if results.iter().any(Result::is_ok) {
            tx.commit().map_err(backend)?;
        }
        Ok(results)
    }
}

/// One append inside `tx`: locks or claims the stream's row, checks the version, writes.
fn append_one(
    tx: &mut Transaction<'_>,
    statements: &Statements,
    keys: &Keys,
    stream_keys: &mut BatchKeys,
    append: &Append,
) -> Result<u64, WriteError> {
    let handle = &append.handle;
    let meta = lock_stream(tx, statements, handle)?;
    let exists = meta.is_some();
    let mut positions = if append.events.is_empty() {
        Vec::new().into_iter()
    } else {
        allocate_positions(tx, statements, append.events.len())?.into_iter()
    };

    let stored_record = |version| stored_account(tx, statements, &keys.projection, handle, version);
    let planned = plan::plan_append(
        &keys.sealing(),
        stream_keys,
        meta,
        stored_record,
        &mut positions,
        append,
    )?;
    let writes = match planned {
        Planned::Nothing { version } => return Ok(version),
        Planned::Write(writes) => writes,
    };
    write(tx, statements, handle, exists, &writes)?;
    Ok(writes.meta.version)
}

/// The conflict an append that lost a race met: the stream as the winner left it. Waits for
/// the winner's commit (the row lock), then reads its version.
fn conflict_after_race(
    tx: &mut Transaction<'_>,
    statements: &Statements,
    append: &Append,
) -> Result<StoreError, StoreError> {
    let actual = lock_stream(tx, statements, &append.handle)?.map_or(0, |meta| meta.version);
    Ok(StoreError::Conflict {
        expected: append.expected_version,
        actual,
    })
}

/// Why writing a planned append failed.
enum WriteError {
    /// Another writer claimed the stream or one of its versions first.
    LostRace,
    /// Anything else.
    Store(StoreError),
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> Self {
        WriteError::Store(error)
    }
}

fn write_failed(error: postgres::Error) -> WriteError {
    if lost_race(&error) {
        WriteError::LostRace
    } else {
        WriteError::Store(backend(error))
    }
}

/// The stream's meta, its row locked until the transaction ends; `None` if it does not exist.
fn lock_stream(
    tx: &mut Transaction<'_>,
    statements: &Statements,
    handle: &Handle,
) -> Result<Option<StreamMeta>, StoreError> {
    tx.query_opt(&statements.lock_stream, &[&&handle.0[..]])
        .map_err(backend)?
        .map(|row| StreamMeta::decode(row.get::<_, &[u8]>(0)))
        .transpose()
}

/// `count` fresh feed positions, in increasing order.
fn allocate_positions(
    tx: &mut Transaction<'_>,
    statements: &Statements,
    count: usize,
) -> Result<Vec<u64>, StoreError> {
    let count = i64::try_from(count).map_err(|_| StoreError::Corrupt)?;
    let mut positions = tx
        .query(&statements.positions, &[&count])
        .map_err(backend)?
        .iter()
        .map(|row| version_of(row.get(0)))
        .collect::<Result<Vec<_>, _>>()?;
    positions.sort_unstable();
    Ok(positions)
}

/// The stored account record of `handle`, given the stream's version.
fn stored_account(
    tx: &mut Transaction<'_>,
    statements: &Statements,
    projection: &ProjectionSeal,
    handle: &Handle,
    version: u64,
) -> Result<Option<AccountRecord>, StoreError> {
    tx.query_opt(&statements.sealed_record, &[&&handle.0[..]])
        .map_err(backend)?
        .map(|row| projection.open_account(handle, row.get::<_, &[u8]>(0), version))
        .transpose()
}

/// Writes a planned append: the stream row first (claimed if new, so a concurrent creator of
/// the same stream loses here), then the events, the item index and the record.
fn write(
    tx: &mut Transaction<'_>,
    statements: &Statements,
    handle: &Handle,
    exists: bool,
    writes: &Writes,
) -> Result<(), WriteError> {
    let meta = writes.meta.encode();
    if exists {
        tx.execute(&statements.update_stream, &[&&handle.0[..], &meta])
            .map_err(write_failed)?;
    } else if tx
        .execute(&statements.claim_stream, &[&&handle.0[..], &meta])
        .map_err(write_failed)?
        == 0
    {
        return Err(WriteError::LostRace);
    }

    let mut versions = Vec::with_capacity(writes.events.len());
    let mut positions = Vec::with_capacity(writes.events.len());
    let mut envelopes = Vec::with_capacity(writes.events.len());
    for event in &writes.events {
        versions.push(stored_version(event.version)?);
        positions.push(stored_version(event.position)?);
        envelopes.push(event.envelope.as_slice());
    }
    tx.execute(
        &statements.insert_events,
        &[&&handle.0[..], &versions, &positions, &envelopes],
    )
    .map_err(write_failed)?;

    for (item_id, sealed) in &writes.items {
        match sealed {
            Some(sealed) => tx.execute(
                &statements.upsert_item,
                &[&&handle.0[..], &&item_id.0[..], sealed],
            ),
            None => tx.execute(&statements.delete_item, &[&&handle.0[..], &&item_id.0[..]]),
        }
        .map_err(write_failed)?;
    }
    if let Some(record) = &writes.record {
        tx.execute(&statements.upsert_record, &[&&handle.0[..], record])
            .map_err(write_failed)?;
    }
    Ok(())
}

impl EventStore for PostgresStore {
    /// Appends each `Append` in one transaction with one commit for the whole call; each append
    /// runs under its own savepoint, so one that fails writes nothing and fails alone.
    ///
    /// Beyond the trait, as the fjall store: the first event of a new stream must be
    /// `AccountCreated`, else that append is `NotFound`; `AccountCreated` on an existing stream
    /// is a `Conflict` with `expected: 0`. An append without events writes nothing and returns
    /// the current version. A lost race with another server is a `Conflict`. If the commit
    /// itself fails, every append of the call fails with `Backend`.
    fn append_batch(&self, appends: Vec<Append>) -> Vec<Result<u64, StoreError>> {
        let count = appends.len();
        match self
            .pool
            .run(move |connection, keys| connection.append_batch(keys, &appends))
        {
            Ok(results) => results,
            Err(error) => {
                let message = error.to_string();
                (0..count)
                    .map(|_| Err(StoreError::Backend(message.clone())))
                    .collect()
            }
        }
    }

    /// The sealed record and the stream meta's version, read by one statement (one snapshot).
    fn account(&self, handle: &Handle) -> Result<Option<AccountRecord>, StoreError> {
        let handle = *handle;
        self.pool.run(move |connection, keys| {
            let Some(row) = connection
                .client
                .query_opt(&connection.statements.account, &[&&handle.0[..]])
                .map_err(backend)?
            else {
                return Ok(None);
            };
            let sealed: &[u8] = row.get(0);
            let meta: Option<&[u8]> = row.get(1);
            let version = StreamMeta::decode(meta.ok_or(StoreError::Corrupt)?)?.version;
            keys.projection
                .open_account(&handle, sealed, version)
                .map(Some)
        })
    }

    fn items(&self, handle: &Handle) -> Result<Vec<ItemEntry>, StoreError> {
        let handle = *handle;
        self.pool.run(move |connection, keys| {
            let rows = connection
                .client
                .query(&connection.statements.items, &[&&handle.0[..]])
                .map_err(backend)?;
            rows.iter()
                .map(|row| {
                    let item_id = ItemId(
                        row.get::<_, &[u8]>(0)
                            .try_into()
                            .map_err(|_| StoreError::Corrupt)?,
                    );
                    keys.projection.open_item(&handle, &item_id, row.get(1))
                })
                .collect()
        })
    }

    fn item(&self, handle: &Handle, item_id: &ItemId) -> Result<Option<ItemEntry>, StoreError> {
        let (handle, item_id) = (*handle, *item_id);
        self.pool.run(move |connection, keys| {
            connection
                .client
                .query_opt(
                    &connection.statements.item,
                    &[&&handle.0[..], &&item_id.0[..]],
                )
                .map_err(backend)?
                .map(|row| keys.projection.open_item(&handle, &item_id, row.get(0)))
                .transpose()
        })
    }

    /// Every event of the stream, in order, read by one statement; `NotFound` if there is no
    /// such stream, `Corrupt` if any envelope fails to open or an event is missing.
    fn read_stream(&self, handle: &Handle) -> Result<Vec<RecordedEvent>, StoreError> {
        let handle = *handle;
        self.pool.run(move |connection, keys| {
            let rows = connection
                .client
                .query(&connection.statements.stream, &[&&handle.0[..]])
                .map_err(backend)?;
            let first = rows.first().ok_or(StoreError::NotFound)?;
            let meta = StreamMeta::decode(first.get(0))?;
            let key = meta.open_key(&keys.storage_key, &handle)?;

            let mut events = Vec::with_capacity(rows.len());
            for (expected, row) in (1u64..).zip(&rows) {
                let (Some(version), Some(envelope)) =
                    (row.get::<_, Option<i64>>(1), row.get::<_, Option<&[u8]>>(2))
                else {
                    break;
                };
                let version = version_of(version)?;
                if version != expected {
                    return Err(StoreError::Corrupt);
                }
                events.push(crate::envelope::open_event(&key, &handle, version, envelope)?.1);
            }
            if events.len() as u64 != meta.version {
                return Err(StoreError::Corrupt);
            }
            Ok(events)
        })
    }

    fn read_event(&self, handle: &Handle, version: u64) -> Result<RecordedEvent, StoreError> {
        let handle = *handle;
        self.pool.run(move |connection, keys| {
            let stored = stored_version(version).map_err(|_| StoreError::NotFound)?;
            let row = connection
                .client
                .query_opt(&connection.statements.event, &[&&handle.0[..], &stored])
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            let key = StreamMeta::decode(row.get(0))?.open_key(&keys.storage_key, &handle)?;
            let envelope: Option<&[u8]> = row.get(1);
            let envelope = envelope.ok_or(StoreError::NotFound)?;
            Ok(crate::envelope::open_event(&key, &handle, version, envelope)?.1)
        })
    }

    fn feed(&self, from: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        self.pool.run(move |connection, _| {
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = connection
                .client
                .query(&connection.statements.feed, &[&from, &limit])
                .map_err(backend)?;
            rows.iter()
                .map(|row| {
                    Ok(FeedEntry {
                        position: version_of(row.get(0))?,
                        handle: handle_of(row.get(1))?,
                        version: version_of(row.get(2))?,
                    })
                })
                .collect()
        })
    }

    /// Removes the stream's key, events (its feed entries with them) and projections in one
    /// durable transaction; `NotFound` if there is no such stream.
    //
    // LIMITATION: PostgreSQL deletes by marking rows dead; the old bytes (the sealed stream key
    // among them) stay in table files, the WAL and its archives until VACUUM reuses the space
    // and the WAL is recycled, so a copy taken meanwhile can still open the stream with the
    // storage key. The way out is a VACUUM of blindfold_streams after deletions and a WAL
    // retention the operator chooses knowingly.
    fn delete_stream(&self, handle: &Handle) -> Result<(), StoreError> {
        let handle = *handle;
        self.pool.run(move |connection, _| {
            let mut tx = connection.client.transaction().map_err(backend)?;
            let removed = tx
                .execute(
                    "DELETE FROM blindfold_streams WHERE handle = $1",
                    &[&&handle.0[..]],
                )
                .map_err(backend)?;
            if removed == 0 {
                return Err(StoreError::NotFound);
            }
            for table in ["blindfold_events", "blindfold_accounts", "blindfold_items"] {
                let sql = format!("DELETE FROM {table} WHERE handle = $1");
                tx.execute(&sql, &[&&handle.0[..]]).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
    }

    /// Replays the log stream by stream in one transaction, reading only ciphertext and the
    /// storage key: the events come from a cursor in (handle, version) order, each stream key
    /// is unwrapped once, each stream's projections are folded in memory and inserted in
    /// chunks. The result is what the appends wrote, byte for byte (see [`crate::plan`]).
    ///
    /// A stream with an envelope that does not open, a gap, an event that cannot follow, fewer
    /// events than its meta records, or no events at all is skipped whole, counted in
    /// `corrupt_streams` and logged without its handle. Events without a stream row (a
    /// deleted stream) are skipped.
    ///
    /// The tables are locked against writers (of every server) for its length; readers go on
    /// and see the old projections until it commits. Run it with the servers stopped anyway,
    /// as with fjall.
    fn rebuild(&self) -> Result<RebuildReport, StoreError> {
        self.pool.run_within(None, |connection, keys| {
            // A rebuild's statements may each take long: no statement timeout on its connection.
            connection
                .client
                .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
                .map_err(backend)?;
            let report = rebuild(&mut connection.client, keys);
            connection
                .client
                .batch_execute(STATEMENT_TIMEOUT)
                .map_err(backend)?;
            report
        })
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.pool.run(|connection, _| {
            let row = connection
                .client
                .query_one(
                    "SELECT (SELECT count(*) FROM blindfold_streams), \
                     (SELECT count(*) FROM blindfold_events), \
                     (SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
                      WHERE c.relname LIKE 'blindfold\\_%' AND c.relkind IN ('r', 'S') \
                      AND pg_table_is_visible(c.oid))",
                    &[],
                )
                .map_err(backend)?;
            Ok(StoreStats {
                streams: version_of(row.get(0))?,
                events: version_of(row.get(1))?,
                disk_bytes: version_of(row.get::<_, Option<i64>>(2).unwrap_or(0))?,
            })
        })
    }
}

/// Projection rows a rebuild has folded but not inserted yet.
#[derive(Default)]
struct PendingProjections {
    account_handles: Vec<Vec<u8>>,
    records: Vec<Vec<u8>>,
    item_handles: Vec<Vec<u8>>,
    item_ids: Vec<Vec<u8>>,
    entries: Vec<Vec<u8>>,
}

impl PendingProjections {
    fn push(&mut self, handle: &Handle, sealed: plan::SealedProjection) {
        for (item_id, entry) in sealed.items {
            self.item_handles.push(handle.0.to_vec());
            self.item_ids.push(item_id.0.to_vec());
            self.entries.push(entry);
        }
        self.account_handles.push(handle.0.to_vec());
        self.records.push(sealed.record);
    }

    fn len(&self) -> usize {
        self.records.len() + self.entries.len()
    }

    /// Inserts what is pending, in two statements.
    fn flush(&mut self, tx: &mut Transaction<'_>) -> Result<(), StoreError> {
        let pending = std::mem::take(self);
        tx.execute(
            "INSERT INTO blindfold_accounts (handle, record) \
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[])",
            &[&pending.account_handles, &pending.records],
        )
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO blindfold_items (handle, item_id, entry) \
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[])",
            &[&pending.item_handles, &pending.item_ids, &pending.entries],
        )
        .map_err(backend)?;
        Ok(())
    }
}

/// One rebuild: see [`PostgresStore::rebuild`].
fn rebuild(client: &mut Client, keys: &Keys) -> Result<RebuildReport, StoreError> {
    let mut tx = client.transaction().map_err(backend)?;
    tx.batch_execute(
        "LOCK TABLE blindfold_streams, blindfold_events, blindfold_accounts, blindfold_items \
         IN EXCLUSIVE MODE; DELETE FROM blindfold_accounts; DELETE FROM blindfold_items;",
    )
    .map_err(backend)?;

    let mut replay = Replay {
        keys,
        stream: None,
        pending: PendingProjections::default(),
        report: RebuildReport::default(),
    };
    let without_events = tx
        .query_one(
            "SELECT count(*) FROM blindfold_streams s WHERE NOT EXISTS \
             (SELECT 1 FROM blindfold_events e WHERE e.handle = s.handle)",
            &[],
        )
        .map_err(backend)?;
    for _ in 0..version_of(without_events.get(0))? {
        replay.mark_corrupt(None);
    }

    let cursor = tx
        .bind(
            "SELECT e.handle, e.version, e.envelope, s.meta FROM blindfold_events e \
             LEFT JOIN blindfold_streams s ON s.handle = e.handle ORDER BY e.handle, e.version",
            &[],
        )
        .map_err(backend)?;
    loop {
        let rows = tx.query_portal(&cursor, REBUILD_FETCH).map_err(backend)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            replay.event(&mut tx, row)?;
        }
    }
    replay.finish_stream(&mut tx)?;
    replay.pending.flush(&mut tx)?;
    tx.commit().map_err(backend)?;
    Ok(replay.report)
}

/// One rebuild under way: the stream it is on, what it has folded but not inserted, and the
/// counts so far.
struct Replay<'a> {
    keys: &'a Keys,
    stream: Option<(Handle, Option<StreamFold>)>,
    pending: PendingProjections,
    report: RebuildReport,
}

impl Replay<'_> {
    fn mark_corrupt(&mut self, position: Option<u64>) {
        tracing::warn!(?position, "rebuild.stream_corrupt");
        self.report.corrupt_streams += 1;
    }

    /// Applies one row `(handle, version, envelope, stream meta or NULL)`; a stream that turns
    /// out corrupt is dropped (its fold becomes `None`) and its remaining events skipped.
    fn event(&mut self, tx: &mut Transaction<'_>, row: &Row) -> Result<(), StoreError> {
        let handle = handle_of(row.get(0))?;
        let version = version_of(row.get(1))?;
        let envelope: &[u8] = row.get(2);
        let meta: Option<&[u8]> = row.get(3);
        let keys = self.keys;
        if self
            .stream
            .as_ref()
            .is_none_or(|(current, _)| *current != handle)
        {
            self.finish_stream(tx)?;
            let fold = match meta {
                // No stream row: a deleted stream, whose events are skipped.
                None => None,
                Some(meta) => match StreamFold::open(&keys.storage_key, &handle, meta) {
                    Ok(fold) => Some(fold),
                    Err(_) => {
                        self.mark_corrupt(None);
                        None
                    }
                },
            };
            self.stream = Some((handle, fold));
        }
        let Some((_, Some(open))) = self.stream.as_mut() else {
            return Ok(());
        };
        match open.apply(&handle, version, envelope) {
            Ok(()) => self.report.events += 1,
            Err(StoreError::Corrupt) => {
                self.stream = Some((handle, None));
                self.mark_corrupt(crate::envelope::envelope_position(envelope).ok());
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// Seals the projections of the stream just replayed, if it was whole.
    fn finish_stream(&mut self, tx: &mut Transaction<'_>) -> Result<(), StoreError> {
        let Some((handle, Some(fold))) = self.stream.take() else {
            return Ok(());
        };
        match fold.seal(&self.keys.projection, &handle)? {
            Some(sealed) => {
                self.pending.push(&handle, sealed);
                self.report.accounts += 1;
            }
            // Events the meta records are missing from the log's tail.
            None => self.mark_corrupt(None),
        }
        if self.pending.len() >= REBUILD_CHUNK {
            self.pending.flush(tx)?;
        }
        Ok(())
    }
}

/// The shared memory of spent DPoP proofs (RFC 9449 §11.1) for servers that share a database:
/// a proof spent on one server is a replay on every other.
///
/// An entry is `(digest of the jti, expiry)`; inserting a digest that is still unexpired
/// changes nothing and is a replay. Expired rows are pruned every [`REPLAY_PRUNE_EVERY`] spent
/// proofs. Commits run with `synchronous_commit = off`: the row is visible to every server the
/// moment it commits, and only a crash of the database itself may forget the last fraction of
/// a second of spent proofs, which is less than a proof's window. **`window_secs` must be at
/// least the window the proofs are verified with.**
pub struct ProofReplayTable {
    pool: Arc<Pool>,
    window_secs: u64,
    spent: AtomicU64,
}

impl ProofReplayTable {
    /// Records a proof as spent; `Ok(false)` if it was spent already and has not expired.
    /// `iat` and `now` are Unix seconds.
    pub fn spend(&self, jti_digest: [u8; 32], iat: u64, now: u64) -> Result<bool, StoreError> {
        // Kept until one second past the last moment the proof could pass (as in memory).
        let expiry = iat.saturating_add(self.window_secs).saturating_add(1);
        let prune = self
            .spent
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(REPLAY_PRUNE_EVERY);
        self.pool.run(move |connection, _| {
            let expiry = i64::try_from(expiry).unwrap_or(i64::MAX);
            let now = i64::try_from(now).unwrap_or(i64::MAX);
            let statements = &connection.statements;
            // LIMITATION: BEGIN, SET LOCAL, the insert and COMMIT are four round trips on the
            // path of every authenticated request, where the insert alone would be one. A
            // connection kept for spends, with `synchronous_commit = off` for its session, would
            // make it one.
            let mut tx = connection.client.transaction().map_err(backend)?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .map_err(backend)?;
            let fresh = tx
                .execute(&statements.spend_proof, &[&&jti_digest[..], &expiry, &now])
                .map_err(backend)?
                == 1;
            if prune {
                // Rows are kept a margin past their expiry by this server's clock, so a server
                // whose clock runs behind this one's never finds a live proof already pruned.
                let before = now.saturating_sub(REPLAY_PRUNE_MARGIN_SECS);
                tx.execute(
                    "DELETE FROM blindfold_replay WHERE expires_at <= $1",
                    &[&before],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(fresh)
        })
    }
}
