//! The byte formats of everything the store writes: stream metadata, event envelopes and sealed
//! projection values. Pure functions, no storage.
//!
//! Every value that belongs to a user leaves this module sealed, bound by its associated data to
//! the place it is stored (handle, version, item id), so no sealed value can be moved to another
//! key and still open. Decoding never panics on stored bytes: every malformed input is
//! [`StoreError::Corrupt`].
//!
//! ```text
//! stream meta    = 0x01 ‖ version u64 BE ‖ seal(storage_key, stream_key,
//!                                              aad = ["blindfold/v1/stream-key", handle])
//! event envelope = 0x01 ‖ feed position u64 BE ‖ seal(stream_key, 0x01 ‖ postcard(RecordedEvent),
//!                     aad = ["blindfold/v1/event", handle, version BE, 0x01 ‖ position BE])
//! projection     = seal_with_nonce(projection_key, HMAC(nonce_key, aad ‖ plaintext)[..12],
//!                                  0x01 ‖ postcard(record or entry), aad)
//! ```
//!
//! An account record is sealed with its `version` set to 0, and read back with the stream
//! meta's version. That version is in the clear and not authenticated, as it always was: one
//! who can write the store can change it (and so make appends conflict), but learns nothing by
//! it and cannot make a sealed value open at another place.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::aead::{self, Cipher, NONCE_LEN};
use crate::{AccountRecord, Handle, ItemEntry, ItemId, RecordedEvent, StorageKey, StoreError};

/// Associated-data label of a stream key sealed under the storage key.
const STREAM_KEY_LABEL: &[u8] = b"blindfold/v1/stream-key";
/// Associated-data label of an event sealed under its stream key.
const EVENT_LABEL: &[u8] = b"blindfold/v1/event";
/// Associated-data label of an account record in the projection.
const ACCOUNT_LABEL: &[u8] = b"blindfold/v1/account";
/// Associated-data label of an item entry in the projection.
const ITEM_LABEL: &[u8] = b"blindfold/v1/item";
/// Associated-data label of the value that proves a storage key is this store's.
const KEY_CHECK_LABEL: &[u8] = b"blindfold/v1/key-check";
/// HKDF label of the key that seals projection values.
const PROJECTION_KEY_LABEL: &[u8] = b"blindfold/v1/projection";
/// HKDF label of the key that derives deterministic projection nonces.
const PROJECTION_NONCE_LABEL: &[u8] = b"blindfold/v1/projection-nonce";

/// Format byte of stream metadata.
const STREAM_META_V1: u8 = 1;
/// Format byte of the envelope frame (in the clear, authenticated).
const FRAME_V1: u8 = 1;
/// Schema byte in front of the postcard bytes of an event, inside the seal.
const EVENT_SCHEMA_V1: u8 = 1;
/// Schema byte in front of the postcard bytes of a projection value, inside the seal.
const PROJECTION_SCHEMA_V1: u8 = 1;

/// What the `version` field of a sealed account record holds: the real one is in the stream meta.
const UNSEALED_VERSION: u64 = 0;

/// Bytes of the clear envelope frame: format byte and feed position.
const FRAME_LEN: usize = 1 + 8;
/// Bytes of a handle.
const HANDLE_LEN: usize = 32;

fn corrupt<E>(_: E) -> StoreError {
    StoreError::Corrupt
}

/// The random key one stream's events are sealed with, with its cipher prepared once for all
/// the stream's events. Wiped on drop; no Debug.
pub(crate) struct StreamKey {
    bytes: Zeroizing<[u8; 32]>,
    cipher: Cipher,
}

impl StreamKey {
    /// A fresh random key.
    pub(crate) fn generate() -> Result<Self, StoreError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut_slice())
            .map_err(|_| StoreError::Backend("no randomness".into()))?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        let cipher = Cipher::new(&bytes);
        Self { bytes, cipher }
    }
}

/// What the streams keyspace holds for one stream.
pub(crate) struct StreamMeta {
    /// Version of the stream's last event.
    pub(crate) version: u64,
    /// The stream key, sealed under the storage key.
    sealed_key: Vec<u8>,
}

impl StreamMeta {
    /// Metadata of a new stream whose key is `key`.
    pub(crate) fn new(
        storage_key: &StorageKey,
        handle: &Handle,
        key: &StreamKey,
    ) -> Result<Self, StoreError> {
        let sealed_key = aead::seal(
            storage_key.expose(),
            &[STREAM_KEY_LABEL, &handle.0],
            &*key.bytes,
        )
        .map_err(corrupt)?;
        Ok(Self {
            version: 0,
            sealed_key,
        })
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.sealed_key.len());
        out.push(STREAM_META_V1);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.sealed_key);
        out
    }

    /// Reads the stored form.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let (format, rest) = bytes.split_first().ok_or(StoreError::Corrupt)?;
        if *format != STREAM_META_V1 {
            return Err(StoreError::Corrupt);
        }
        let (version, sealed_key) = split_u64(rest)?;
        Ok(Self {
            version,
            sealed_key: sealed_key.to_vec(),
        })
    }

    /// Opens the stream key with the storage key.
    pub(crate) fn open_key(
        &self,
        storage_key: &StorageKey,
        handle: &Handle,
    ) -> Result<StreamKey, StoreError> {
        let key = aead::open(
            storage_key.expose(),
            &[STREAM_KEY_LABEL, &handle.0],
            &self.sealed_key,
        )
        .map_err(corrupt)?;
        let key: [u8; 32] = key.as_slice().try_into().map_err(corrupt)?;
        Ok(StreamKey::from_bytes(Zeroizing::new(key)))
    }
}

/// A buffer for a plaintext that starts with `schema`, sized so the common small values encode
/// without growing it.
fn plaintext_buffer(schema: u8) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(512);
    buffer.push(schema);
    buffer
}

/// Splits a leading big-endian u64 off `bytes`.
fn split_u64(bytes: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (head, rest) = bytes.split_at_checked(8).ok_or(StoreError::Corrupt)?;
    let head: [u8; 8] = head.try_into().map_err(corrupt)?;
    Ok((u64::from_be_bytes(head), rest))
}

/// Key of an event in the events keyspace: `handle ‖ version BE`.
pub(crate) fn event_key(handle: &Handle, version: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(HANDLE_LEN + 8);
    key.extend_from_slice(&handle.0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// Reads an events-keyspace key (also the form of a feed value) back.
pub(crate) fn decode_event_key(bytes: &[u8]) -> Result<(Handle, u64), StoreError> {
    let (handle, rest) = bytes
        .split_at_checked(HANDLE_LEN)
        .ok_or(StoreError::Corrupt)?;
    let handle: [u8; HANDLE_LEN] = handle.try_into().map_err(corrupt)?;
    let (version, rest) = split_u64(rest)?;
    if !rest.is_empty() {
        return Err(StoreError::Corrupt);
    }
    Ok((Handle(handle), version))
}

/// Key of an item in the items keyspace: `handle ‖ item id`.
pub(crate) fn item_key(handle: &Handle, item_id: &ItemId) -> Vec<u8> {
    let mut key = Vec::with_capacity(HANDLE_LEN * 2);
    key.extend_from_slice(&handle.0);
    key.extend_from_slice(&item_id.0);
    key
}

/// Seals one event of a stream into its envelope.
pub(crate) fn seal_event(
    key: &StreamKey,
    handle: &Handle,
    position: u64,
    recorded: &RecordedEvent,
) -> Result<Vec<u8>, StoreError> {
    let frame = frame(position);
    let plaintext = postcard::to_extend(recorded, plaintext_buffer(EVENT_SCHEMA_V1))
        .map(Zeroizing::new)
        .map_err(|_| StoreError::Backend("event did not encode".into()))?;

    let version = recorded.version.to_be_bytes();
    let sealed = key
        .cipher
        .seal(&[EVENT_LABEL, &handle.0, &version, &frame], &plaintext)
        .map_err(corrupt)?;

    let mut envelope = Vec::with_capacity(FRAME_LEN + sealed.len());
    envelope.extend_from_slice(&frame);
    envelope.extend_from_slice(&sealed);
    Ok(envelope)
}

/// `format ‖ position BE`: the clear part of an envelope.
fn frame(position: u64) -> [u8; FRAME_LEN] {
    let mut frame = [FRAME_V1; FRAME_LEN];
    let (_, tail) = frame.split_at_mut(1);
    tail.copy_from_slice(&position.to_be_bytes());
    frame
}

/// The feed position an envelope records, read from its clear frame without opening it.
pub(crate) fn envelope_position(envelope: &[u8]) -> Result<u64, StoreError> {
    let (format, rest) = envelope.split_first().ok_or(StoreError::Corrupt)?;
    if *format != FRAME_V1 {
        return Err(StoreError::Corrupt);
    }
    split_u64(rest).map(|(position, _)| position)
}

/// Opens the envelope of event `version` of `handle`'s stream: its feed position and the event.
/// The event inside must carry the version it is stored under.
pub(crate) fn open_event(
    key: &StreamKey,
    handle: &Handle,
    version: u64,
    envelope: &[u8],
) -> Result<(u64, RecordedEvent), StoreError> {
    let (frame, sealed) = envelope
        .split_at_checked(FRAME_LEN)
        .ok_or(StoreError::Corrupt)?;
    let position = envelope_position(frame)?;
    let version_be = version.to_be_bytes();
    let plaintext = key
        .cipher
        .open(&[EVENT_LABEL, &handle.0, &version_be, frame], sealed)
        .map_err(corrupt)?;

    let (schema, body) = plaintext.split_first().ok_or(StoreError::Corrupt)?;
    if *schema != EVENT_SCHEMA_V1 {
        return Err(StoreError::Corrupt);
    }
    let recorded: RecordedEvent = postcard::from_bytes(body).map_err(corrupt)?;
    if recorded.version != version {
        return Err(StoreError::Corrupt);
    }
    Ok((position, recorded))
}

/// Seals `recorded` into an envelope under `key` and opens it again: the work one event costs on
/// its way into and out of the log. Exists for benchmarks; nothing else may call it.
#[doc(hidden)]
pub fn seal_and_open_for_benches(
    key: &[u8; 32],
    handle: &Handle,
    recorded: &RecordedEvent,
) -> Result<RecordedEvent, StoreError> {
    let key = StreamKey::from_bytes(Zeroizing::new(*key));
    let envelope = seal_event(&key, handle, 1, recorded)?;
    open_event(&key, handle, recorded.version, &envelope).map(|(_, event)| event)
}

/// Runs every decoder of stored bytes on `bytes`: stream metadata, the envelope frame, an
/// events-keyspace key, an envelope opened under a fixed key, and `bytes` as the plaintext of a
/// sealed event and of sealed projection values (sealed here, so the decoders behind the seal
/// see them). Exists for fuzzing; nothing else may call it. Never panics.
#[doc(hidden)]
pub fn decode_stored_bytes_for_fuzzing(bytes: &[u8]) {
    let storage_key = StorageKey::from_bytes([7; 32]);
    let handle = Handle([1; 32]);
    let key = StreamKey::from_bytes(Zeroizing::new([9; 32]));

    if let Ok(meta) = StreamMeta::decode(bytes) {
        let _ = meta.open_key(&storage_key, &handle);
    }
    let _ = envelope_position(bytes);
    let _ = decode_event_key(bytes);
    let _ = open_event(&key, &handle, 1, bytes);

    let frame = frame(1);
    let version = 1u64.to_be_bytes();
    if let Ok(sealed) = key
        .cipher
        .seal(&[EVENT_LABEL, &handle.0, &version, &frame], bytes)
    {
        let mut envelope = frame.to_vec();
        envelope.extend_from_slice(&sealed);
        let _ = open_event(&key, &handle, 1, &envelope);
    }

    if let Ok(seal) = ProjectionSeal::new(&storage_key) {
        let item_id = ItemId([3; 32]);
        let account_aad: [&[u8]; 2] = [ACCOUNT_LABEL, &handle.0];
        if let Ok(sealed) = seal.cipher.seal(&account_aad, bytes) {
            let _ = seal.open_account(&handle, &sealed, 1);
        }
        let item_aad: [&[u8]; 3] = [ITEM_LABEL, &handle.0, &item_id.0];
        if let Ok(sealed) = seal.cipher.seal(&item_aad, bytes) {
            let _ = seal.open_item(&handle, &item_id, &sealed);
        }
        let _ = seal.verify_key_check(bytes);
    }
}

/// Seals and opens projection values deterministically: the same value at the same place always
/// seals to the same bytes, so a rebuilt projection equals the live one byte for byte.
///
/// What that reveals: that two stored values are equal, which they never are at two places,
/// since the place is in the associated data.
pub(crate) struct ProjectionSeal {
    /// Seals the values.
    cipher: Cipher,
    /// Derives each value's nonce from its binding and plaintext.
    nonce_key: Zeroizing<[u8; 32]>,
}

impl ProjectionSeal {
    /// Derives both keys from the storage key.
    pub(crate) fn new(storage_key: &StorageKey) -> Result<Self, StoreError> {
        let hkdf = Hkdf::<Sha256>::new(None, storage_key.expose());
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce_key = Zeroizing::new([0u8; 32]);
        hkdf.expand(PROJECTION_KEY_LABEL, key.as_mut_slice())
            .and_then(|()| hkdf.expand(PROJECTION_NONCE_LABEL, nonce_key.as_mut_slice()))
            .map_err(|_| StoreError::Backend("key derivation failed".into()))?;
        Ok(Self {
            cipher: Cipher::new(&key),
            nonce_key,
        })
    }

    /// Seals an account record, bound to its handle, **without its `version`**: the stream meta
    /// holds the version, so an event that changes nothing else (an item put or deletion) leaves
    /// the sealed record byte for byte as it was and need not rewrite it.
    pub(crate) fn seal_account(
        &self,
        handle: &Handle,
        mut record: AccountRecord,
    ) -> Result<Vec<u8>, StoreError> {
        record.version = UNSEALED_VERSION;
        self.seal(&[ACCOUNT_LABEL, &handle.0], &record)
    }

    /// Opens an account record sealed for `handle`, giving it `version` (the stream's, from its
    /// meta). A sealed record that carries a version of its own is corrupt.
    pub(crate) fn open_account(
        &self,
        handle: &Handle,
        sealed: &[u8],
        version: u64,
    ) -> Result<AccountRecord, StoreError> {
        let mut record: AccountRecord = self.open(&[ACCOUNT_LABEL, &handle.0], sealed)?;
        if record.version != UNSEALED_VERSION {
            return Err(StoreError::Corrupt);
        }
        record.version = version;
        Ok(record)
    }

    /// Seals an item entry, bound to its handle and item id.
    pub(crate) fn seal_item(
        &self,
        handle: &Handle,
        entry: &ItemEntry,
    ) -> Result<Vec<u8>, StoreError> {
        self.seal(&[ITEM_LABEL, &handle.0, &entry.item_id.0], entry)
    }

    /// Opens an item entry sealed for `handle` and `item_id`; the entry must name that id.
    pub(crate) fn open_item(
        &self,
        handle: &Handle,
        item_id: &ItemId,
        sealed: &[u8],
    ) -> Result<ItemEntry, StoreError> {
        let entry: ItemEntry = self.open(&[ITEM_LABEL, &handle.0, &item_id.0], sealed)?;
        if entry.item_id != *item_id {
            return Err(StoreError::Corrupt);
        }
        Ok(entry)
    }

    /// The value that proves a storage key is the one this store was made with.
    pub(crate) fn key_check(&self) -> Result<Vec<u8>, StoreError> {
        self.seal(&[KEY_CHECK_LABEL], &())
    }

    /// Whether `sealed` is this key's [`Self::key_check`].
    pub(crate) fn verify_key_check(&self, sealed: &[u8]) -> bool {
        self.open::<()>(&[KEY_CHECK_LABEL], sealed).is_ok()
    }

    fn seal<T: serde::Serialize>(&self, aad: &[&[u8]], value: &T) -> Result<Vec<u8>, StoreError> {
        let plaintext = postcard::to_extend(value, plaintext_buffer(PROJECTION_SCHEMA_V1))
            .map(Zeroizing::new)
            .map_err(|_| StoreError::Backend("projection did not encode".into()))?;
        let nonce = self.nonce(aad, &plaintext)?;
        self.cipher
            .seal_with_nonce(&nonce, aad, &plaintext)
            .map_err(corrupt)
    }

    fn open<T: serde::de::DeserializeOwned>(
        &self,
        aad: &[&[u8]],
        sealed: &[u8],
    ) -> Result<T, StoreError> {
        let plaintext = self.cipher.open(aad, sealed).map_err(corrupt)?;
        let (schema, body) = plaintext.split_first().ok_or(StoreError::Corrupt)?;
        if *schema != PROJECTION_SCHEMA_V1 {
            return Err(StoreError::Corrupt);
        }
        postcard::from_bytes(body).map_err(corrupt)
    }

    /// First 12 bytes of `HMAC(nonce_key, len ‖ part … ‖ plaintext)`.
    fn nonce(&self, aad: &[&[u8]], plaintext: &[u8]) -> Result<[u8; NONCE_LEN], StoreError> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.nonce_key.as_slice())
            .map_err(|_| StoreError::Backend("key derivation failed".into()))?;
        for part in aad {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(plaintext);
        let tag = mac.finalize().into_bytes();
        tag.get(..NONCE_LEN)
            .and_then(|nonce| nonce.try_into().ok())
            .ok_or_else(|| StoreError::Backend("nonce derivation failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    fn recorded(version: u64) -> RecordedEvent {
        RecordedEvent {
            version,
            at: 7,
            event: Event::SessionsRevoked,
        }
    }

    #[test]
    fn an_event_opens_only_under_its_own_handle_and_version() {
        let key = StreamKey::generate().unwrap();
        let handle = Handle([1; 32]);
        let envelope = seal_event(&key, &handle, 42, &recorded(3)).unwrap();

        let (position, event) = open_event(&key, &handle, 3, &envelope).unwrap();
        assert_eq!((position, event), (42, recorded(3)));
        assert!(open_event(&key, &Handle([2; 32]), 3, &envelope).is_err());
        assert!(open_event(&key, &handle, 4, &envelope).is_err());
    }

    #[test]
    fn a_changed_feed_position_in_the_clear_frame_is_rejected() {
        let key = StreamKey::generate().unwrap();
        let handle = Handle([1; 32]);
        let mut envelope = seal_event(&key, &handle, 42, &recorded(1)).unwrap();
        envelope[8] ^= 1;
        assert!(matches!(
            open_event(&key, &handle, 1, &envelope),
            Err(StoreError::Corrupt)
        ));
    }

    #[test]
    fn a_projection_value_seals_to_the_same_bytes_every_time() {
        let seal = ProjectionSeal::new(&StorageKey::from_bytes([9; 32])).unwrap();
        let entry = ItemEntry {
            item_id: ItemId([3; 32]),
            sealed_name: vec![1, 2],
            size: 5,
            updated_at: 6,
            version: 7,
        };
        let handle = Handle([1; 32]);
        let a = seal.seal_item(&handle, &entry).unwrap();
        assert_eq!(a, seal.seal_item(&handle, &entry).unwrap());
        assert_eq!(seal.open_item(&handle, &entry.item_id, &a).unwrap(), entry);
        assert!(
            seal.open_item(&Handle([2; 32]), &entry.item_id, &a)
                .is_err()
        );
    }

    #[test]
    fn a_stream_key_opens_only_with_the_storage_key_that_sealed_it() {
        let storage = StorageKey::from_bytes([9; 32]);
        let handle = Handle([1; 32]);
        let meta = StreamMeta::new(&storage, &handle, &StreamKey::generate().unwrap()).unwrap();
        let meta = StreamMeta::decode(&meta.encode()).unwrap();
        assert!(meta.open_key(&storage, &handle).is_ok());
        assert!(
            meta.open_key(&StorageKey::from_bytes([8; 32]), &handle)
                .is_err()
        );
    }

    #[test]
    fn truncated_stored_bytes_decode_to_corrupt_not_a_panic() {
        for len in 0..12 {
            let bytes = vec![1u8; len];
            assert!(StreamMeta::decode(&bytes).is_err() || len >= 9);
            assert!(envelope_position(&bytes).is_err() || len >= 9);
            assert!(decode_event_key(&bytes).is_err());
        }
    }
}
