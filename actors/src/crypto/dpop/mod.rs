//! DPoP (RFC 9449): proof that a request comes from the device that holds the key a token is bound
//! to.
//!
//! The server side ([`verify`], [`ReplayCache`], [`NonceKey`]) runs on every authenticated request:
//! it checks a `DPoP` header's compact JWS, its embedded public key and its claims, and hands back
//! the key's RFC 7638 [`Thumbprint`] to compare with the token's. The client side ([`DeviceKey`])
//! holds a device's private key and writes proofs.
//!
//! ```text
//!  client                                   server
//!  DeviceKey::proof(htm, htu, token, nonce)  ──►  verify(proof, ProofContext)
//!                                                   │ size, 3 parts, header, key, signature
//!                                                   │ htm, htu, iat, jti, ath, nonce
//!                                                   ▼
//!                                                VerifiedProof { thumbprint, jti_digest, iat }
//!                                                   │
//!                                                ReplayCache::check_and_remember(jti_digest, ..)
//! ```
//!
//! Only ES256 (ECDSA P-256, verified with ring) and EdDSA (Ed25519, ed25519-dalek
//! `verify_strict`) are accepted; the key must travel in the header's `jwk` and nowhere else.
//! This module must never trust a claim before the signature over it has been checked, never
//! accept a private key member, never panic on any input, and never put a token, a key or a
//! nonce into an error or a Debug print.

mod client;
mod nonce;
mod replay;
mod thumbprint;
mod verify;

pub use client::{DeviceKey, DeviceKeyError};
pub use nonce::NonceKey;
pub use replay::{ReplayCache, ReplayError};
pub use thumbprint::Thumbprint;
pub use verify::{ProofContext, ProofError, VerifiedProof, verify};

/// The `typ` header value every DPoP proof carries (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";

/// Largest proof, in bytes, that [`verify`] will look at. An ES256 or EdDSA proof with the claims
/// blindfold sends is well under 1 KiB; anything near this limit is junk.
pub const MAX_PROOF_LEN: usize = 4096;

/// How far in the future a proof's `iat` (or a nonce's timestamp) may lie, in seconds, to absorb
/// clock skew between client and server. Kept small: a proof from the future stays usable for
/// longer than the window the replay cache is sized for.
pub const MAX_FUTURE_SKEW_SECS: u64 = 5;

/// Longest `jti` accepted, in characters.
pub const MAX_JTI_CHARS: usize = 128;

/// Associated data binding a sealed nonce to its purpose.
const NONCE_AAD: &[u8] = b"blindfold/v1/dpop-nonce";

/// base64url without padding, as JOSE uses. Decoding rejects padding and non-canonical trailing
/// bits, so one byte string has exactly one accepted encoding.
const BASE64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
