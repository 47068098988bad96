//! The embedded event store on fjall: one process, one data directory, every value sealed.
//!
//! ```text
//! keyspace   key                      value
//! streams    handle                   stream meta: version, stream key sealed by storage key
//! events     handle ‖ version BE      envelope: frame ‖ event sealed by the stream key
//! feed       position BE              handle ‖ version BE
//! accounts   handle                   AccountRecord but its version, sealed deterministically
//! items      handle ‖ item id         ItemEntry, sealed deterministically (projection)
//! meta       "feed-head"              next feed position, u64 BE
//!            "key-check"              proof that the storage key is this store's
//! ```
//!
//! A database thief sees counts, sizes, blind handles and item ids, and nothing else.
//!
//! The events keyspace is the log; everything else is derived or an index. An account record's
//! version is the stream meta's, so an item event rewrites the stream meta and the item index
//! but not the sealed record. The feed is the global order of all events, for readers of
//! [`EventStore::feed`]; `rebuild` does not need it, since every projection is a function of
//! one stream's own events, and replays the events keyspace stream by stream instead.
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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use crate::envelope::{self, ProjectionSeal, StreamKey, StreamMeta};
use crate::plan::{self, BatchKeys, Planned, Sealing, StreamFold};
use crate::{
    AccountRecord, Append, EventStore, FeedEntry, Handle, ItemEntry, ItemId, RebuildReport,
    RecordedEvent, StorageKey, StoreError, StoreStats,
};

/// Key of the next feed position in the meta keyspace.
const FEED_HEAD: &[u8] = b"feed-head";
/// Key of the storage-key proof in the meta keyspace.
const KEY_CHECK: &[u8] = b"key-check";
/// The first feed position of a new store.
const FIRST_POSITION: u64 = 1;
/// Projection values a rebuild gathers before it writes them in one (unsynced) batch.
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

    /// The account record as staged or stored, given `version` (the stream meta's).
    fn stored_account(
        &self,
        staged: &Staged,
        handle: &Handle,
        version: u64,
    ) -> Result<Option<AccountRecord>, StoreError> {
        self.lookup(staged, Space::Accounts, &handle.0)?
            .map(|sealed| self.projection.open_account(handle, &sealed, version))
            .transpose()
    }

    /// Stages one append on top of `staged`. Returns its own writes (nothing is written on an
    /// error), the next free feed position and the stream's new version.
    fn stage_append(
        &self,
        staged: &Staged,
        keys: &mut BatchKeys,
        position: u64,
        append: &Append,
    ) -> Result<(Staged, u64, u64), StoreError> {
        let handle = &append.handle;
        let meta = self.stream_meta(staged, handle)?;
        let stored_record = |version| self.stored_account(staged, handle, version);
        let mut positions = position..;
        let writes = match plan::plan_append(
            &self.sealing(),
            keys,
            meta,
            stored_record,
            &mut positions,
            append,
        )? {
            Planned::Nothing { version } => return Ok((Staged::default(), position, version)),
            Planned::Write(writes) => writes,
        };

        let mut own = Staged::default();
        for event in writes.events {
            let key = envelope::event_key(handle, event.version);
            own.put(
                Space::Feed,
                event.position.to_be_bytes().to_vec(),
                key.clone(),
            );
            own.put(Space::Events, key, event.envelope);
        }
        for (item_id, sealed) in writes.items {
            let key = envelope::item_key(handle, &item_id);
            match sealed {
                Some(sealed) => own.put(Space::Items, key, sealed),
                None => own.remove(Space::Items, key),
            }
        }
        if let Some(record) = writes.record {
            own.put(Space::Accounts, handle.0.to_vec(), record);
        }
        own.put(Space::Streams, handle.0.to_vec(), writes.meta.encode());
        let next = positions.next().ok_or(StoreError::Corrupt)?;
        Ok((own, next, writes.meta.version))
    }

    fn sealing(&self) -> Sealing<'_> {
        Sealing {
            storage_key: &self.storage_key,
            projection: &self.projection,
        }
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
        let mut keys = BatchKeys::default();
        let mut position = *head;
        let mut results = Vec::with_capacity(appends.len());
        for append in &appends {
            let result = self.stage_append(&staged, &mut keys, position, append);
            results.push(match result {
                Ok((own, next, version)) => {
                    staged.0.extend(own.0);
                    position = next;
                    Ok(version)
                }
                Err(error) => {
                    keys.forget(&append.handle);
                    Err(error)
                }
            });
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

    /// The sealed record and the stream meta's version, read from one snapshot.
    fn account(&self, handle: &Handle) -> Result<Option<AccountRecord>, StoreError> {
        let snapshot = self.db.snapshot();
        let Some(sealed) = snapshot.get(&self.accounts, handle.0).map_err(backend)? else {
            return Ok(None);
        };
        let meta = snapshot
            .get(&self.streams, handle.0)
            .map_err(backend)?
            .ok_or(StoreError::Corrupt)?;
        let version = StreamMeta::decode(&meta)?.version;
        self.projection
            .open_account(handle, &sealed, version)
            .map(Some)
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

    /// Replays the log stream by stream, reading only ciphertext and the storage key: one
    /// sequential pass over the events keyspace (in key order, so each stream's events come
    /// together and in version order), each stream key unwrapped once, each stream's record and
    /// item index folded in memory and written once at the stream's end. The projections are
    /// pure functions of each stream's own events, so this gives what replaying the feed in
    /// global order would; the feed itself is not read (it is the global order for readers).
    ///
    /// A stream with an envelope that does not open, a gap, an event that cannot follow, fewer
    /// events than its meta records, or no events at all is skipped whole, counted in
    /// `corrupt_streams` and logged without its handle. Events of a deleted stream are skipped.
    /// Memory holds one stream's projections and one write batch at a time.
    ///
    /// Appends and deletions wait for it; readers do not, and meanwhile may find an account
    /// missing, so run it with the server stopped.
    fn rebuild(&self) -> Result<RebuildReport, StoreError> {
        let _writer = self.lock_writer()?;
        self.accounts.clear().map_err(backend)?;
        self.items.clear().map_err(backend)?;

        let snapshot = self.db.snapshot();
        let mut replay = Replay::new(self, snapshot.iter(&self.streams));
        for guard in snapshot.iter(&self.events) {
            let (key, envelope) = guard.into_inner().map_err(backend)?;
            let (handle, version) = envelope::decode_event_key(&key)?;
            replay.event(handle, version, &envelope)?;
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

/// The state of one rebuild: the stream being replayed, the stream metas not yet reached, the
/// projection writes not yet committed, and the counts so far.
struct Replay<'a, M> {
    store: &'a FjallStore,
    /// Every stream meta, in key order: walked alongside the events, as they share keys.
    metas: M,
    /// The next meta, read but not yet reached by the events.
    next_meta: Option<fjall::KvPair>,
    stream: Option<StreamReplay>,
    /// Projection writes not yet committed: at most [`REBUILD_CHUNK`] and one stream's.
    pending: Vec<(Space, Vec<u8>, Vec<u8>)>,
    report: RebuildReport,
}

/// One stream while it is replayed.
struct StreamReplay {
    handle: Handle,
    state: StreamState,
}

enum StreamState {
    /// Events are being applied.
    Open(Box<StreamFold>),
    /// The stream has no meta (it was deleted): its events are skipped.
    Deleted,
    /// The stream is corrupt: its remaining events are skipped and it writes nothing.
    Corrupt,
}

impl<'a, M: Iterator<Item = fjall::Guard>> Replay<'a, M> {
    fn new(store: &'a FjallStore, metas: M) -> Self {
        Replay {
            store,
            metas,
            next_meta: None,
            stream: None,
            pending: Vec::new(),
            report: RebuildReport::default(),
        }
    }

    /// Replays one event. Errors only when the store itself fails.
    fn event(&mut self, handle: Handle, version: u64, envelope: &[u8]) -> Result<(), StoreError> {
        if self.stream.as_ref().is_none_or(|s| s.handle != handle) {
            if let Some(done) = self.stream.take() {
                self.finish_stream(done)?;
            }
            let state = self.start_stream(&handle)?;
            self.stream = Some(StreamReplay { handle, state });
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let StreamState::Open(open) = &mut stream.state else {
            return Ok(());
        };

        match open.apply(&handle, version, envelope) {
            Ok(()) => self.report.events += 1,
            Err(StoreError::Corrupt) => {
                stream.state = StreamState::Corrupt;
                let position = envelope::envelope_position(envelope).ok();
                self.mark_corrupt(position);
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// The state a stream starts in: its meta is found among the metas (every meta passed over
    /// on the way has no events left, and is counted corrupt) and its key unwrapped.
    fn start_stream(&mut self, handle: &Handle) -> Result<StreamState, StoreError> {
        loop {
            let (key, meta) = match self.next_meta.take() {
                Some(next) => next,
                None => match self.metas.next() {
                    Some(guard) => guard.into_inner().map_err(backend)?,
                    None => return Ok(StreamState::Deleted),
                },
            };
            match (*key).cmp(&handle.0[..]) {
                std::cmp::Ordering::Less => self.mark_corrupt(None),
                std::cmp::Ordering::Equal => return Ok(self.open_stream(handle, &meta)),
                std::cmp::Ordering::Greater => {
                    self.next_meta = Some((key, meta));
                    return Ok(StreamState::Deleted);
                }
            }
        }
    }

    fn open_stream(&mut self, handle: &Handle, meta: &[u8]) -> StreamState {
        match StreamFold::open(&self.store.storage_key, handle, meta) {
            Ok(fold) => StreamState::Open(Box::new(fold)),
            Err(_) => {
                self.mark_corrupt(None);
                StreamState::Corrupt
            }
        }
    }

    /// Stages the projections of a stream replayed whole; commits (without fsync) once enough
    /// writes are pending.
    fn finish_stream(&mut self, stream: StreamReplay) -> Result<(), StoreError> {
        let StreamState::Open(open) = stream.state else {
            return Ok(());
        };
        let handle = &stream.handle;
        let Some(sealed) = open.seal(&self.store.projection, handle)? else {
            // Events the meta records are missing from the log's tail.
            self.mark_corrupt(None);
            return Ok(());
        };

        for (item_id, entry) in sealed.items {
            let key = envelope::item_key(handle, &item_id);
            self.pending.push((Space::Items, key, entry));
        }
        self.pending
            .push((Space::Accounts, handle.0.to_vec(), sealed.record));
        self.report.accounts += 1;

        if self.pending.len() as u64 >= REBUILD_CHUNK {
            self.commit_pending()?;
        }
        Ok(())
    }

    fn mark_corrupt(&mut self, position: Option<u64>) {
        tracing::warn!(?position, "rebuild.stream_corrupt");
        self.report.corrupt_streams += 1;
    }

    /// Writes the pending projection values in one batch, without fsync: `finish` syncs once.
    fn commit_pending(&mut self) -> Result<(), StoreError> {
        let mut batch = self.store.db.batch().durability(Some(PersistMode::Buffer));
        for (space, key, value) in self.pending.drain(..) {
            batch.insert(self.store.keyspace(space), key, value);
        }
        batch.commit().map_err(backend)
    }

    /// Finishes the last stream, counts the metas no event reached, writes what is pending and
    /// syncs.
    fn finish(mut self) -> Result<RebuildReport, StoreError> {
        if let Some(done) = self.stream.take() {
            self.finish_stream(done)?;
        }
        let mut without_events = u64::from(self.next_meta.take().is_some());
        for guard in self.metas.by_ref() {
            guard.key().map_err(backend)?;
            without_events += 1;
        }
        for _ in 0..without_events {
            self.mark_corrupt(None);
        }
        self.commit_pending()?;
        self.store
            .db
            .persist(PersistMode::SyncAll)
            .map_err(backend)?;
        Ok(self.report)
    }
}
