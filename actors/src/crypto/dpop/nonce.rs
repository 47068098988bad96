//! Stateless server nonces (RFC 9449 §8): a nonce is the time it was issued, sealed with
//! AES-256-GCM-SIV under a server key, so any server holding the key can check it without
//! remembering anything. This module must never accept a nonce it did not seal, nor one older
//! than the age it is asked about.

use base64::Engine as _;
use blindfold_events::aead;
use zeroize::Zeroizing;

use super::{BASE64URL, MAX_FUTURE_SKEW_SECS, NONCE_AAD};

/// Length of an issued nonce: base64url of nonce (12) ‖ sealed u64 (8) ‖ tag (16).
const NONCE_TEXT_LEN: usize = (aead::OVERHEAD + 8) * 4 / 3;

/// The 32-byte key that seals and opens DPoP nonces. Wiped on drop; its Debug form shows nothing.
pub struct NonceKey(Zeroizing<[u8; 32]>);

impl NonceKey {
    /// Takes ownership of key bytes derived for this one purpose.
    pub fn from_bytes(bytes: [u8; 32]) -> NonceKey {
        NonceKey(Zeroizing::new(bytes))
    }

    /// A nonce carrying `now` (seconds since the Unix epoch), for the `DPoP-Nonce` header. It
    /// reveals nothing but its own length, and [`accepts`](Self::accepts) with this key alone
    /// takes it.
    pub fn issue(&self, now: u64) -> String {
        let issued_at = now.to_be_bytes();
        let sealed = aead::seal(&self.0, &[NONCE_AAD], &issued_at).or_else(|_| {
            // No randomness available: GCM-SIV under a fixed nonce still authenticates, and
            // reveals only that two nonces carry the same second, which is not a secret.
            aead::seal_with_nonce(&self.0, &[0u8; aead::NONCE_LEN], &[NONCE_AAD], &issued_at)
        });
        sealed
            .map(|bytes| BASE64URL.encode(bytes))
            .unwrap_or_default()
    }

    /// Whether `nonce` was issued with this key no more than `max_age_secs` before `now` (and no
    /// more than a few seconds after it, for clocks that differ between servers).
    pub fn accepts(&self, nonce: &str, now: u64, max_age_secs: u64) -> bool {
        if nonce.len() != NONCE_TEXT_LEN {
            return false;
        }
        let Ok(sealed) = BASE64URL.decode(nonce) else {
            return false;
        };
        let Ok(opened) = aead::open(&self.0, &[NONCE_AAD], &sealed) else {
            return false;
        };
        let Ok(issued_at) = <[u8; 8]>::try_from(opened.as_slice()) else {
            return false;
        };

        let issued_at = u64::from_be_bytes(issued_at);
        issued_at <= now.saturating_add(MAX_FUTURE_SKEW_SECS)
            && now.saturating_sub(issued_at) <= max_age_secs
    }
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(…)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_nonce_has_the_expected_length_and_is_accepted() {
        let key = NonceKey::from_bytes([9u8; 32]);
        let nonce = key.issue(1_000);
        assert_eq!(nonce.len(), NONCE_TEXT_LEN);
        assert!(key.accepts(&nonce, 1_000, 60));
        assert!(key.accepts(&nonce, 1_060, 60));
        assert!(!key.accepts(&nonce, 1_061, 60));
    }

    #[test]
    fn a_nonce_from_another_key_is_refused() {
        let nonce = NonceKey::from_bytes([1u8; 32]).issue(1_000);
        assert!(!NonceKey::from_bytes([2u8; 32]).accepts(&nonce, 1_000, 60));
    }

    #[test]
    fn the_debug_form_shows_no_key_bytes() {
        assert_eq!(
            format!("{:?}", NonceKey::from_bytes([0x41; 32])),
            "NonceKey(…)"
        );
    }
}
