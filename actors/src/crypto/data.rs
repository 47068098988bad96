//! Everything a user owns, sealed under keys derived from the user key (DESIGN §3).
//!
//! ```text
//! purpose_key = HKDF-SHA256(user_key, "blindfold/v1/data/<purpose>")
//! sealed      = nonce ‖ AES-256-GCM-SIV(purpose_key, plaintext,
//!                       aad = ["blindfold/v1/data", purpose label, handle, binding…])
//! item_id     = HMAC-SHA256(HKDF-SHA256(user_key, "blindfold/v1/item-id"), name)
//! ```
//!
//! Each purpose has its own key and label, and every seal is bound to its handle and to where it
//! lives (an item value to its item id and the stream version of the event that carries it), so
//! no ciphertext can be moved to another account, item, purpose or version. This module must
//! never return plaintext it did not authenticate, and never say why an open failed.

use blindfold_events::aead::{open, seal};
use blindfold_events::{Handle, ItemId};
use zeroize::Zeroizing;

use super::keys::{KEY_LEN, hkdf_sha256, hmac_sha256};
use super::user_key::{CryptoError, UserKey};

/// Associated-data label of everything sealed under the user key.
pub const DATA_LABEL: &str = "blindfold/v1/data";
/// HKDF label of the key that makes item ids.
pub const ITEM_ID_LABEL: &str = "blindfold/v1/item-id";

/// What a sealed value is. Each purpose has its own key derived from the user key, so a value
/// sealed for one purpose never opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The username as the user typed it.
    Username,
    /// The profile, a JSON object.
    Profile,
    /// An item's name.
    ItemName,
    /// An item's value.
    ItemValue,
    /// The TOTP shared secret.
    TotpSecret,
    /// The user's own security log.
    SecurityLog,
    /// Unused backup codes.
    BackupCodes,
}

impl Purpose {
    /// The purpose's HKDF label, also bound into the associated data of every seal made for it.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::Username => "blindfold/v1/data/username",
            Purpose::Profile => "blindfold/v1/data/profile",
            Purpose::ItemName => "blindfold/v1/data/item-name",
            Purpose::ItemValue => "blindfold/v1/data/item-value",
            Purpose::TotpSecret => "blindfold/v1/data/totp-secret",
            Purpose::SecurityLog => "blindfold/v1/data/security-log",
            Purpose::BackupCodes => "blindfold/v1/data/backup-codes",
        }
    }
}

impl UserKey {
    /// Seals `plaintext` for `purpose`, bound to `handle` and to the `binding` parts (where the
    /// value lives). It opens only with this user key and the same purpose, handle and binding.
    pub fn seal(
        &self,
        purpose: Purpose,
        handle: &Handle,
        binding: &[&[u8]],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.purpose_key(purpose);
        seal(&key, &data_aad(purpose, handle, binding), plaintext).map_err(|_| CryptoError)
    }

    /// Opens what [`UserKey::seal`] made. Fails, saying nothing more, unless the user key,
    /// purpose, handle and binding are the ones it was sealed with and not one byte changed.
    pub fn open(
        &self,
        purpose: Purpose,
        handle: &Handle,
        binding: &[&[u8]],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self.purpose_key(purpose);
        open(&key, &data_aad(purpose, handle, binding), sealed).map_err(|_| CryptoError)
    }

    /// The blind id of the item called `name`: the same name always gives the same id under one
    /// user key, and without the user key the id says nothing about the name.
    pub fn item_id(&self, name: &[u8]) -> ItemId {
        let key = hkdf_sha256(None, self.expose(), &[ITEM_ID_LABEL.as_bytes()]);
        ItemId(hmac_sha256(key.as_slice(), &[name]))
    }

    /// `HKDF-SHA256(user_key, purpose label)`.
    fn purpose_key(&self, purpose: Purpose) -> Zeroizing<[u8; KEY_LEN]> {
        hkdf_sha256(None, self.expose(), &[purpose.label().as_bytes()])
    }
}

/// `["blindfold/v1/data", purpose label, handle, binding…]`.
fn data_aad<'a>(purpose: Purpose, handle: &'a Handle, binding: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut aad: Vec<&[u8]> = Vec::with_capacity(3 + binding.len());
    aad.extend([DATA_LABEL.as_bytes(), purpose.label().as_bytes(), &handle.0]);
    aad.extend_from_slice(binding);
    aad
}

/// Seals an item's name, bound to the item's id.
pub fn seal_item_name(
    user_key: &UserKey,
    handle: &Handle,
    item_id: &ItemId,
    name: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    user_key.seal(Purpose::ItemName, handle, &[&item_id.0], name)
}

/// Opens an item's name sealed by [`seal_item_name`] for the same item.
pub fn open_item_name(
    user_key: &UserKey,
    handle: &Handle,
    item_id: &ItemId,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    user_key.open(Purpose::ItemName, handle, &[&item_id.0], sealed)
}

/// Seals an item's value, bound to the item's id and to `version`, the stream version of the
/// event that carries it: an older value cannot be replayed in a newer event.
pub fn seal_item_value(
    user_key: &UserKey,
    handle: &Handle,
    item_id: &ItemId,
    version: u64,
    value: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let version = version.to_be_bytes();
    user_key.seal(Purpose::ItemValue, handle, &[&item_id.0, &version], value)
}

/// Opens an item's value sealed by [`seal_item_value`] for the same item and version.
pub fn open_item_value(
    user_key: &UserKey,
    handle: &Handle,
    item_id: &ItemId,
    version: u64,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let version = version.to_be_bytes();
    user_key.open(Purpose::ItemValue, handle, &[&item_id.0, &version], sealed)
}
