//! Backup codes: ten single-use codes that stand in for a TOTP code when the authenticator is
//! lost. Each is 10 Crockford base32 symbols (50 bits), shown as `XXXXX-XXXXX`.
//!
//! The server stores only `HMAC(HKDF(user_key, label), handle ‖ code)` of each code. Without the
//! user key (which only the user's password or recovery key unwraps) the operator can neither
//! read a code nor check a guess against the stored digests.

use blindfold_events::Handle;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::keys::{hkdf_sha256, hmac_sha256};
use super::recovery::{ALPHABET, symbol_value};
use super::user_key::{CryptoError, UserKey};

/// Codes in a set.
pub const BACKUP_CODE_COUNT: usize = 10;
/// Symbols per code.
pub const BACKUP_CODE_SYMBOLS: usize = 10;
/// HKDF label of the digest key.
pub const BACKUP_CODE_LABEL: &str = "blindfold/v1/backup-code";

/// One backup code. Wiped on drop; Debug prints nothing of it.
pub struct BackupCode(Zeroizing<[u8; BACKUP_CODE_SYMBOLS]>);

/// A typed backup code was not of the expected form. Never carries the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a backup code has 10 letters and digits")]
pub struct BackupCodeError;

impl BackupCode {
    /// A new random code.
    pub fn generate() -> Result<BackupCode, CryptoError> {
        let mut symbols = Zeroizing::new([0u8; BACKUP_CODE_SYMBOLS]);
        getrandom::fill(symbols.as_mut_slice()).map_err(|_| CryptoError)?;
        for symbol in symbols.iter_mut() {
            *symbol &= 0x1f;
        }
        Ok(BackupCode(symbols))
    }

    /// A full set of fresh codes.
    pub fn generate_set() -> Result<Vec<BackupCode>, CryptoError> {
        (0..BACKUP_CODE_COUNT)
            .map(|_| BackupCode::generate())
            .collect()
    }

    /// `XXXXX-XXXXX`.
    pub fn display(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(BACKUP_CODE_SYMBOLS + 1));
        for (index, symbol) in self.0.iter().enumerate() {
            if index == BACKUP_CODE_SYMBOLS / 2 {
                text.push('-');
            }
            let c = ALPHABET.get(usize::from(*symbol)).copied().unwrap_or(b'0');
            text.push(char::from(c));
        }
        text
    }

    /// Reads a typed code, forgiving case, spaces, dashes and I/L/O for 1/1/0.
    pub fn parse(typed: &str) -> Result<BackupCode, BackupCodeError> {
        let mut symbols = Zeroizing::new([0u8; BACKUP_CODE_SYMBOLS]);
        let mut count = 0;
        for c in typed.chars().filter(|c| !matches!(c, ' ' | '-')) {
            let value = symbol_value(c).ok_or(BackupCodeError)?;
            *symbols.get_mut(count).ok_or(BackupCodeError)? = value;
            count += 1;
        }
        if count != BACKUP_CODE_SYMBOLS {
            return Err(BackupCodeError);
        }
        Ok(BackupCode(symbols))
    }

    /// The digest stored for this code: only the user key makes or checks it.
    pub fn digest(&self, user_key: &UserKey, handle: &Handle) -> [u8; 32] {
        let key = hkdf_sha256(None, user_key.expose(), &[BACKUP_CODE_LABEL.as_bytes()]);
        hmac_sha256(key.as_slice(), &[&handle.0, self.0.as_slice()])
    }

    /// Which of `stored` this code is, compared in constant time against every digest.
    pub fn find_in(
        &self,
        user_key: &UserKey,
        handle: &Handle,
        stored: &[[u8; 32]],
    ) -> Option<[u8; 32]> {
        let digest = self.digest(user_key, handle);
        let mut found = None;
        for candidate in stored {
            if bool::from(candidate.ct_eq(&digest)) {
                found = Some(*candidate);
            }
        }
        found
    }
}

impl std::fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupCode(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_displayed_code_parses_back_whatever_the_typing() {
        let code = BackupCode::generate().unwrap();
        let shown = code.display();
        assert_eq!(shown.len(), 11);
        let handle = Handle([1; 32]);
        let user_key = UserKey::generate().unwrap();
        for typed in [
            shown.to_string(),
            shown.to_lowercase(),
            shown.replace('-', " "),
            shown.replace('-', ""),
        ] {
            let parsed = BackupCode::parse(&typed).unwrap();
            assert_eq!(
                parsed.digest(&user_key, &handle),
                code.digest(&user_key, &handle)
            );
        }
    }

    #[test]
    fn malformed_codes_are_refused() {
        for typed in ["", "ABCDE", "ABCDE-ABCDEF", "ABCDE-ABCDU", "ÀBCDE-ABCDE"] {
            assert_eq!(BackupCode::parse(typed).unwrap_err(), BackupCodeError);
        }
    }

    #[test]
    fn a_digest_is_found_only_under_the_same_user_key_and_handle() {
        let code = BackupCode::generate().unwrap();
        let user_key = UserKey::generate().unwrap();
        let handle = Handle([1; 32]);
        let stored = [code.digest(&user_key, &handle)];
        assert!(code.find_in(&user_key, &handle, &stored).is_some());
        assert!(
            code.find_in(&UserKey::generate().unwrap(), &handle, &stored)
                .is_none()
        );
        assert!(code.find_in(&user_key, &Handle([2; 32]), &stored).is_none());
    }
}
