//! Password-derived wrapping keys: `Argon2id(password, salt, secret = pepper)` (RFC 9106,
//! version 0x13) gives the 32-byte key that wraps the user key for password login (DESIGN §2).
//! There is no password hash: the wrapped user key's tag is the password check.
//!
//! This module also makes decoy salts, so a username without an account costs one derivation
//! with a salt that stays the same between tries, like a real one.
//!
//! This module must never keep a password, a pepper or a derived key outside a type that wipes it
//! on drop, and must never print one: Debug names the type and nothing else. The Argon2 working
//! memory holds password-derived state and is wiped after every derivation.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use blindfold_events::{Handle, KdfParams};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::keys::{KEY_LEN, hmac_sha256};
use super::user_key::WRAPPED_USER_KEY_LEN;

/// Message label of the decoy key's fake wrapped user keys, kept apart from its decoy salts.
pub const DECOY_WRAPPED_USER_KEY_LABEL: &str = "blindfold/v1/decoy-wrapped-user-key";

/// Bytes of Argon2id salt.
pub const SALT_LEN: usize = 16;

/// Largest accepted Argon2 memory cost, in KiB (1 GiB): stored parameters above it are refused
/// rather than allowed to exhaust memory.
pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
/// Largest accepted number of Argon2 passes.
pub const MAX_T_COST: u32 = 64;
/// Largest accepted Argon2 parallelism.
pub const MAX_P_COST: u32 = 16;

/// A password-derived key could not be made. Says nothing about the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KdfError {
    /// The Argon2 parameters are out of range, or the memory buffer is too small for them.
    #[error("Argon2id parameters are out of range")]
    Params,
    /// Argon2id refused its inputs (a password longer than 2^32 - 1 bytes).
    #[error("Argon2id derivation failed")]
    Derivation,
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A password as the user gave it, byte for byte. Wiped on drop; Debug prints only the type name.
///
/// LIMITATION: the bytes are used as given, with no PRECIS OpaqueString preparation, so a client
/// that sends a differently normalized spelling of the same password is refused. Clients send
/// what the user typed; preparing with OpaqueString would need a migration of existing wraps.
#[derive(Clone)]
pub struct Password(Zeroizing<Vec<u8>>);

impl Password {
    /// Takes ownership of the password's bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Password {
        Password(Zeroizing::new(bytes))
    }

    /// The password's bytes, for the one line that uses them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The password's length in bytes, for length limits.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the password is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Password {
    fn from(password: String) -> Password {
        Password::from_bytes(password.into_bytes())
    }
}

impl From<&[u8]> for Password {
    fn from(bytes: &[u8]) -> Password {
        Password::from_bytes(bytes.to_vec())
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Password {
        Password::from_bytes(password.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for Password {
    fn from(bytes: Vec<u8>) -> Password {
        Password::from_bytes(bytes)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The server's pepper (`HKDF(master, "blindfold/v1/pepper")`): Argon2id's secret input and the
/// recovery key's HKDF salt. It never enters the data directory, so a stolen data directory
/// allows no offline guessing. Wiped on drop; Debug prints only the type name.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Pepper([u8; KEY_LEN]);

impl Pepper {
    /// Wraps 32 bytes of key material.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Pepper {
        Pepper(bytes)
    }

    /// The pepper bytes, for the one line that uses them.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// A 32-byte key that wraps a user key for one login method. Wiped on drop; Debug prints only
/// the type name.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WrappingKey([u8; KEY_LEN]);

impl WrappingKey {
    /// Wraps 32 bytes of key material (for a login method whose key is made elsewhere).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> WrappingKey {
        WrappingKey(bytes)
    }

    /// The key bytes, for the one line that uses them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrappingKey(<redacted>)")
    }
}

/// A new random Argon2id salt.
pub fn new_salt() -> Result<[u8; SALT_LEN], KdfError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|_| KdfError::Random)?;
    Ok(salt)
}

/// Derives the password wrapping key: Argon2id v0x13 with `params`, the pepper as Argon2's
/// secret input, no associated data, 32 bytes out. Allocates `params.m_cost_kib` KiB and wipes
/// it before returning.
pub fn derive_password_key(
    password: &Password,
    salt: &[u8; SALT_LEN],
    params: &KdfParams,
    pepper: &Pepper,
) -> Result<WrappingKey, KdfError> {
    let mut memory = kdf_memory(params)?;
    derive_password_key_with_memory(password, salt, params, pepper, &mut memory)
}

/// [`derive_password_key`] with a caller-owned working memory, so a worker can reuse one buffer
/// for every derivation. `memory` must hold at least [`memory_blocks`] blocks; the part used
/// is wiped before this returns, whatever the outcome.
pub fn derive_password_key_with_memory(
    password: &Password,
    salt: &[u8; SALT_LEN],
    params: &KdfParams,
    pepper: &Pepper,
    memory: &mut [Block],
) -> Result<WrappingKey, KdfError> {
    let argon2 = Argon2::new_with_secret(
        pepper.expose(),
        Algorithm::Argon2id,
        Version::V0x13,
        argon2_params(params)?,
    )
    .map_err(|_| KdfError::Params)?;

    let mut key = WrappingKey([0u8; KEY_LEN]);
    let outcome =
        argon2.hash_password_into_with_memory(password.expose(), salt, &mut key.0, &mut *memory);

    // IMPORTANT: the working memory holds password-derived blocks; wipe them on every path.
    let used = memory_blocks(params).min(memory.len());
    memory.iter_mut().take(used).for_each(Zeroize::zeroize);

    outcome.map_err(|error| match error {
        argon2::Error::MemoryTooLittle => KdfError::Params,
        _ => KdfError::Derivation,
    })?;
    Ok(key)
}

/// How many 1 KiB blocks of working memory a derivation with `params` uses; 0 when the
/// parameters are out of range (a derivation with them then fails with [`KdfError::Params`]).
pub fn memory_blocks(params: &KdfParams) -> usize {
    argon2_params(params).map_or(0, |params| params.block_count())
}

/// A zeroed working memory sized for `params`, wiped when dropped; reusable for every derivation
/// whose parameters need no more blocks.
pub fn kdf_memory(params: &KdfParams) -> Result<Zeroizing<Vec<Block>>, KdfError> {
    let blocks = argon2_params(params)?.block_count();
    Ok(Zeroizing::new(vec![Block::new(); blocks]))
}

/// Checks `params` against blindfold's bounds and Argon2's own, for a 32-byte output.
fn argon2_params(params: &KdfParams) -> Result<Params, KdfError> {
    if params.m_cost_kib > MAX_M_COST_KIB || params.t_cost > MAX_T_COST {
        return Err(KdfError::Params);
    }
    if params.p_cost > MAX_P_COST {
        return Err(KdfError::Params);
    }
    Params::new(
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        Some(KEY_LEN),
    )
    .map_err(|_| KdfError::Params)
}

/// The server's decoy key (`HKDF(master, "blindfold/v1/decoy-salt")`): makes a salt for a
/// username that has no account, so its login attempt costs one derivation like a real one.
/// Wiped on drop; Debug prints only the type name.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DecoyKey([u8; KEY_LEN]);

impl DecoyKey {
    /// Wraps 32 bytes of key material.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> DecoyKey {
        DecoyKey(bytes)
    }

    /// A fake salt for `handle`: the first 16 bytes of `HMAC-SHA256(decoy_key, handle)`. The
    /// same handle always gets the same salt, and without the key it looks like a random one.
    pub fn salt_for(&self, handle: &Handle) -> [u8; SALT_LEN] {
        let mac = Zeroizing::new(hmac_sha256(&self.0, &[&handle.0]));
        let mut salt = [0u8; SALT_LEN];
        salt.iter_mut().zip(mac.iter()).for_each(|(s, m)| *s = *m);
        salt
    }

    /// A fake recovery-wrapped user key for `handle`, [`WRAPPED_USER_KEY_LEN`] bytes like a real
    /// one: `HMAC-SHA256(decoy_key, label ‖ handle ‖ block)` for blocks 0 and 1, truncated. The
    /// same handle always gets the same bytes; no recovery key opens them, since they were never
    /// sealed, so trying one costs what a wrong recovery key against a real wrap costs.
    pub fn wrapped_user_key_for(&self, handle: &Handle) -> [u8; WRAPPED_USER_KEY_LEN] {
        let label = DECOY_WRAPPED_USER_KEY_LABEL.as_bytes();
        let first = Zeroizing::new(hmac_sha256(&self.0, &[label, &handle.0, &[0]]));
        let second = Zeroizing::new(hmac_sha256(&self.0, &[label, &handle.0, &[1]]));
        let mut wrapped = [0u8; WRAPPED_USER_KEY_LEN];
        wrapped
            .iter_mut()
            .zip(first.iter().chain(second.iter()))
            .for_each(|(w, m)| *w = *m);
        wrapped
    }
}

impl std::fmt::Debug for DecoyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecoyKey(<redacted>)")
    }
}
