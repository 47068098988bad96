//! The stores the tests run against, behind one trait, and the macro that runs a generic test
//! once per store.
//!
//! PostgreSQL tests find their server in `BLINDFOLD_TEST_POSTGRES_URL`; each test gets a schema
//! of its own, dropped at its end. Without the variable they say they are skipped and pass,
//! unless `BLINDFOLD_REQUIRE_POSTGRES=1`, when they fail.

use std::path::PathBuf;

use blindfold_events::{EventStore, FjallStore, Handle, PostgresStore, StorageKey, StoreError};

use crate::storage_key;

/// One key and value of a projection, as stored.
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// A place a store keeps its data (a directory, a database schema), and what tests need to look
/// at it from outside.
pub trait Backend: Sized {
    /// The store.
    type Store: EventStore;

    /// A new, empty place; `None` if this backend is not available here (the test is skipped).
    fn fresh() -> Option<Self>;

    /// Opens (again) the store in this place, under `key`.
    fn open_with(&self, key: StorageKey) -> Result<Self::Store, StoreError>;

    /// Every projection key and value, raw.
    fn snapshot(store: &Self::Store) -> Vec<RawEntry>;

    /// Rewrites the stored envelope of one event.
    fn tamper(store: &Self::Store, handle: &Handle, version: u64, tamper: fn(&mut Vec<u8>));

    /// Removes one event's stored envelope, behind the store's back; returns the store.
    fn remove_event(&self, store: Self::Store, handle: &Handle, version: u64) -> Self::Store;

    /// Every byte the place holds, in pieces (files, or values of rows).
    fn stored_bytes(&self) -> Vec<Vec<u8>>;

    /// Opens the store under the tests' storage key.
    fn open(&self) -> Self::Store {
        self.open_with(storage_key()).unwrap()
    }
}

/// Runs each named generic test, `fn name<B: Backend>(backend: B)`, once per store: as
/// `fjall::name` and `postgres::name`.
macro_rules! for_each_store {
    ($($test:ident),* $(,)?) => {
        mod fjall {
            $(
                #[test]
                fn $test() {
                    let backend = <$crate::backend::Fjall as $crate::backend::Backend>::fresh();
                    super::$test(backend.unwrap());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(backend) =
                        <$crate::backend::Postgres as $crate::backend::Backend>::fresh()
                    {
                        super::$test(backend);
                    }
                }
            )*
        }
    };
}
pub(crate) use for_each_store;

/// The embedded store in a temporary directory.
pub struct Fjall {
    dir: tempfile::TempDir,
}

impl Backend for Fjall {
    type Store = FjallStore;

    fn fresh() -> Option<Self> {
        Some(Fjall {
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn open_with(&self, key: StorageKey) -> Result<FjallStore, StoreError> {
        FjallStore::open(self.dir.path(), key)
    }

    fn snapshot(store: &FjallStore) -> Vec<RawEntry> {
        store.projection_snapshot().unwrap()
    }

    fn tamper(store: &FjallStore, handle: &Handle, version: u64, tamper: fn(&mut Vec<u8>)) {
        store
            .tamper_with_envelope_for_tests(handle, version, tamper)
            .unwrap()
    }

    fn remove_event(&self, store: FjallStore, handle: &Handle, version: u64) -> FjallStore {
        drop(store);
        let db = fjall::Database::builder(self.dir.path()).open().unwrap();
        let events = db
            .keyspace("events", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        events
            .remove([&handle.0[..], &version.to_be_bytes()].concat())
            .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
        drop((events, db));
        self.open()
    }

    fn stored_bytes(&self) -> Vec<Vec<u8>> {
        files(self.dir.path().to_path_buf())
            .into_iter()
            .map(|file| std::fs::read(file).unwrap())
            .collect()
    }
}

fn files(dir: PathBuf) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The server named by `BLINDFOLD_TEST_POSTGRES_URL`, or `None` (and a line saying the test is
/// skipped) without it. Fails instead when `BLINDFOLD_REQUIRE_POSTGRES=1`.
pub fn postgres_url() -> Option<String> {
    match std::env::var("BLINDFOLD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("BLINDFOLD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "BLINDFOLD_REQUIRE_POSTGRES=1 but BLINDFOLD_TEST_POSTGRES_URL is not set"
            );
            println!("skipped: BLINDFOLD_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// The shared store in a schema of its own, dropped when the test ends.
pub struct Postgres {
    admin: postgres::Client,
    schema: String,
    url: String,
}

impl Postgres {
    /// A connection of its own to this test's schema, for reading and writing rows behind the
    /// store's back.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Backend for Postgres {
    type Store = PostgresStore;

    fn fresh() -> Option<Self> {
        let url = postgres_url()?;
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).unwrap();
        let schema = format!("test_{}", u64::from_le_bytes(suffix));
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}options=-csearch_path%3D{schema}");
        Some(Postgres { admin, schema, url })
    }

    fn open_with(&self, key: StorageKey) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with(&self.url, key, 2)
    }

    fn snapshot(store: &PostgresStore) -> Vec<RawEntry> {
        store.projection_snapshot().unwrap()
    }

    fn tamper(store: &PostgresStore, handle: &Handle, version: u64, tamper: fn(&mut Vec<u8>)) {
        store
            .tamper_with_envelope_for_tests(handle, version, tamper)
            .unwrap()
    }

    fn remove_event(&self, store: PostgresStore, handle: &Handle, version: u64) -> PostgresStore {
        let filter = match version {
            1 => "handle = $1 AND version = 1",
            2 => "handle = $1 AND version = 2",
            _ => panic!("no filter for version {version}"),
        };
        assert_eq!(
            store
                .remove_rows_for_tests("events", filter, handle)
                .unwrap(),
            1
        );
        store
    }

    fn stored_bytes(&self) -> Vec<Vec<u8>> {
        self.open().stored_values_for_tests().unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema));
    }
}
