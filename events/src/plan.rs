//! What an append writes and what a replay rebuilds, worked out apart from any storage.
//!
//! Every store runs these same steps, so every store writes the same sealed formats, and a
//! rebuild in any store reproduces byte for byte what its appends wrote. A store only reads
//! what a step needs (the stream meta, the stored record) and writes what the step returns.
//!
//! Nothing here writes, and nothing here may let a handle or a key reach a log or an error.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use crate::envelope::{self, ProjectionSeal, StreamKey, StreamMeta};
use crate::projection::{self, ItemChange};
use crate::{
    AccountRecord, Append, Event, Handle, ItemEntry, ItemId, RecordedEvent, StorageKey, StoreError,
};

/// What one append asks of a store.
pub(crate) enum Planned {
    /// The append had no events: nothing to write; the stream stays at `version`.
    Nothing {
        /// The stream's current version.
        version: u64,
    },
    /// Write these, all or none.
    Write(Writes),
}

/// Everything one append writes: its events, the item index changes and the account record.
pub(crate) struct Writes {
    /// The stream meta after the append; store it encoded.
    pub(crate) meta: StreamMeta,
    /// The sealed events, in version order.
    pub(crate) events: Vec<SealedEvent>,
    /// Item index changes in order, the last one of an item winning: a sealed entry to put, or
    /// `None` to remove the entry.
    pub(crate) items: Vec<(ItemId, Option<Vec<u8>>)>,
    /// The sealed account record, when the append changed more than its version.
    pub(crate) record: Option<Vec<u8>>,
}

/// One event as stored.
pub(crate) struct SealedEvent {
    /// Its version in its stream.
    pub(crate) version: u64,
    /// Its position in the feed.
    pub(crate) position: u64,
    /// The envelope (see [`envelope::seal_event`]).
    pub(crate) envelope: Vec<u8>,
}

/// The keys a store needs to plan appends and replays.
pub(crate) struct Sealing<'a> {
    /// Seals and opens stream keys.
    pub(crate) storage_key: &'a StorageKey,
    /// Seals projection values.
    pub(crate) projection: &'a ProjectionSeal,
}

/// Works out one append on top of what the store holds: `meta` is the stream's meta (`None` for
/// a stream that does not exist), `stored_record` reads the sealed account record given the
/// stream's version, and each event takes the next of `positions`.
///
/// A stale `expected_version` is a `Conflict`; the first event of a new stream must be
/// `AccountCreated` (else `NotFound`); `AccountCreated` on an existing stream is a `Conflict`
/// with `expected: 0`. On an error nothing is to be written.
///
/// The account record is read, opened and sealed again only when an event changes more than
/// its version (see [`projection::changes_record`]); item events leave it as stored.
pub(crate) fn plan_append(
    sealing: &Sealing<'_>,
    keys: &mut BatchKeys,
    meta: Option<StreamMeta>,
    stored_record: impl FnOnce(u64) -> Result<Option<AccountRecord>, StoreError>,
    positions: &mut impl Iterator<Item = u64>,
    append: &Append,
) -> Result<Planned, StoreError> {
    let handle = &append.handle;
    let actual = meta.as_ref().map_or(0, |meta| meta.version);
    if append.expected_version != actual {
        return Err(StoreError::Conflict {
            expected: append.expected_version,
            actual,
        });
    }
    if append.events.is_empty() {
        return Ok(Planned::Nothing { version: actual });
    }

    let (mut meta, mut record) = match meta {
        None => {
            let key = StreamKey::generate()?;
            let meta = StreamMeta::new(sealing.storage_key, handle, &key)?;
            keys.insert(*handle, key);
            (meta, Record::None)
        }
        Some(meta) => (meta, Record::AsStored(stored_record)),
    };
    let key = keys.get_or_open(sealing.storage_key, handle, &meta)?;

    let mut events = Vec::with_capacity(append.events.len());
    let mut items = Vec::new();
    for event in &append.events {
        let version = meta.version.checked_add(1).ok_or(StoreError::Corrupt)?;
        let position = positions.next().ok_or(StoreError::Corrupt)?;
        let recorded = RecordedEvent {
            version,
            at: append.at,
            event: event.clone(),
        };
        record = record.after(meta.version, &recorded)?;

        let envelope = envelope::seal_event(key, handle, position, &recorded)?;
        events.push(SealedEvent {
            version,
            position,
            envelope,
        });
        match projection::item_change(&recorded) {
            Some(ItemChange::Put(entry)) => {
                let sealed = sealing.projection.seal_item(handle, &entry)?;
                items.push((entry.item_id, Some(sealed)));
            }
            Some(ItemChange::Delete(item_id)) => items.push((item_id, None)),
            None => {}
        }
        meta.version = version;
    }

    let record = match record {
        Record::Changed(record) => Some(sealing.projection.seal_account(handle, *record)?),
        Record::None | Record::AsStored(_) => None,
    };
    Ok(Planned::Write(Writes {
        meta,
        events,
        items,
        record,
    }))
}

/// An account record while one append is planned.
enum Record<F> {
    /// The stream is new: no record yet.
    None,
    /// The stream exists and its record is as stored, but for its version; `F` reads it.
    AsStored(F),
    /// The record as this append leaves it so far.
    Changed(Box<AccountRecord>),
}

impl<F: FnOnce(u64) -> Result<Option<AccountRecord>, StoreError>> Record<F> {
    /// The record after `recorded`; `version` is the stream's version before it.
    fn after(self, version: u64, recorded: &RecordedEvent) -> Result<Self, StoreError> {
        let current = match self {
            Record::AsStored(read) if !projection::changes_record(&recorded.event) => {
                return Ok(Record::AsStored(read));
            }
            Record::AsStored(read) => Some(read(version)?.ok_or(StoreError::Corrupt)?),
            Record::None => None,
            Record::Changed(current) => Some(*current),
        };
        Ok(Record::Changed(Box::new(next_record(current, recorded)?)))
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

/// Stream keys opened during one batch, so a stream appended to several times in one batch has
/// its key unwrapped once. Dropped (and wiped) when the batch is done: no stream key outlives
/// the batch it was opened for.
#[derive(Default)]
pub(crate) struct BatchKeys(HashMap<Handle, StreamKey>);

impl BatchKeys {
    fn insert(&mut self, handle: Handle, key: StreamKey) {
        self.0.insert(handle, key);
    }

    /// Forgets the key of `handle`. **Call it when an append to `handle` was not kept:** the
    /// key it cached may be one a new stream never got (another writer created the stream with
    /// its own key), and must not seal a later append of the batch.
    pub(crate) fn forget(&mut self, handle: &Handle) {
        self.0.remove(handle);
    }

    /// The stream's key: from this batch if opened already, else unwrapped from `meta`.
    fn get_or_open(
        &mut self,
        storage_key: &StorageKey,
        handle: &Handle,
        meta: &StreamMeta,
    ) -> Result<&StreamKey, StoreError> {
        match self.0.entry(*handle) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => Ok(entry.insert(meta.open_key(storage_key, handle)?)),
        }
    }
}

/// One stream being replayed: its key, and its projections so far.
pub(crate) struct StreamFold {
    key: StreamKey,
    /// The version the stream meta records.
    meta_version: u64,
    record: Option<AccountRecord>,
    items: BTreeMap<ItemId, ItemEntry>,
}

/// A replayed stream's projections, sealed.
pub(crate) struct SealedProjection {
    /// The sealed account record.
    pub(crate) record: Vec<u8>,
    /// The sealed item entries, in item-id order.
    pub(crate) items: Vec<(ItemId, Vec<u8>)>,
}

impl StreamFold {
    /// Starts replaying the stream whose stored meta is `meta`; `Corrupt` if the meta does not
    /// decode or its key does not open.
    pub(crate) fn open(
        storage_key: &StorageKey,
        handle: &Handle,
        meta: &[u8],
    ) -> Result<Self, StoreError> {
        let meta = StreamMeta::decode(meta)?;
        Ok(StreamFold {
            key: meta.open_key(storage_key, handle)?,
            meta_version: meta.version,
            record: None,
            items: BTreeMap::new(),
        })
    }

    /// Opens one envelope and applies it to the record and the item index. Any failure to
    /// open, to follow the record, or a version out of order is `Corrupt`.
    pub(crate) fn apply(
        &mut self,
        handle: &Handle,
        version: u64,
        envelope: &[u8],
    ) -> Result<(), StoreError> {
        let (_, recorded) = envelope::open_event(&self.key, handle, version, envelope)?;
        let record = projection::apply(self.record.take(), &recorded).ok_or(StoreError::Corrupt)?;
        self.record = Some(record);
        match projection::item_change(&recorded) {
            Some(ItemChange::Put(entry)) => drop(self.items.insert(entry.item_id, entry)),
            Some(ItemChange::Delete(item_id)) => drop(self.items.remove(&item_id)),
            None => {}
        }
        Ok(())
    }

    /// The stream's projections, sealed as an append seals them; `None` if the events replayed
    /// stop short of the version the meta records (or there were none).
    pub(crate) fn seal(
        self,
        projection: &ProjectionSeal,
        handle: &Handle,
    ) -> Result<Option<SealedProjection>, StoreError> {
        let meta_version = self.meta_version;
        let Some(record) = self.record.filter(|record| record.version == meta_version) else {
            return Ok(None);
        };
        let items = self
            .items
            .into_values()
            .map(|entry| Ok((entry.item_id, projection.seal_item(handle, &entry)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(SealedProjection {
            record: projection.seal_account(handle, record)?,
            items,
        }))
    }
}
