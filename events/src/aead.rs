//! AES-256-GCM-SIV (RFC 8452) with a random 96-bit nonce: the one AEAD blindfold uses for every
//! sealed byte, in this crate and in the cryptography of `blindfold-actors`.
//!
//! Sealed form: `nonce (12) ‖ ciphertext ‖ tag (16)`. The associated data is given as parts; each
//! part is length-prefixed before it is authenticated, so `["ab", "c"]` and `["a", "bc"]` differ.
//! GCM-SIV keeps its confidentiality even if a random nonce ever repeats (it then only reveals
//! that the same message was sealed twice).

use aes_gcm_siv::aead::{Aead, Payload};
use aes_gcm_siv::{Aes256GcmSiv, KeyInit, Nonce};
use zeroize::Zeroizing;

/// Bytes of nonce in front of every sealed message.
pub const NONCE_LEN: usize = 12;
/// Bytes of authentication tag at the end of every sealed message.
pub const TAG_LEN: usize = 16;
/// Bytes a seal adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A seal or open failed. Deliberately says nothing more: a wrong key, a wrong binding and a
/// flipped bit are indistinguishable to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed data did not open")]
pub struct AeadError;

/// Seals `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &[u8; 32], aad: &[&[u8]], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
    Cipher::new(key).seal(aad, plaintext)
}

/// Seals with a caller-chosen nonce. Only for known-answer tests and for deterministic seals
/// whose nonce is itself derived from the key, the binding and the plaintext.
pub fn seal_with_nonce(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[&[u8]],
    plaintext: &[u8],
) -> Result<Vec<u8>, AeadError> {
    Cipher::new(key).seal_with_nonce(nonce, aad, plaintext)
}

/// Opens what [`seal`] produced with the same key and associated data.
pub fn open(key: &[u8; 32], aad: &[&[u8]], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AeadError> {
    Cipher::new(key).open(aad, sealed)
}

/// A key made ready for many seals and opens: its AES key schedule is computed once, not per
/// message. The schedule is wiped on drop; Debug prints nothing of it.
#[derive(Clone)]
pub struct Cipher(Aes256GcmSiv);

impl Cipher {
    /// Prepares `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256GcmSiv::new(&(*key).into()))
    }

    /// Seals `plaintext` with a random nonce, bound to `aad`.
    pub fn seal(&self, aad: &[&[u8]], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| AeadError)?;
        self.seal_with_nonce(&nonce, aad, plaintext)
    }

    /// Seals with a caller-chosen nonce (see [`seal_with_nonce`]).
    pub fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[&[u8]],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        let aad = encode_aad(aad);
        let body = self
            .0
            .encrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| AeadError)?;

        let mut sealed = Vec::with_capacity(NONCE_LEN + body.len());
        sealed.extend_from_slice(nonce);
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// Opens what this key sealed with the same associated data.
    pub fn open(&self, aad: &[&[u8]], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        if sealed.len() < OVERHEAD {
            return Err(AeadError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| AeadError)?;
        let aad = encode_aad(aad);
        self.0
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| AeadError)
    }
}

/// The key schedule inside a [`Cipher`] is wiped on drop: the `zeroize` feature of `aes` is on.
const _: fn() = || {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<aes::Aes256>();
};

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

/// `len(part) as u32 BE ‖ part` for every part, so no two part lists encode alike.
fn encode_aad(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_with_the_same_key_and_binding() {
        let key = [7u8; 32];
        let sealed = seal(&key, &[b"a", b"b"], b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(&open(&key, &[b"a", b"b"], &sealed).unwrap()[..], b"hello");
    }

    #[test]
    fn a_prepared_cipher_and_the_one_shot_functions_agree() {
        let key = [7u8; 32];
        let cipher = Cipher::new(&key);
        let nonce = [3u8; NONCE_LEN];
        let sealed = cipher.seal_with_nonce(&nonce, &[b"a"], b"hello").unwrap();
        assert_eq!(
            sealed,
            seal_with_nonce(&key, &nonce, &[b"a"], b"hello").unwrap()
        );
        assert_eq!(&open(&key, &[b"a"], &sealed).unwrap()[..], b"hello");
        assert_eq!(
            &cipher
                .open(&[b"a"], &seal(&key, &[b"a"], b"hi").unwrap())
                .unwrap()[..],
            b"hi"
        );
        assert_eq!(format!("{cipher:?}"), "Cipher(..)");
    }

    #[test]
    fn moving_bytes_between_binding_parts_is_rejected() {
        let key = [7u8; 32];
        let sealed = seal(&key, &[b"ab", b"c"], b"hello").unwrap();
        assert_eq!(open(&key, &[b"a", b"bc"], &sealed), Err(AeadError));
    }
}
