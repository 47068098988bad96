//! Integration tests of the event stores, in one binary. The tests of `store` and `rebuild` are
//! written once, over [`backend::Backend`], and run against fjall and against PostgreSQL.

mod backend;
mod crash;
mod rebuild;
mod shared;
mod store;

use std::path::Path;

use blindfold_events::{
    Append, Event, EventStore, FjallStore, Handle, ItemId, KdfParams, PasswordWrap, StorageKey,
};

/// The storage key every test store is opened with.
pub fn storage_key() -> StorageKey {
    StorageKey::from_bytes([0x42; 32])
}

/// Opens the store in `dir` under [`storage_key`].
pub fn open(dir: &Path) -> FjallStore {
    FjallStore::open(dir, storage_key()).unwrap()
}

/// The handle of test account `n`.
pub fn handle(n: u8) -> Handle {
    Handle([n; 32])
}

/// A password wrap recognisable by `byte`.
pub fn wrap(byte: u8) -> PasswordWrap {
    PasswordWrap {
        salt: [byte; 16],
        params: KdfParams::default(),
        wrapped_user_key: vec![byte; 48],
    }
}

/// A typical `AccountCreated`.
pub fn created() -> Event {
    Event::AccountCreated {
        sealed_username: vec![1; 40],
        sealed_profile: vec![2; 120],
        password: wrap(1),
        wrapped_user_key_recovery: vec![3; 60],
    }
}

/// A typical `ItemPut` of item `n`.
pub fn item_put(n: u8, size: u64) -> Event {
    Event::ItemPut {
        item_id: ItemId([n; 32]),
        sealed_name: vec![n; 30],
        sealed_value: vec![n; size as usize + 28],
        size,
    }
}

/// One append of `events` to account `n` at `expected_version`.
pub fn append(n: u8, expected_version: u64, events: Vec<Event>) -> Append {
    Append {
        handle: handle(n),
        expected_version,
        at: 1_700_000_000,
        events,
    }
}

/// Appends alone and returns the new version.
pub fn append_one(store: &impl EventStore, append: Append) -> u64 {
    store.append_batch(vec![append]).pop().unwrap().unwrap()
}
