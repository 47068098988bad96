//! The server's keys: one master secret, kept in a keyring file apart from the data directory or
//! given in the environment, and the keys HKDF-SHA256 derives from it (DESIGN §2).
//!
//! ```text
//! master ──HKDF──┬─ "blindfold/v1/index"       → IndexKey    (blind handles)
//!                ├─ "blindfold/v1/storage"     → StorageKey  (outer seal of stored events)
//!                ├─ "blindfold/v1/token/{k}"   → TokenKeys   (seals tokens, one key per id k)
//!                ├─ "blindfold/v1/pepper"      → Pepper      (Argon2id secret input)
//!                ├─ "blindfold/v1/dpop-nonce"  → NonceKey    (stateless DPoP nonces)
//!                └─ "blindfold/v1/decoy-salt"  → DecoyKey    (stable salts for unknown users)
//! ```
//!
//! This module must never write the master secret anywhere but a new keyring file created with
//! mode 0600, never load a keyring that group or others can read, and never print a key: every
//! type here has a Debug that names the type and nothing else.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use blindfold_events::StorageKey;
use hkdf::{Hkdf, HmacImpl};
use hmac::Hmac;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::dpop::NonceKey;
pub use super::password::{DecoyKey, Pepper};
pub use super::token::TokenKeys;
pub use super::username::IndexKey;

/// Bytes in the master secret and in every key derived from it.
pub const KEY_LEN: usize = 32;

/// HKDF label of the index key, which makes blind handles.
pub const INDEX_LABEL: &str = "blindfold/v1/index";
/// HKDF label of the storage key, the outer seal of every stored event.
pub const STORAGE_LABEL: &str = "blindfold/v1/storage";
/// HKDF label prefix of the token keys; the key id follows in decimal (`blindfold/v1/token/7`).
pub const TOKEN_LABEL_PREFIX: &str = "blindfold/v1/token/";
/// HKDF label of the pepper, Argon2id's secret input.
pub const PEPPER_LABEL: &str = "blindfold/v1/pepper";
/// HKDF label of the key that seals DPoP nonces.
pub const DPOP_NONCE_LABEL: &str = "blindfold/v1/dpop-nonce";
/// HKDF label of the key that makes stable decoy salts for usernames without an account.
pub const DECOY_SALT_LABEL: &str = "blindfold/v1/decoy-salt";

/// Longest keyring file read, in bytes: a base64 key and a line break fit many times over.
const MAX_KEYRING_LEN: u64 = 1024;

/// Loading, creating or deriving the server keys failed. No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The keyring file can be read by its group or by others. Only its permission bits are
    /// reported.
    #[error("keyring file has mode {mode:04o}; group and others must have no access (chmod 600)")]
    Permissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// The master secret is not 32 bytes of base64.
    #[error("master secret is not 32 bytes of base64")]
    Malformed,
    /// The keyring path is not a regular file.
    #[error("keyring path is not a regular file")]
    NotAFile,
    /// Reading, creating or syncing the keyring file failed.
    #[error("keyring file I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The one secret every server key is derived from: 32 random bytes.
///
/// Wiped on drop; Debug prints only the type name. The bytes leave this type only through
/// [`MasterSecret::to_base64`], for writing a new keyring or showing an operator once.
#[derive(Clone)]
pub struct MasterSecret(Zeroizing<[u8; KEY_LEN]>);

impl MasterSecret {
    /// Draws a new master secret from the operating system's random number generator.
    pub fn generate() -> Result<MasterSecret, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| KeyError::Random)?;
        Ok(MasterSecret(bytes))
    }

    /// Parses the environment form: 32 bytes in base64, standard or URL-safe alphabet, padded or
    /// not, surrounding whitespace ignored. Anything else is [`KeyError::Malformed`].
    pub fn from_base64(encoded: &str) -> Result<MasterSecret, KeyError> {
        let encoded = encoded.trim().as_bytes();
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            // Room for the decoder's length estimate; the exact length is checked below.
            let mut buffer = Zeroizing::new([0u8; KEY_LEN + 16]);
            let Ok(len) = engine.decode_slice(encoded, buffer.as_mut_slice()) else {
                continue;
            };
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            let decoded = buffer.get(..len).ok_or(KeyError::Malformed)?;
            if decoded.len() != KEY_LEN {
                return Err(KeyError::Malformed);
            }
            bytes.copy_from_slice(decoded);
            return Ok(MasterSecret(bytes));
        }
        Err(KeyError::Malformed)
    }

    /// The secret in standard padded base64, the form [`MasterSecret::from_base64`] reads.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_slice()))
    }

    /// Loads the keyring at `path`, or creates it with a new secret if there is none. Returns the
    /// secret and whether it was created.
    ///
    /// **A new keyring** is created with mode 0600 and `create_new` (never over an existing
    /// file), written and fsynced, and its directory fsynced, before this returns: a crash
    /// cannot lose a key that has already sealed data.
    ///
    /// **An existing keyring** is refused with [`KeyError::Permissions`] if group or others have
    /// any access to it; the check is made on the opened file, not on the path.
    pub fn load_or_create(path: &Path) -> Result<(MasterSecret, bool), KeyError> {
        match Self::create(path) {
            Ok(secret) => Ok((secret, true)),
            Err(KeyError::Io(error)) if error.kind() == ErrorKind::AlreadyExists => {
                Ok((Self::load(path)?, false))
            }
            Err(error) => Err(error),
        }
    }

    /// Reads an existing keyring after checking that only its owner can read it.
    fn load(path: &Path) -> Result<MasterSecret, KeyError> {
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(KeyError::NotAFile);
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { mode });
        }

        let mut contents = Zeroizing::new(String::new());
        file.take(MAX_KEYRING_LEN)
            .read_to_string(&mut contents)
            .map_err(|_| KeyError::Malformed)?;
        Self::from_base64(&contents)
    }

    /// Creates a new keyring holding a fresh secret; fails with `AlreadyExists` if there is one.
    fn create(path: &Path) -> Result<MasterSecret, KeyError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let secret = Self::generate()?;

        let mut line = secret.to_base64();
        line.push('\n');
        file.write_all(line.as_bytes())?;
        file.sync_all()?;

        // The new directory entry is durable only once its directory is synced.
        let directory = path.parent().filter(|p| !p.as_os_str().is_empty());
        File::open(directory.unwrap_or(Path::new(".")))?.sync_all()?;
        Ok(secret)
    }

    /// The key bytes, for the derivations below.
    fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(<redacted>)")
    }
}

/// Every key the server derives from its master secret. Each is wiped on drop and prints nothing
/// of itself in Debug.
#[derive(Debug)]
pub struct ServerKeys {
    /// Makes blind handles from normalized usernames.
    pub index: IndexKey,
    /// The outer seal of every stored event.
    pub storage: StorageKey,
    /// Seals new tokens under the current key id and opens tokens of the current and the
    /// previous id.
    pub tokens: TokenKeys,
    /// The Argon2id secret input: without it a stolen data directory allows no password guessing.
    pub pepper: Pepper,
    /// Seals and opens the stateless DPoP nonces.
    pub dpop_nonce: NonceKey,
    /// Makes fake but stable Argon2id salts for usernames that have no account.
    pub decoy: DecoyKey,
}

impl ServerKeys {
    /// Derives every server key from `master`, with `token_key_id` as the id new tokens are
    /// sealed under. The same master and id always give the same keys.
    pub fn derive(master: &MasterSecret, token_key_id: u8) -> Result<ServerKeys, KeyError> {
        Ok(ServerKeys {
            index: IndexKey::from_bytes(*derive_key(master, INDEX_LABEL)),
            storage: StorageKey::from_bytes(*derive_key(master, STORAGE_LABEL)),
            tokens: TokenKeys::derive(master, token_key_id),
            pepper: Pepper::from_bytes(*derive_key(master, PEPPER_LABEL)),
            dpop_nonce: NonceKey::from_bytes(*derive_key(master, DPOP_NONCE_LABEL)),
            decoy: DecoyKey::from_bytes(*derive_key(master, DECOY_SALT_LABEL)),
        })
    }
}

/// The token key of one key id: `HKDF(master, "blindfold/v1/token/{id}")`.
pub(crate) fn token_key(master: &MasterSecret, id: u8) -> Zeroizing<[u8; KEY_LEN]> {
    let label = format!("{TOKEN_LABEL_PREFIX}{id}");
    derive_key(master, &label)
}

/// `HKDF-SHA256(ikm = master, salt = none, info = label)`, 32 bytes.
fn derive_key(master: &MasterSecret, label: &str) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf_sha256(None, master.expose(), &[label.as_bytes()])
}

/// HKDF-SHA256 (RFC 5869) to 32 bytes; `info` is the concatenation of its parts.
pub(crate) fn hkdf_sha256(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[&[u8]],
) -> Zeroizing<[u8; KEY_LEN]> {
    const _: () = assert!(KEY_LEN <= 255 * 32);
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);

    // IMPORTANT: HKDF-SHA256 refuses only outputs longer than 255 × 32 bytes, and KEY_LEN is 32
    // (asserted above at compile time), so this result is always Ok: no zero key can come out.
    let _ = Hkdf::<Sha256>::new(salt, ikm).expand_multi_info(info, okm.as_mut_slice());
    okm
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut mac = <Hmac<Sha256> as HmacImpl>::new_from_slice(key);
    for part in parts {
        HmacImpl::update(&mut mac, part);
    }
    HmacImpl::finalize(mac).into()
}
