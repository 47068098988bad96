//! blindfold's event log: the versioned event schema, the `EventStore` trait, its embedded
//! fjall implementation and its shared PostgreSQL implementation.
//!
//! The log is the source of truth. Every stored byte is ciphertext: events are sealed with a
//! per-stream key, which is itself sealed with the server's storage key. Projections (the current
//! account record and the item index) are derived from the log and can be rebuilt from it.
//!
//! This crate must never see a user key or a plaintext username, profile or item: everything it
//! stores that belongs to a user was sealed under the user key before it arrived here.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod aead;
mod envelope;
pub mod fjall_store;
mod plan;
pub mod postgres_store;
pub mod projection;
pub mod schema;
pub mod store;

#[doc(hidden)]
pub use envelope::{decode_stored_bytes_for_fuzzing, seal_and_open_for_benches};
pub use fjall_store::FjallStore;
pub use postgres_store::{PostgresStore, ProofReplayTable};
pub use projection::{AccountRecord, ItemEntry, TotpState};
pub use schema::{Event, KdfParams, PasswordWrap, RecordedEvent};
pub use store::{Append, EventStore, FeedEntry, RebuildReport, StoreError, StoreStats};

use zeroize::{Zeroize, ZeroizeOnDrop};

/// The blind handle of an account: HMAC-SHA256 of the normalized username under the server's
/// index key. The only name the storage layer knows an account by.
///
/// Debug never prints the bytes: a handle must not reach a log.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Handle(pub [u8; 32]);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle(<redacted>)")
    }
}

/// An item's blind id: HMAC of its name under a key derived from the user key. The server never
/// sees item names, only these ids.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ItemId(pub [u8; 32]);

impl std::fmt::Debug for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ItemId(<redacted>)")
    }
}

/// The server's storage key (`HKDF(master, "blindfold/v1/storage")`): the outer seal of every
/// stored byte. Wiped on drop; Debug prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StorageKey([u8; 32]);

impl StorageKey {
    /// Wraps 32 bytes of key material.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes, for the one line that uses them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(<redacted>)")
    }
}
