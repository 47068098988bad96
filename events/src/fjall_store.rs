//! The embedded event store on fjall: one process, one data directory, every value sealed.
//!
//! ```text
//! keyspace   key                      value
//! streams    handle                   stream meta: version, stream key sealed by storage key
//! events     handle ‖ version BE      envelope: frame ‖ event sealed by the stream key
//! feed       position BE              handle ‖ version BE
//! accounts   handle                   AccountRecord, sealed deterministically (projection)
//! items      handle ‖ item id         ItemEntry, sealed deterministically (projection)
//! meta       "feed-head"              next feed position, u64 BE
//!            "key-check"              proof that the storage key is this store's
//! ```
//!
//! A database thief sees counts, sizes, blind handles and item ids, and nothing else.
//!
//! **Durability.** `append_batch` and `delete_stream` write everything of one call in a single
//! fjall write batch and fsync the journal (`PersistMode::SyncAll`) before they return. fjall
//! replays its journal on open and drops a torn tail, so a crash (process kill or power loss)
//! loses nothing that returned `Ok`, and never leaves half of a batch: a call that had not
//! returned is either wholly in the store or wholly absent. `rebuild` writes projections in
//! chunks and fsyncs at its end; a crash during it leaves partial projections, and running it
//! again repairs them.
//!
//! This module must never write a user-readable byte, panic on stored bytes, or let a handle
//! reach a log or an error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use crate::envelope::{self, ProjectionSeal, StreamKey, StreamMeta};
use crate::projection::{self, ItemChange};
use crate::{
    AccountRecord, Append, Event, EventStore, FeedEntry, Handle, ItemEntry, ItemId, RebuildReport,
    RecordedEvent, StorageKey, StoreError, StoreStats,
};

/// Key of the next feed position in the meta keyspace.
const FEED_HEAD: &[u8] = b"feed-head";
/// Key of the storage-key proof in the meta keyspace.
const KEY_CHECK: &[u8] = b"key-check";
/// The first feed position of a new store.
const FIRST_POSITION: u64 = 1;
/// Events a rebuild replays between two writes of its projection chunk.
const REBUILD_CHUNK: u64 = 8192;

/// The embedded event store. Cheap to share behind an `Arc`; every method takes `&self`.
///
/// Writers (`append_batch`, `delete_stream`, `rebuild`) run one at a time; readers never wait
/// for them and see each write batch whole or not at all.
pub struct FjallStore {
    db: Database,
    streams: Keyspace,
    events: Keyspace,
    feed: Keyspace,
    accounts: Keyspace,
    items: Keyspace,
    meta: Keyspace,
    storage_key: StorageKey,
    projection: ProjectionSeal,
    /// The next feed position; held by every writer for the length of its write.
    writer: Mutex<u64>,
}

/// One key and value as stored.
#[doc(hidden)]
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// The keyspaces a staged write can touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Space {
    Streams,
    Events,
    Feed,
    Accounts,
    Items,
    Meta,
}

/// Writes gathered for one write batch; the last write of a key wins, and lookups see them.
#[derive(Default)]
struct Staged(BTreeMap<(Space, Vec<u8>), Option<Vec<u8>>>);

impl Staged {
    fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.0.insert((space, key), Some(value));
    }

    fn remove(&mut self, space: Space, key: Vec<u8>) {
        self.0.insert((space, key), None);
    }

    /// `Some(None)` if the key is staged for removal, `None` if it is not staged at all.
    fn get(&self, space: Space, key: &[u8]) -> Option<Option<&[u8]>> {
        self.0.get(&(space, key.to_vec())).map(Option::as_deref)
    }
}

fn backend(error: fjall::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("a writer failed while holding the store".into())
}

impl FjallStore {
    /// Opens (or creates) the store in `dir`, sealed under `storage_key`.
    ///
    /// Fails with [`StoreError::Corrupt`] if `storage_key` is not the key the store was created
    /// with: a wrong key never gets to write streams that the right key could not open.
    pub fn open(dir: &Path, storage_key: StorageKey) -> Result<FjallStore, StoreError> {
        let db = Database::builder(dir).open().map_err(backend)?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        let store = FjallStore {
            streams: keyspace("streams").map_err(backend)?,
            events: keyspace("events").map_err(backend)?,
            feed: keyspace("feed").map_err(backend)?,
            accounts: keyspace("accounts").map_err(backend)?,
            items: keyspace("items").map_err(backend)?,
            meta: keyspace("meta").map_err(backend)?,
            projection: ProjectionSeal::new(&storage_key)?,
            storage_key,
            writer: Mutex::new(FIRST_POSITION),
            db,
        };
        store.check_storage_key()?;
        *store.writer.lock().map_err(poisoned)? = store.stored_feed_head()?;
        Ok(store)
    }

    /// Verifies the storage-key proof, or writes it durably into a new store.
    fn check_storage_key(&self) -> Result<(), StoreError> {
        match self.meta.get(KEY_CHECK).map_err(backend)? {
            Some(proof) if self.projection.verify_key_check(&proof) => Ok(()),
            Some(_) => Err(StoreError::Corrupt),
            None => {
                self.meta
                    .insert(KEY_CHECK, self.projection.key_check()?)
                    .map_err(backend)?;
                self.db.persist(PersistMode::SyncAll).map_err(backend)
            }
        }
    }

    fn stored_feed_head(&self) -> Result<u64, StoreError> {
        match self.meta.get(FEED_HEAD).map_err(backend)? {
            None => Ok(FIRST_POSITION),
            Some(bytes) => {
                let bytes: [u8; 8] = (*bytes).try_into().map_err(|_| StoreError::Corrupt)?;
                Ok(u64::from_be_bytes(bytes))
            }
        }
    }

    fn keyspace(&self, space: Space) -> &Keyspace {
        match space {
            Space::Streams => &self.streams,
            Space::Events => &self.events,
            Space::Feed => &self.feed,
            Space::Accounts => &self.accounts,
            Space::Items => &self.items,
            Space::Meta => &self.meta,
        }
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, u64>, StoreError> {
        self.writer.lock().map_err(poisoned)
    }

    /// Writes `staged` as one atomic fjall batch; `durable` fsyncs the journal before returning.
    fn commit(&self, staged: Staged, durable: bool) -> Result<(), StoreError> {
        let mode = if durable {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        };
        let mut batch = self.db.batch().durability(Some(mode));
        for ((space, key), value) in staged.0 {
            match value {
                Some(value) => batch.insert(self.keyspace(space), key, value),
                None => batch.remove(self.keyspace(space), key),
            }
        }
        batch.commit().map_err(backend)
    }

    /// The value of `key`: as staged if it is, else as stored.
    fn lookup(
        &self,
        staged: &Staged,
        space: Space,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match staged.get(space, key) {
            Some(value) => Ok(value.map(<[u8]>::to_vec)),
            None => Ok(self
                .keyspace(space)
                .get(key)
                .map_err(backend)?
                .map(|v| v.to_vec())),
        }
    }

    fn stream_meta(
        &self,
        staged: &Staged,
        handle: &Handle,
    ) -> Result<Option<StreamMeta>, StoreError> {
        self.lookup(staged, Space::Streams, &handle.0)?
            .map(|bytes| StreamMeta::decode(&bytes))
            .transpose()
    }

    fn stored_account(
        &self,
        staged: &Staged,
        handle: &Handle,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.lookup(staged, Space::Accounts, &handle.0)?
            .map(|sealed| self.projection.open_account(handle, &sealed))
            .transpose()
    }

    /// Stages one append on top of `staged`. Returns its own writes (nothing is written on an
    /// error), the next free feed position and the stream's new version.
    fn stage_append(
        &self,
        staged: &Staged,
        mut position: u64,
        append: &Append,
    ) -> Result<(Staged, u64, u64), StoreError> {
        let handle = &append.handle;
        let meta = self.stream_meta(staged, handle)?;
        let actual = meta.as_ref().map_or(0, |meta| meta.version);
        if append.expected_version != actual {
            return Err(StoreError::Conflict {
                expected: append.expected_version,
                actual,
            });
        }
        if append.events.is_empty() {
            return Ok((Staged::default(), position, actual));
        }

        let (mut meta, key, mut record) = match meta {
            None => {
                let key = StreamKey::generate()?;
                (StreamMeta::new(&self.storage_key, handle, &key)?, key, None)
            }
            Some(meta) => {
                let key = meta.open_key(&self.storage_key, handle)?;
                let record = self
                    .stored_account(staged, handle)?
                    .ok_or(StoreError::Corrupt)?;
                (meta, key, Some(record))
            }
        };

        let mut own = Staged::default();
        for event in &append.events {
            let version = meta.version.checked_add(1).ok_or(StoreError::Corrupt)?;
            let recorded = RecordedEvent {
                version,
                at: append.at,
                event: event.clone(),
            };
            record = Some(next_record(record, &recorded)?);

            let envelope = envelope::seal_event(&key, handle, position, &recorded)?;
            own.put(
                Space::Events,
                envelope::event_key(handle, version),
                envelope,
            );
            own.put(
                Space::Feed,
                position.to_be_bytes().to_vec(),
                envelope::event_key(handle, version),
            );
            self.stage_item_change(&mut own, handle, &recorded)?;

            meta.version = version;
            position = position.checked_add(1).ok_or(StoreError::Corrupt)?;
        }

        if let Some(record) = &record {
            own.put(
                Space::Accounts,
                handle.0.to_vec(),
                self.projection.seal_account(handle, record)?,
            );
        }
        own.put(Space::Streams, handle.0.to_vec(), meta.encode());
        Ok((own, position, meta.version))
    }

    fn stage_item_change(
        &self,
        staged: &mut Staged,
        handle: &Handle,
        recorded: &RecordedEvent,
    ) -> Result<(), StoreError> {
        match projection::item_change(recorded) {
            Some(ItemChange::Put(entry)) => {
                let sealed = self.projection.seal_item(handle, &entry)?;
                staged.put(
                    Space::Items,
                    envelope::item_key(handle, &entry.item_id),
                    sealed,
                );
            }
            Some(ItemChange::Delete(item_id)) => {
                staged.remove(Space::Items, envelope::item_key(handle, &item_id));
            }
            None => {}
        }
        Ok(())
    }

    fn stream_key(&self, handle: &Handle) -> Result<StreamKey, StoreError> {
        let meta = self
            .stream_meta(&Staged::default(), handle)?
            .ok_or(StoreError::NotFound)?;
        meta.open_key(&self.storage_key, handle)
    }

    /// Every projection key and value, raw as stored: accounts first (keys prefixed `a`), then
    /// items (keys prefixed `i`). For tests that compare a rebuilt projection with the live one.
    #[doc(hidden)]
    pub fn projection_snapshot(&self) -> Result<Vec<RawEntry>, StoreError> {
        let snapshot = self.db.snapshot();
        let mut out = Vec::new();
        for (tag, keyspace) in [(b'a', &self.accounts), (b'i', &self.items)] {
            for guard in snapshot.iter(keyspace) {
                let (key, value) = guard.into_inner().map_err(backend)?;
                out.push(([&[tag], &*key].concat(), value.to_vec()));
            }
        }
        Ok(out)
    }

    /// Rewrites the stored envelope of one event with `tamper`, durably. Exists only so tests
    /// can corrupt bytes on disk; nothing else may call it.
    #[doc(hidden)]
    pub fn tamper_with_envelope_for_tests(
        &self,
        handle: &Handle,
        version: u64,
        tamper: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), StoreError> {
        let key = envelope::event_key(handle, version);
        let mut bytes = self
            .events
            .get(&key)
            .map_err(backend)?
            .ok_or(StoreError::NotFound)?
            .to_vec();
        tamper(&mut bytes);
        self.events.insert(key, bytes).map_err(backend)?;
        self.db.persist(PersistMode::SyncAll).map_err(backend)
    }
}

/// The record after `recorded`, telling a missing account and a second creation apart from a
/// corrupt stream.
fn next_record(
    record: Option<AccountRecord>,
    recorded: &RecordedEvent,
) -> Result<AccountRecord, StoreError> {
    let creates = matches!(recorded.event, Event::AccountCreated { .. });
    match &record {
        None if !creates => return Err(StoreError::NotFound),
        Some(record) if creates => {
            return Err(StoreError::Conflict {
                expected: 0,
                actual: record.version,
            });
        }
        _ => {}
    }
    projection::apply(record, recorded).ok_or(StoreError::Corrupt)
}

impl EventStore for FjallStore {
    /// Appends each `Append` with one fjall write batch and one fsync for the whole call.
    ///
    /// Beyond the trait: the first event of a new stream must be `AccountCreated`, else that
    /// append is `NotFound`; `AccountCreated` on an existing stream is a `Conflict` with
    /// `expected: 0`. An append without events writes nothing and returns the current version.
    /// If the commit itself fails, every append of the call fails with `Backend`.
    fn append_batch(&self, appends: Vec<Append>) -> Vec<Result<u64, StoreError>> {
        let mut head = match self.lock_writer() {
            Ok(head) => head,
            Err(_) => return appends.iter().map(|_| Err(poisoned(()))).collect(),
        };

        let mut staged = Staged::default();
        let mut position = *head;
        let mut results = Vec::with_capacity(appends.len());
        for append in &appends {
            results.push(self.stage_append(&staged, position, append).map(
                |(own, next, version)| {
                    staged.0.extend(own.0);
                    position = next;
                    version
                },
            ));
        }
        if staged.0.is_empty() {
            return results;
        }

        staged.put(
            Space::Meta,
            FEED_HEAD.to_vec(),
            position.to_be_bytes().to_vec(),
        );
        match self.commit(staged, true) {
            Ok(()) => *head = position,
            Err(error) => {
                let message = error.to_string();
                for result in &mut results {
                    if result.is_ok() {
                        *result = Err(StoreError::Backend(message.clone()));
                    }
                }
            }
        }
        results
    }

    fn account(&self, handle: &Handle) -> Result<Option<AccountRecord>, StoreError> {
        self.stored_account(&Staged::default(), handle)
    }

    fn items(&self, handle: &Handle) -> Result<Vec<ItemEntry>, StoreError> {
        let mut entries = Vec::new();
        for guard in self.items.prefix(handle.0) {
            let (key, sealed) = guard.into_inner().map_err(backend)?;
            let item_id = key
                .get(32..)
                .and_then(|id| id.try_into().ok())
                .ok_or(StoreError::Corrupt)?;
            entries.push(
                self.projection
                    .open_item(handle, &ItemId(item_id), &sealed)?,
            );
        }
        Ok(entries)
    }

    fn item(&self, handle: &Handle, item_id: &ItemId) -> Result<Option<ItemEntry>, StoreError> {
        let key = envelope::item_key(handle, item_id);
        self.items
            .get(key)
            .map_err(backend)?
            .map(|sealed| self.projection.open_item(handle, item_id, &sealed))
            .transpose()
    }

    /// Every event of the stream, in order; `NotFound` if there is no such stream, `Corrupt` if
    /// any envelope fails to open or an event is missing.
    fn read_stream(&self, handle: &Handle) -> Result<Vec<RecordedEvent>, StoreError> {
        let snapshot = self.db.snapshot();
        let meta = snapshot
            .get(&self.streams, handle.0)
            .map_err(backend)?
            .ok_or(StoreError::NotFound)?;
        let meta = StreamMeta::decode(&meta)?;
        let key = meta.open_key(&self.storage_key, handle)?;

        let mut events = Vec::new();
        for (expected, guard) in (1u64..).zip(snapshot.prefix(&self.events, handle.0)) {
            let (stored_key, envelope) = guard.into_inner().map_err(backend)?;
            let (_, version) = envelope::decode_event_key(&stored_key)?;
            if version != expected {
                return Err(StoreError::Corrupt);
            }
            events.push(envelope::open_event(&key, handle, version, &envelope)?.1);
        }
        if events.len() as u64 != meta.version {
            return Err(StoreError::Corrupt);
        }
        Ok(events)
    }

    fn read_event(&self, handle: &Handle, version: u64) -> Result<RecordedEvent, StoreError> {
        let key = self.stream_key(handle)?;
        let envelope = self
            .events
            .get(envelope::event_key(handle, version))
            .map_err(backend)?
            .ok_or(StoreError::NotFound)?;
        Ok(envelope::open_event(&key, handle, version, &envelope)?.1)
    }

    fn feed(&self, from: u64, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        let mut entries = Vec::new();
        for guard in self.feed.range(from.to_be_bytes()..).take(limit) {
            let (key, value) = guard.into_inner().map_err(backend)?;
            let position: [u8; 8] = (*key).try_into().map_err(|_| StoreError::Corrupt)?;
            let (handle, version) = envelope::decode_event_key(&value)?;
            entries.push(FeedEntry {
                position: u64::from_be_bytes(position),
                handle,
                version,
            });
        }
        Ok(entries)
    }

    /// Removes the stream's key, events, feed entries and projections in one durable batch;
    /// `NotFound` if there is no such stream.
    //
    // LIMITATION: fjall removes with tombstones; the old bytes (the sealed stream key among
    // them) stay in journal and table files until compaction rewrites them, so a copy of the
    // data directory taken meanwhile can still open the stream with the storage key. The way
    // out is a major compaction of the streams keyspace after deletions.
    fn delete_stream(&self, handle: &Handle) -> Result<(), StoreError> {
        let _writer = self.lock_writer()?;
        if self.streams.get(handle.0).map_err(backend)?.is_none() {
            return Err(StoreError::NotFound);
        }

        let mut staged = Staged::default();
        staged.remove(Space::Streams, handle.0.to_vec());
        staged.remove(Space::Accounts, handle.0.to_vec());
        for guard in self.events.prefix(handle.0) {
            let (key, envelope) = guard.into_inner().map_err(backend)?;
            if let Ok(position) = envelope::envelope_position(&envelope) {
                self.stage_feed_removal(&mut staged, position, &key)?;
            }
            staged.remove(Space::Events, key.to_vec());
        }
        for guard in self.items.prefix(handle.0) {
            staged.remove(Space::Items, guard.key().map_err(backend)?.to_vec());
        }
        self.commit(staged, true)
    }

    /// Replays the feed in order, reading only ciphertext and the storage key. A stream with an
    /// envelope that does not open (or a gap, or an event that cannot follow) is skipped whole,
    /// counted in `corrupt_streams` and logged without its handle.
    ///
    /// Appends and deletions wait for it; readers do not, and meanwhile may find an account
    /// missing, so run it with the server stopped.
    fn rebuild(&self) -> Result<RebuildReport, StoreError> {
        let _writer = self.lock_writer()?;
        self.accounts.clear().map_err(backend)?;
        self.items.clear().map_err(backend)?;

        let mut replay = Replay::new(self);
        for guard in self.db.snapshot().iter(&self.feed) {
            let (key, value) = guard.into_inner().map_err(backend)?;
            let position: [u8; 8] = (*key).try_into().map_err(|_| StoreError::Corrupt)?;
            let (handle, version) = envelope::decode_event_key(&value)?;
            replay.event(u64::from_be_bytes(position), handle, version)?;
        }
        replay.finish()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            streams: self.streams.len().map_err(backend)? as u64,
            events: self.events.len().map_err(backend)? as u64,
            disk_bytes: self.db.disk_space().map_err(backend)?,
        })
    }
}

impl FjallStore {
    /// Stages removal of the feed entry at `position` if it names the event `event_key`.
    fn stage_feed_removal(
        &self,
        staged: &mut Staged,
        position: u64,
        event_key: &[u8],
    ) -> Result<(), StoreError> {
        let position = position.to_be_bytes();
        if self
            .feed
            .get(position)
            .map_err(backend)?
            .is_some_and(|v| *v == *event_key)
        {
            staged.remove(Space::Feed, position.to_vec());
        }
        Ok(())
    }
}

/// The state of one rebuild: projections of the current chunk, and the streams found corrupt.
struct Replay<'a> {
    store: &'a FjallStore,
    /// Stream keys of the current chunk; `None` for a stream deleted after its feed entry.
    keys: HashMap<Handle, Option<StreamKey>>,
    /// Account records changed in the current chunk.
    records: HashMap<Handle, AccountRecord>,
    /// Item entries changed in the current chunk.
    items: Staged,
    corrupt: HashSet<Handle>,
    in_chunk: u64,
    report: RebuildReport,
}

impl<'a> Replay<'a> {
    fn new(store: &'a FjallStore) -> Self {
        Replay {
            store,
            keys: HashMap::new(),
            records: HashMap::new(),
            items: Staged::default(),
            corrupt: HashSet::new(),
            in_chunk: 0,
            report: RebuildReport::default(),
        }
    }

    /// Replays the feed entry at `position`. Errors only when the store itself fails.
    fn event(&mut self, position: u64, handle: Handle, version: u64) -> Result<(), StoreError> {
        if self.corrupt.contains(&handle) {
            return Ok(());
        }
        match self.apply(position, &handle, version) {
            Ok(true) => self.report.events += 1,
            Ok(false) => {}
            Err(StoreError::Corrupt) => self.mark_corrupt(handle, position),
            Err(error) => return Err(error),
        }

        self.in_chunk += 1;
        if self.in_chunk >= REBUILD_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Applies one event to the chunk's projections; `false` if its stream no longer exists.
    fn apply(&mut self, position: u64, handle: &Handle, version: u64) -> Result<bool, StoreError> {
        if !self.keys.contains_key(handle) {
            let key = match self.store.stream_key(handle) {
                Err(StoreError::NotFound) => None,
                other => Some(other?),
            };
            self.keys.insert(*handle, key);
        }
        let Some(Some(key)) = self.keys.get(handle) else {
            return Ok(false);
        };

        let envelope = self
            .store
            .events
            .get(envelope::event_key(handle, version))
            .map_err(backend)?;
        let envelope = envelope.ok_or(StoreError::Corrupt)?;
        let (stored_position, recorded) = envelope::open_event(key, handle, version, &envelope)?;
        if stored_position != position {
            return Err(StoreError::Corrupt);
        }

        let record = match self.records.remove(handle) {
            Some(record) => Some(record),
            None => self.store.stored_account(&Staged::default(), handle)?,
        };
        let record = projection::apply(record, &recorded).ok_or(StoreError::Corrupt)?;
        self.records.insert(*handle, record);
        self.store
            .stage_item_change(&mut self.items, handle, &recorded)?;
        Ok(true)
    }

    fn mark_corrupt(&mut self, handle: Handle, position: u64) {
        tracing::warn!(position, "rebuild.stream_corrupt");
        self.records.remove(&handle);
        self.corrupt.insert(handle);
        self.report.corrupt_streams += 1;
    }

    /// Writes the chunk's projections (no fsync: `finish` syncs once) and forgets the chunk.
    fn flush(&mut self) -> Result<(), StoreError> {
        let mut staged = std::mem::take(&mut self.items);
        for (handle, record) in self.records.drain() {
            let sealed = self.store.projection.seal_account(&handle, &record)?;
            staged.put(Space::Accounts, handle.0.to_vec(), sealed);
        }
        self.keys.clear();
        self.in_chunk = 0;
        self.store.commit(staged, false)
    }

    /// Writes the last chunk, removes what corrupt streams left in the projections, and syncs.
    fn finish(mut self) -> Result<RebuildReport, StoreError> {
        self.flush()?;

        let mut staged = Staged::default();
        for handle in &self.corrupt {
            staged.remove(Space::Accounts, handle.0.to_vec());
            for guard in self.store.items.prefix(handle.0) {
                staged.remove(Space::Items, guard.key().map_err(backend)?.to_vec());
            }
        }
        self.store.commit(staged, true)?;
        self.store
            .db
            .persist(PersistMode::SyncAll)
            .map_err(backend)?;

        self.report.accounts = self.store.accounts.len().map_err(backend)? as u64;
        Ok(self.report)
    }
}
