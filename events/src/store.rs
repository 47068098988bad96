//! The storage trait every backend implements.

use crate::{AccountRecord, Event, Handle, ItemEntry, ItemId, RecordedEvent};

/// One atomic append to one stream.
#[derive(Clone, Debug)]
pub struct Append {
    /// The stream (account) appended to.
    pub handle: Handle,
    /// The version the caller last saw: 0 for a stream that must not exist yet.
    pub expected_version: u64,
    /// Unix seconds, recorded with each event.
    pub at: u64,
    /// The events, given versions `expected_version + 1 ..` in order.
    pub events: Vec<Event>,
}

/// One entry of the global feed: which event of which stream came at this position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    /// Position in the feed, strictly increasing.
    pub position: u64,
    /// The stream.
    pub handle: Handle,
    /// The event's version in its stream.
    pub version: u64,
}

/// What a rebuild did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events replayed.
    pub events: u64,
    /// Accounts rebuilt.
    pub accounts: u64,
    /// Streams skipped because an envelope would not open (each is also logged).
    pub corrupt_streams: u64,
}

/// Counts and sizes an operator may see: nothing that belongs to a user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Streams (accounts).
    pub streams: u64,
    /// Events across all streams.
    pub events: u64,
    /// Bytes on disk.
    pub disk_bytes: u64,
}

/// Errors of the storage layer. None of them carries a handle, a key or any stored bytes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream's version was not the one the append expected.
    #[error("version conflict: expected {expected}, found {actual}")]
    Conflict {
        /// Version the append expected.
        expected: u64,
        /// Version the stream has.
        actual: u64,
    },
    /// No such stream or event.
    #[error("not found")]
    NotFound,
    /// A stored envelope of this stream failed to open or decode. Other streams are unaffected.
    #[error("corrupt stream")]
    Corrupt,
    /// The underlying store failed.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// An append-only, encrypted event log with its projections.
///
/// **Guarantees every implementation must keep:** an append is atomic (all of its events and the
/// projection changes, or none) and durable before `append_batch` returns; a stale
/// `expected_version` is a `Conflict`, never a lost update; nothing user-readable is stored.
pub trait EventStore: Send + Sync + 'static {
    /// Appends each `Append` atomically, all of them with one durable commit (group commit).
    /// Results are in the order given; one append's conflict does not fail the others. Appends
    /// to the same stream within one batch see each other in order.
    fn append_batch(&self, appends: Vec<Append>) -> Vec<Result<u64, StoreError>>;

    /// The current record of an account, from the projection.
    fn account(&self, handle: &Handle) -> Result<Option<AccountRecord>, StoreError>;

    /// The account's item index, from the projection, ordered by item id.
    fn items(&self, handle: &Handle) -> Result<Vec<ItemEntry>, StoreError>;

    /// One entry of the account's item index.
    fn item(&self, handle: &Handle, item_id: &ItemId) -> Result<Option<ItemEntry>, StoreError>;

    /// Every event of a stream, in order.
    fn read_stream(&self, handle: &Handle) -> Result<Vec<RecordedEvent>, StoreError>;

    /// One event of a stream.
    fn read_event(&self, handle: &Handle, version: u64) -> Result<RecordedEvent, StoreError>;

    /// Up to `limit` feed entries from position `from` on, in order.
    fn feed(&self, from: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError>;

    /// Deletes a stream, its key and its projections, durably. What is left cannot be opened.
    fn delete_stream(&self, handle: &Handle) -> Result<(), StoreError>;

    /// Drops every projection and replays the feed from ciphertext alone.
    fn rebuild(&self) -> Result<RebuildReport, StoreError>;

    /// Counts and sizes.
    fn stats(&self) -> Result<StoreStats, StoreError>;
}
