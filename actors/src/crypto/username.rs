//! Usernames and blind handles: a username is normalized with the PRECIS UsernameCaseMapped
//! profile (RFC 8265 §3.3), then `HMAC-SHA256(index_key, normalized)` names the account (DESIGN
//! §2). The handle is the only name the rest of the server knows an account by.
//!
//! This module must never print a username or a handle: [`Username`] and the index key have a
//! Debug that names the type and nothing else, and errors never echo their input.

use blindfold_events::Handle;
use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core::profile::PrecisFastInvocation;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::keys::{KEY_LEN, hmac_sha256};

/// Longest normalized username, in bytes of UTF-8.
pub const MAX_USERNAME_LEN: usize = 64;

/// Longest input given to normalization, in bytes: width mapping can shrink a username, but not
/// by this much, and nothing longer is worth the work.
const MAX_RAW_USERNAME_LEN: usize = 4 * MAX_USERNAME_LEN;

/// A username was refused. Never carries the username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Empty, or empty after normalization.
    #[error("username is empty")]
    Empty,
    /// Longer than 64 bytes after normalization.
    #[error("username is longer than 64 bytes")]
    TooLong,
    /// Holds a character or a sequence the UsernameCaseMapped profile disallows.
    #[error("username has a character usernames may not contain")]
    Invalid,
}

/// A username in its one canonical form: enforced by PRECIS UsernameCaseMapped and 1 to 64 bytes
/// long, so two spellings of one name ("Alice", "alice") are equal here.
///
/// Wiped on drop; Debug prints only the type name.
#[derive(Clone, PartialEq, Eq)]
pub struct Username(Zeroizing<String>);

impl Username {
    /// The normalized username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Username(<redacted>)")
    }
}

/// Normalizes `raw` with RFC 8265 UsernameCaseMapped: width mapping, case folding to lower case,
/// NFC, and the IdentifierClass rules (no spaces, no control or disallowed characters, bidi
/// rule). The result is 1 to 64 bytes long.
pub fn normalize(raw: &str) -> Result<Username, UsernameError> {
    if raw.is_empty() {
        return Err(UsernameError::Empty);
    }
    if raw.len() > MAX_RAW_USERNAME_LEN {
        return Err(UsernameError::TooLong);
    }

    let normalized = enforce_until_stable(raw)?;
    match normalized.len() {
        0 => Err(UsernameError::Empty),
        1..=MAX_USERNAME_LEN => Ok(Username(normalized)),
        _ => Err(UsernameError::TooLong),
    }
}

/// Times the profile is applied again, after the first, for its output to stop changing.
const MAX_REAPPLICATIONS: usize = 3;

/// Applies the profile until its output is its input. One application is not always idempotent
/// (case mapping can undo what normalization did, and the reverse), so RFC 8264 §7 asks to
/// reapply the rules until the string is stable and to refuse one that is not stable after
/// three more applications. Without this, a name and its normalized form could be two accounts.
fn enforce_until_stable(raw: &str) -> Result<Zeroizing<String>, UsernameError> {
    let enforce = |text: &str| {
        UsernameCaseMapped::enforce(text)
            .map(|out| Zeroizing::new(out.into_owned()))
            .map_err(|_| UsernameError::Invalid)
    };
    let mut current = enforce(raw)?;
    for _ in 0..MAX_REAPPLICATIONS {
        let next = enforce(&current)?;
        if next == current {
            return Ok(current);
        }
        current = next;
    }
    Err(UsernameError::Invalid)
}

/// The server's index key (`HKDF(master, "blindfold/v1/index")`): turns usernames into blind
/// handles. Wiped on drop; Debug prints only the type name.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct IndexKey([u8; KEY_LEN]);

impl IndexKey {
    /// Wraps 32 bytes of key material.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> IndexKey {
        IndexKey(bytes)
    }

    /// The account's blind handle: `HMAC-SHA256(index_key, normalized username)`. The same
    /// username under the same key always gives the same handle.
    pub fn handle(&self, username: &Username) -> Handle {
        Handle(hmac_sha256(&self.0, &[username.as_str().as_bytes()]))
    }
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexKey(<redacted>)")
    }
}
