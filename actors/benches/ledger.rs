//! Durable appends through the ledger (group commit) at 1, 16 and 64 concurrent writers.
//!
//! Starts [`Actors`] on a [`FjallStore`] in a temporary directory, then lets each writer append
//! one item event at a time to its own stream, waiting for each to be durable before the next,
//! as a request handler does. Reports appends per second at each concurrency, the mean batch
//! (appends per fsync, counted by a wrapper around the store), and the 64:1 ratio.
//!
//! Run: `cargo bench -p blindfold-actors --bench ledger` (`LEDGER_SECONDS` sets the time per
//! level, default 5).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use blindfold_actors::crypto::keys::{MasterSecret, ServerKeys};
use blindfold_actors::sealer::SealerKeys;
use blindfold_actors::{ActorSetup, Actors};
use blindfold_events::{
    AccountRecord, Append, Event, EventStore, FeedEntry, FjallStore, Handle, ItemEntry, ItemId,
    KdfParams, PasswordWrap, RebuildReport, RecordedEvent, StoreError, StoreStats,
};

const LEVELS: [usize; 3] = [1, 16, 64];

/// The store, counting its write batches (each one fsync).
struct Counting {
    inner: FjallStore,
    batches: AtomicU64,
}

impl EventStore for Counting {
    fn append_batch(&self, appends: Vec<Append>) -> Vec<Result<u64, StoreError>> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.inner.append_batch(appends)
    }
    fn account(&self, handle: &Handle) -> Result<Option<AccountRecord>, StoreError> {
        self.inner.account(handle)
    }
    fn items(&self, handle: &Handle) -> Result<Vec<ItemEntry>, StoreError> {
        self.inner.items(handle)
    }
    fn item(&self, handle: &Handle, item_id: &ItemId) -> Result<Option<ItemEntry>, StoreError> {
        self.inner.item(handle, item_id)
    }
    fn read_stream(&self, handle: &Handle) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(handle)
    }
    fn read_event(&self, handle: &Handle, version: u64) -> Result<RecordedEvent, StoreError> {
        self.inner.read_event(handle, version)
    }
    fn feed(&self, from: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        self.inner.feed(from, limit)
    }
    fn delete_stream(&self, handle: &Handle) -> Result<(), StoreError> {
        self.inner.delete_stream(handle)
    }
    fn rebuild(&self) -> Result<RebuildReport, StoreError> {
        self.inner.rebuild()
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
}

fn handle(level: usize, writer: usize) -> Handle {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(level as u64).to_be_bytes());
    bytes[8..16].copy_from_slice(&(writer as u64).to_be_bytes());
    Handle(bytes)
}

fn created() -> Event {
    Event::AccountCreated {
        sealed_username: vec![1; 40],
        sealed_profile: vec![2; 200],
        password: PasswordWrap {
            salt: [3; 16],
            params: KdfParams::default(),
            wrapped_user_key: vec![4; 60],
        },
        wrapped_user_key_recovery: vec![5; 60],
    }
}

/// A 256-byte item value with its sealed name, as `PUT /v1/me/items/{name}` appends.
fn item_put(n: u64) -> Event {
    Event::ItemPut {
        item_id: ItemId([(n % 16) as u8; 32]),
        sealed_name: vec![6; 40],
        sealed_value: vec![7; 256 + 28],
        size: 256,
    }
}

/// Appends from `writers` concurrent writers for `duration`; returns (appends, batches).
async fn run_level(
    actors: &Arc<Actors>,
    store: &Counting,
    writers: usize,
    duration: Duration,
) -> (u64, u64) {
    // Each writer's stream exists before the clock starts.
    for writer in 0..writers {
        let append = Append {
            handle: handle(writers, writer),
            expected_version: 0,
            at: 1,
            events: vec![created()],
        };
        actors.ledger.append(append).await.expect("account created");
    }

    let batches_before = store.batches.load(Ordering::Relaxed);
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let actors = Arc::clone(actors);
            tokio::spawn(async move {
                let mut version = 1u64;
                while Instant::now() < deadline {
                    let append = Append {
                        handle: handle(writers, writer),
                        expected_version: version,
                        at: 1,
                        events: vec![item_put(version)],
                    };
                    version = actors.ledger.append(append).await.expect("durable append");
                }
                version - 1
            })
        })
        .collect();
    let mut appends = 0;
    for task in tasks {
        appends += task.await.expect("writer");
    }
    (
        appends,
        store.batches.load(Ordering::Relaxed) - batches_before,
    )
}

fn main() {
    let seconds = std::env::var("LEDGER_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = ServerKeys::derive(&MasterSecret::generate().expect("master"), 1).expect("keys");
        let inner = FjallStore::open(dir.path(), keys.storage.clone()).expect("store");
        let store = Arc::new(Counting {
            inner,
            batches: AtomicU64::new(0),
        });
        let actors = Actors::start(ActorSetup {
            kdf_workers: 1,
            kdf_queue: 1,
            kdf_params: KdfParams {
                m_cost_kib: 8,
                t_cost: 1,
                p_cost: 1,
            },
            pepper: keys.pepper,
            decoy: keys.decoy,
            sealer_keys: SealerKeys {
                index: keys.index,
                tokens: keys.tokens,
            },
            store: Arc::clone(&store) as Arc<dyn EventStore>,
        })
        .await
        .expect("actors");

        println!("durable appends through the ledger, {seconds} s per level");
        println!(
            "{:>8} {:>10} {:>12} {:>12}",
            "writers", "appends", "appends/s", "per fsync"
        );
        let mut rates = Vec::new();
        for writers in LEVELS {
            let (appends, batches) = run_level(&actors, &store, writers, duration).await;
            let rate = appends as f64 / duration.as_secs_f64();
            let per_batch = appends as f64 / batches.max(1) as f64;
            println!("{writers:>8} {appends:>10} {rate:>12.0} {per_batch:>12.1}");
            rates.push(rate);
        }
        let one = rates.first().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
        for (writers, rate) in LEVELS.iter().zip(&rates).skip(1) {
            println!("ratio {writers}:1 = {:.1}x", rate / one);
        }
        actors.stop();
    });
}
