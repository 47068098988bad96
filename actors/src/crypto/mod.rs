//! The cryptography of blindfold: server keys, blind handles, password-derived wrapping keys, the
//! user key and what it seals, recovery keys, tokens and DPoP proofs.
//!
//! No primitive is written here: AES-256-GCM-SIV, HKDF, HMAC-SHA256 and Argon2id come from
//! RustCrypto, ECDSA P-256 verification from ring, Ed25519 from ed25519-dalek. This module must
//! never log, and no type in it prints a secret in Debug.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod backup_codes;
pub mod data;
pub mod dpop;
pub mod keys;
pub mod password;
pub mod recovery;
pub mod token;
pub mod totp;
pub mod user_key;
pub mod username;

pub use data::{Purpose, open_item_name, open_item_value, seal_item_name, seal_item_value};
pub use keys::{KeyError, MasterSecret, ServerKeys};
pub use password::{
    DecoyKey, KdfError, Password, Pepper, WrappingKey, derive_password_key,
    derive_password_key_with_memory, kdf_memory, new_salt,
};
pub use recovery::{RecoveryKey, RecoveryKeyError};
pub use token::{Methods, TOKEN_LEN, TokenClaims, TokenError, TokenKeys};
pub use user_key::{CryptoError, LoginMethod, UserKey, unwrap_user_key, wrap_user_key};
pub use username::{IndexKey, Username, UsernameError, normalize};
