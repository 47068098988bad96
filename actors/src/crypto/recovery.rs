//! Recovery keys: 160 random bits shown once at sign-up, in Crockford base32 as eight groups of
//! four (`7K3Q-0M9D-…`), that unlock the user key when the password is lost (DESIGN §2). With
//! that much entropy, HKDF (with the pepper as salt) rather than Argon2 turns one into its
//! wrapping key.
//!
//! The encoding is written here, over fixed arrays that are wiped on drop: general base32 crates
//! build their output in growing buffers, which would leave copies of the key in freed memory.
//! Crockford base32 is an encoding, not a cryptographic primitive.
//!
//! This module must never print a recovery key except through [`RecoveryKey::display`], and its
//! parse errors never echo the input.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::keys::hkdf_sha256;
use super::password::{Pepper, WrappingKey};

/// Bytes of entropy in a recovery key (160 bits).
pub const RECOVERY_KEY_LEN: usize = 20;
/// Crockford base32 symbols in a recovery key (5 bits each).
pub const RECOVERY_KEY_SYMBOLS: usize = RECOVERY_KEY_LEN * 8 / 5;
/// HKDF label of the wrapping key a recovery key makes.
pub const RECOVERY_LABEL: &str = "blindfold/v1/recovery";

/// Symbols shown per group in the display form.
const GROUP_LEN: usize = 4;
/// Longest input [`RecoveryKey::parse`] looks at: the display form with generous spacing.
const MAX_INPUT_LEN: usize = 4 * RECOVERY_KEY_SYMBOLS;
/// Crockford's alphabet: digits and upper-case letters without I, L, O and U.
pub(crate) const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Bytes per 40-bit chunk, which is eight symbols.
const CHUNK_BYTES: usize = 5;
/// Symbols per 40-bit chunk.
const CHUNK_SYMBOLS: usize = 8;

/// A typed recovery key was refused. Never carries the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryKeyError {
    /// Not 32 symbols once spaces and dashes are removed.
    #[error("a recovery key has 32 characters")]
    WrongLength,
    /// Holds a character outside Crockford base32 (or U).
    #[error("a recovery key has only digits and letters other than U")]
    BadCharacter,
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A recovery key: 160 random bits. Wiped on drop; Debug prints only the type name; compared in
/// constant time.
#[derive(Clone)]
pub struct RecoveryKey(Zeroizing<[u8; RECOVERY_KEY_LEN]>);

impl RecoveryKey {
    /// Draws a new recovery key from the operating system's random number generator.
    pub fn generate() -> Result<RecoveryKey, RecoveryKeyError> {
        let mut bytes = Zeroizing::new([0u8; RECOVERY_KEY_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| RecoveryKeyError::Random)?;
        Ok(RecoveryKey(bytes))
    }

    /// Wraps 160 bits of key material (for tests and tools; new keys come from
    /// [`RecoveryKey::generate`]).
    pub fn from_bytes(bytes: [u8; RECOVERY_KEY_LEN]) -> RecoveryKey {
        RecoveryKey(Zeroizing::new(bytes))
    }

    /// The form shown to the user: 32 upper-case Crockford base32 symbols in groups of four
    /// joined by '-'. [`RecoveryKey::parse`] reads it back, however it was retyped.
    pub fn display(&self) -> Zeroizing<String> {
        let symbols = encode(&self.0);
        let groups = RECOVERY_KEY_SYMBOLS / GROUP_LEN;
        let mut shown = Zeroizing::new(String::with_capacity(RECOVERY_KEY_SYMBOLS + groups));
        for (i, symbol) in symbols.iter().enumerate() {
            if i > 0 && i % GROUP_LEN == 0 {
                shown.push('-');
            }
            shown.push(char::from(*symbol));
        }
        shown
    }

    /// Reads a recovery key as a person may have retyped it: any case, spaces and dashes
    /// anywhere, I and L read as 1, O read as 0. Exactly 32 symbols must remain.
    pub fn parse(typed: &str) -> Result<RecoveryKey, RecoveryKeyError> {
        if typed.len() > MAX_INPUT_LEN {
            return Err(RecoveryKeyError::WrongLength);
        }

        let mut values = Zeroizing::new([0u8; RECOVERY_KEY_SYMBOLS]);
        let mut count = 0;
        for c in typed.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let value = symbol_value(c).ok_or(RecoveryKeyError::BadCharacter)?;
            let slot = values.get_mut(count).ok_or(RecoveryKeyError::WrongLength)?;
            *slot = value;
            count += 1;
        }
        if count != RECOVERY_KEY_SYMBOLS {
            return Err(RecoveryKeyError::WrongLength);
        }
        Ok(RecoveryKey(decode(&values)))
    }

    /// The key that wraps the user key for recovery:
    /// `HKDF-SHA256(ikm = recovery key, salt = pepper, info = "blindfold/v1/recovery")`.
    pub fn wrapping_key(&self, pepper: &Pepper) -> WrappingKey {
        let key = hkdf_sha256(
            Some(pepper.expose()),
            self.0.as_slice(),
            &[RECOVERY_LABEL.as_bytes()],
        );
        WrappingKey::from_bytes(*key)
    }
}

impl PartialEq for RecoveryKey {
    fn eq(&self, other: &RecoveryKey) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for RecoveryKey {}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(<redacted>)")
    }
}

/// 20 bytes to 32 symbols, most significant bits first, each 5-byte chunk making 8 symbols.
fn encode(bytes: &[u8; RECOVERY_KEY_LEN]) -> Zeroizing<[u8; RECOVERY_KEY_SYMBOLS]> {
    let mut symbols = Zeroizing::new([0u8; RECOVERY_KEY_SYMBOLS]);
    let chunks = bytes.chunks_exact(CHUNK_BYTES);
    for (chunk, out) in chunks.zip(symbols.chunks_exact_mut(CHUNK_SYMBOLS)) {
        let mut bits = Zeroizing::new(0u64);
        chunk
            .iter()
            .for_each(|b| *bits = (*bits << 8) | u64::from(*b));
        for (i, symbol) in out.iter_mut().enumerate() {
            let shift = 5 * (CHUNK_SYMBOLS - 1 - i);
            let index = usize::try_from((*bits >> shift) & 0x1f).unwrap_or(0);
            // `index` is masked to 0..=31, so the lookup always finds a symbol.
            *symbol = ALPHABET.get(index).copied().unwrap_or(b'0');
        }
    }
    symbols
}

/// 32 symbol values (0..=31) back to 20 bytes; the inverse of [`encode`].
fn decode(values: &[u8; RECOVERY_KEY_SYMBOLS]) -> Zeroizing<[u8; RECOVERY_KEY_LEN]> {
    let mut bytes = Zeroizing::new([0u8; RECOVERY_KEY_LEN]);
    let chunks = values.chunks_exact(CHUNK_SYMBOLS);
    for (chunk, out) in chunks.zip(bytes.chunks_exact_mut(CHUNK_BYTES)) {
        let mut bits = Zeroizing::new(0u64);
        chunk
            .iter()
            .for_each(|v| *bits = (*bits << 5) | u64::from(*v & 0x1f));
        for (i, byte) in out.iter_mut().enumerate() {
            let shift = 8 * (CHUNK_BYTES - 1 - i);
            *byte = ((*bits >> shift) & 0xff) as u8;
        }
    }
    bytes
}

/// The value of one typed symbol: case-insensitive, with I and L read as 1 and O as 0.
pub(crate) fn symbol_value(c: char) -> Option<u8> {
    let c = u8::try_from(c).ok()?.to_ascii_uppercase();
    let c = match c {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        other => other,
    };
    let position = ALPHABET.iter().position(|symbol| *symbol == c)?;
    u8::try_from(position).ok()
}
