//! The user key: 32 random bytes made at sign-up that seal everything the user owns, stored only
//! wrapped, once per login method (DESIGN §2).
//!
//! ```text
//! wrapped_user_key = nonce ‖ AES-256-GCM-SIV(wrapping_key, user_key,
//!                            aad = ["blindfold/v1/uk", handle, method label])
//! ```
//!
//! The tag is the password check: a wrong password gives a wrong wrapping key, and the wrap does
//! not open. This module must never return a user key it did not authenticate, never say why an
//! unwrap failed, and never print a key: Debug names the type and nothing else.

use blindfold_events::Handle;
use blindfold_events::aead::{OVERHEAD, open, seal};
use zeroize::Zeroizing;

use super::keys::KEY_LEN;
use super::password::WrappingKey;

/// Associated-data label of every wrapped user key.
pub const WRAP_LABEL: &str = "blindfold/v1/uk";

/// Bytes in a wrapped user key: nonce, the 32-byte key and the tag.
pub const WRAPPED_USER_KEY_LEN: usize = KEY_LEN + OVERHEAD;

/// Sealing or opening failed. Deliberately opaque: a wrong key, a wrong binding, a flipped bit
/// and a failed random number generator look the same to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed data did not open")]
pub struct CryptoError;

/// The key that seals everything one user owns. Wiped on drop; Debug prints only the type name.
#[derive(Clone)]
pub struct UserKey(Zeroizing<[u8; KEY_LEN]>);

impl UserKey {
    /// Draws a new user key from the operating system's random number generator.
    pub fn generate() -> Result<UserKey, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| CryptoError)?;
        Ok(UserKey(bytes))
    }

    /// Wraps 32 bytes of key material.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> UserKey {
        UserKey(Zeroizing::new(bytes))
    }

    /// The key bytes, for the one line that uses them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKey(<redacted>)")
    }
}

/// A way to unlock the user key. Each has its own wrapped copy, and its label binds the copy to
/// the method, so a wrap made for one method never opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginMethod {
    /// A password through Argon2id.
    Password,
    /// The recovery key through HKDF.
    Recovery,
    /// A passkey.
    Passkey,
}

impl LoginMethod {
    /// The method's stable one-byte label, bound into every wrap made for it.
    pub fn label(self) -> u8 {
        match self {
            LoginMethod::Password => 1,
            LoginMethod::Recovery => 2,
            LoginMethod::Passkey => 3,
        }
    }

    /// The method a label names, if any.
    pub fn from_label(label: u8) -> Option<LoginMethod> {
        match label {
            1 => Some(LoginMethod::Password),
            2 => Some(LoginMethod::Recovery),
            3 => Some(LoginMethod::Passkey),
            _ => None,
        }
    }
}

/// Wraps `user_key` under `key` for `method`, bound to `handle`. The result is
/// [`WRAPPED_USER_KEY_LEN`] bytes and opens only with the same key, handle and method.
pub fn wrap_user_key(
    key: &WrappingKey,
    user_key: &UserKey,
    handle: &Handle,
    method: LoginMethod,
) -> Result<Vec<u8>, CryptoError> {
    let aad: [&[u8]; 3] = [WRAP_LABEL.as_bytes(), &handle.0, &[method.label()]];
    seal(key.expose(), &aad, user_key.expose()).map_err(|_| CryptoError)
}

/// Opens a wrap made by [`wrap_user_key`]. Fails, saying nothing more, unless the key, handle and
/// method are the ones it was made with and not one byte of it changed.
pub fn unwrap_user_key(
    key: &WrappingKey,
    wrapped: &[u8],
    handle: &Handle,
    method: LoginMethod,
) -> Result<UserKey, CryptoError> {
    let aad: [&[u8]; 3] = [WRAP_LABEL.as_bytes(), &handle.0, &[method.label()]];
    let opened = open(key.expose(), &aad, wrapped).map_err(|_| CryptoError)?;

    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    if opened.len() != KEY_LEN {
        return Err(CryptoError);
    }
    bytes.copy_from_slice(&opened);
    Ok(UserKey(bytes))
}
