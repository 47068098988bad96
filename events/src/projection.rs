//! Projections: current state derived from the log. Pure functions of the events, so a rebuild
//! from the log reproduces them exactly.

use serde::{Deserialize, Serialize};

use crate::{ItemId, PasswordWrap, RecordedEvent};

/// The current state of one account, as the events of its stream leave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Version of the last event applied.
    pub version: u64,
    /// Revocation epoch: tokens carrying an older epoch are refused.
    pub epoch: u64,
    /// Unix seconds of the first event.
    pub created_at: u64,
    /// The username, sealed under the user key.
    pub sealed_username: Vec<u8>,
    /// The profile, sealed under the user key.
    pub sealed_profile: Vec<u8>,
    /// The user key wrapped for password login.
    pub password: PasswordWrap,
    /// The user key wrapped under the recovery key.
    pub wrapped_user_key_recovery: Vec<u8>,
}

/// One entry of an account's item index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemEntry {
    /// The item's blind id.
    pub item_id: ItemId,
    /// The item name, sealed under the user key.
    pub sealed_name: Vec<u8>,
    /// Plaintext size of the value in bytes.
    pub size: u64,
    /// Unix seconds of the last write.
    pub updated_at: u64,
    /// Stream version of the `ItemPut` event that holds the value.
    pub version: u64,
}

/// What one event does to the projections.
#[derive(Debug)]
pub enum ItemChange {
    /// Insert or replace this entry.
    Put(ItemEntry),
    /// Remove the entry with this id.
    Delete(ItemId),
}

/// Applies one event to an account record. `None` before the first event.
///
/// Returns `None` only if the stream does not start with `AccountCreated` (a corrupt stream).
pub fn apply(record: Option<AccountRecord>, recorded: &RecordedEvent) -> Option<AccountRecord> {
    todo!("implemented in the events crate: {record:?} {recorded:?}")
}

/// The change one event makes to the item index, if any.
pub fn item_change(recorded: &RecordedEvent) -> Option<ItemChange> {
    todo!("implemented in the events crate: {recorded:?}")
}
