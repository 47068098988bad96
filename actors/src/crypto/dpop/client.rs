//! A device's DPoP key and the proofs it signs: the client half, used by the CLI and the tests.
//!
//! The private key lives only in [`DeviceKey`], is wiped on drop and never printed. Its saved form
//! ([`DeviceKey::to_bytes`]) is for a file only its owner can read.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::{BASE64URL, PROOF_TYPE, Thumbprint};

/// Tag of a saved P-256 key.
const TAG_P256: u8 = 1;
/// Tag of a saved Ed25519 key.
const TAG_ED25519: u8 = 2;

/// A device key could not be made or read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceKeyError {
    /// The operating system gave no randomness.
    #[error("no randomness available for a device key")]
    NoRandomness,
    /// The saved form is not one [`DeviceKey::to_bytes`] writes.
    #[error("device key file is not valid")]
    Invalid,
}

/// A device's private signing key: ES256 (P-256) or EdDSA (Ed25519).
pub enum DeviceKey {
    /// ECDSA P-256 with SHA-256, JWS `ES256`.
    P256(p256::ecdsa::SigningKey),
    /// Ed25519, JWS `EdDSA`.
    Ed25519(ed25519_dalek::SigningKey),
}

impl DeviceKey {
    /// A fresh P-256 key from the operating system's randomness.
    pub fn generate_p256() -> Result<DeviceKey, DeviceKeyError> {
        // A random 32-byte string is a valid scalar except with probability below 2^-32.
        for _ in 0..8 {
            let secret = random_secret()?;
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(secret.as_slice()) {
                return Ok(DeviceKey::P256(key));
            }
        }
        Err(DeviceKeyError::NoRandomness)
    }

    /// A fresh Ed25519 key from the operating system's randomness.
    pub fn generate_ed25519() -> Result<DeviceKey, DeviceKeyError> {
        let secret = random_secret()?;
        Ok(DeviceKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &secret,
        )))
    }

    /// The saved form: one tag byte (1 = P-256, 2 = Ed25519) then the 32-byte private key.
    /// **Secret**: write it only to a file its owner alone can read.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(33));
        match self {
            DeviceKey::P256(key) => {
                let mut secret = key.to_bytes();
                out.push(TAG_P256);
                out.extend_from_slice(&secret);
                secret.as_mut_slice().zeroize();
            }
            DeviceKey::Ed25519(key) => {
                out.push(TAG_ED25519);
                out.extend_from_slice(key.as_bytes());
            }
        }
        out
    }

    /// Reads back what [`to_bytes`](Self::to_bytes) wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<DeviceKey, DeviceKeyError> {
        let (tag, secret) = bytes.split_first().ok_or(DeviceKeyError::Invalid)?;
        let secret: Zeroizing<[u8; 32]> =
            Zeroizing::new(secret.try_into().map_err(|_| DeviceKeyError::Invalid)?);
        match *tag {
            TAG_P256 => p256::ecdsa::SigningKey::from_slice(secret.as_slice())
                .map(DeviceKey::P256)
                .map_err(|_| DeviceKeyError::Invalid),
            TAG_ED25519 => Ok(DeviceKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                &secret,
            ))),
            _ => Err(DeviceKeyError::Invalid),
        }
    }

    /// The JWS `alg` this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self {
            DeviceKey::P256(_) => "ES256",
            DeviceKey::Ed25519(_) => "EdDSA",
        }
    }

    /// The RFC 7638 thumbprint of the public key, as the server computes it.
    pub fn thumbprint(&self) -> Thumbprint {
        match self {
            DeviceKey::P256(key) => {
                let (x, y) = p256_coordinates(key);
                Thumbprint::of_p256(&x, &y)
            }
            DeviceKey::Ed25519(key) => Thumbprint::of_ed25519(key.verifying_key().as_bytes()),
        }
    }

    /// The public key as a JWK with its required members only.
    pub fn public_jwk(&self) -> Value {
        match self {
            DeviceKey::P256(key) => {
                let (x, y) = p256_coordinates(key);
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": BASE64URL.encode(x),
                    "y": BASE64URL.encode(y),
                })
            }
            DeviceKey::Ed25519(key) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": BASE64URL.encode(key.verifying_key().as_bytes()),
            }),
        }
    }

    /// A DPoP proof for one request (RFC 9449 §4.2), with a fresh random `jti`; `ath` when an
    /// access token is given, `nonce` when the server asked for one.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> String {
        let header =
            json!({ "typ": PROOF_TYPE, "alg": self.algorithm(), "jwk": self.public_jwk() });

        let mut claims = serde_json::Map::new();
        claims.insert("jti".into(), Value::String(fresh_jti(iat)));
        claims.insert("htm".into(), Value::String(method.to_owned()));
        claims.insert("htu".into(), Value::String(url.to_owned()));
        claims.insert("iat".into(), Value::from(iat));
        if let Some(token) = access_token {
            let ath = BASE64URL.encode(Sha256::digest(token.as_bytes()));
            claims.insert("ath".into(), Value::String(ath));
        }
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), Value::String(nonce.to_owned()));
        }
        let claims = Value::Object(claims);
        self.sign_jws(&header, &claims)
    }

    /// Signs any header and claims as a compact JWS with this key's algorithm, whatever they say.
    /// For tests that forge bad proofs; real proofs come from [`proof`](Self::proof).
    pub fn sign_jws(&self, header: &Value, claims: &Value) -> String {
        let header = BASE64URL.encode(header.to_string());
        let claims = BASE64URL.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");

        let signature = match self {
            DeviceKey::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
                BASE64URL.encode(signature.to_bytes())
            }
            DeviceKey::Ed25519(key) => {
                BASE64URL.encode(key.sign(signing_input.as_bytes()).to_bytes())
            }
        };
        format!("{signing_input}.{signature}")
    }
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceKey({}, {:?})",
            self.algorithm(),
            self.thumbprint()
        )
    }
}

fn random_secret() -> Result<Zeroizing<[u8; 32]>, DeviceKeyError> {
    let mut secret = Zeroizing::new([0u8; 32]);
    getrandom::fill(secret.as_mut_slice()).map_err(|_| DeviceKeyError::NoRandomness)?;
    Ok(secret)
}

/// The affine coordinates of a P-256 public key.
fn p256_coordinates(key: &p256::ecdsa::SigningKey) -> ([u8; 32], [u8; 32]) {
    let point = key.verifying_key().to_sec1_point(false);
    let x = point.x().map(|x| x.0).unwrap_or_default();
    let y = point.y().map(|y| y.0).unwrap_or_default();
    (x, y)
}

/// 16 random bytes, base64url. A `jti` need only be unique, not secret: without randomness it
/// falls back to a hash of a process-wide counter, the time and `iat`.
fn fresh_jti(iat: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let mut jti = [0u8; 16];
    if getrandom::fill(&mut jti).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        hasher.update(nanos.to_be_bytes());
        hasher.update(iat.to_be_bytes());
        for (slot, byte) in jti.iter_mut().zip(hasher.finalize()) {
            *slot = byte;
        }
    }
    BASE64URL.encode(jti)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_key_reads_back_as_the_same_key() {
        for key in [DeviceKey::generate_p256(), DeviceKey::generate_ed25519()] {
            let key = key.unwrap();
            let again = DeviceKey::from_bytes(&key.to_bytes()).unwrap();
            assert_eq!(again.thumbprint(), key.thumbprint());
            assert_eq!(again.algorithm(), key.algorithm());
        }
    }

    #[test]
    fn a_saved_key_with_an_unknown_tag_or_length_is_refused() {
        assert_eq!(
            DeviceKey::from_bytes(&[]).err(),
            Some(DeviceKeyError::Invalid)
        );
        assert_eq!(
            DeviceKey::from_bytes(&[3; 33]).err(),
            Some(DeviceKeyError::Invalid)
        );
        assert_eq!(
            DeviceKey::from_bytes(&[1; 32]).err(),
            Some(DeviceKeyError::Invalid)
        );
        assert_eq!(
            DeviceKey::from_bytes(&[&[1u8][..], &[0u8; 32]].concat()).err(),
            Some(DeviceKeyError::Invalid)
        );
    }

    #[test]
    fn the_debug_form_shows_the_algorithm_and_no_secret() {
        let key = DeviceKey::generate_ed25519().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.starts_with("DeviceKey(EdDSA, Thumbprint("));
        let secret_hex: String = key.to_bytes()[1..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.contains(&secret_hex[..16]));
    }
}
