//! RFC 7638 JWK thumbprints: the stable name of a device's public key that a token is bound to.
//! Only public key material goes in; a thumbprint must never be computed over a private member.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::BASE64URL;

/// The RFC 7638 SHA-256 thumbprint of a public JWK (the DPoP `jkt`).
///
/// Guarantees: two keys have equal thumbprints exactly when their required JWK members are equal;
/// equality is checked in constant time.
#[derive(Clone, Copy)]
pub struct Thumbprint(pub [u8; 32]);

impl Thumbprint {
    /// The thumbprint of a P-256 public key given by its affine coordinates (32 bytes each, big
    /// endian): SHA-256 over `{"crv":"P-256","kty":"EC","x":…,"y":…}` (RFC 7638 §3.2).
    pub fn of_p256(x: &[u8; 32], y: &[u8; 32]) -> Thumbprint {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            BASE64URL.encode(x),
            BASE64URL.encode(y)
        );
        Thumbprint(Sha256::digest(canonical.as_bytes()).into())
    }

    /// The thumbprint of an Ed25519 public key: SHA-256 over
    /// `{"crv":"Ed25519","kty":"OKP","x":…}`
    /// (RFC 8037 §2, RFC 7638 §3.2).
    pub fn of_ed25519(x: &[u8; 32]) -> Thumbprint {
        let canonical = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            BASE64URL.encode(x)
        );
        Thumbprint(Sha256::digest(canonical.as_bytes()).into())
    }

    /// The base64url form (43 characters, no padding), as written in a `jkt` claim.
    pub fn to_base64url(&self) -> String {
        BASE64URL.encode(self.0)
    }

    /// Reads the base64url form back; `None` unless it is exactly a canonical 32-byte encoding.
    pub fn from_base64url(text: &str) -> Option<Thumbprint> {
        let bytes = BASE64URL.decode(text).ok()?;
        bytes.try_into().ok().map(Thumbprint)
    }

    /// The first 8 bytes in lowercase hex: enough for a user to tell their devices apart in a
    /// security log, too short to be used as an identifier elsewhere.
    pub fn short(&self) -> String {
        self.0
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Thumbprint {
    fn eq(&self, other: &Thumbprint) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Thumbprint {}

impl std::fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Thumbprint({}…)", self.short())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_short_form_is_sixteen_hex_digits_of_the_first_bytes() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[7] = 0x01;
        bytes[8] = 0xff;
        assert_eq!(Thumbprint(bytes).short(), "ab00000000000001");
    }

    #[test]
    fn the_base64url_form_reads_back_and_nothing_else_does() {
        let thumbprint = Thumbprint([7u8; 32]);
        let text = thumbprint.to_base64url();
        assert_eq!(text.len(), 43);
        assert_eq!(Thumbprint::from_base64url(&text), Some(thumbprint));
        assert_eq!(Thumbprint::from_base64url(&format!("{text}=")), None);
        assert_eq!(Thumbprint::from_base64url("AAAA"), None);
    }
}
