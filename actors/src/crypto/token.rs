//! Access tokens: the session itself, sealed with a key only the server holds (DESIGN §5).
//!
//! ```text
//! token = "v1." ‖ base64url-no-pad( kid (1) ‖ nonce (12) ‖
//!             AES-256-GCM-SIV(token_key[kid], claims (146), aad = ["blindfold/v1/token", kid])
//!             ‖ tag (16) )
//! ```
//!
//! Claims are laid out at fixed offsets (below) rather than in postcard as DESIGN §5 sketches: a
//! fixed layout has one length by construction, so every token is [`TOKEN_LEN`] characters and
//! its length says nothing, and no secret passes through a serializer's growing buffers.
//!
//! ```text
//! format (1) ‖ handle (32) ‖ user_key (32) ‖ epoch (8) ‖ jkt (32) ‖ issued_at (8) ‖
//! expires_at (8) ‖ session_expires_at (8) ‖ methods (1) ‖ token_id (16)      integers big-endian
//! ```
//!
//! This module must never panic on any input, never decode an over-long token, never say why a
//! token did not open beyond malformed / invalid / expired, and never print a claim.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blindfold_events::Handle;
use blindfold_events::aead::{OVERHEAD, open, seal};
use zeroize::Zeroizing;

use super::keys::{KEY_LEN, MasterSecret, token_key};
use super::user_key::{LoginMethod, UserKey};

/// Associated-data label of every token.
pub const TOKEN_LABEL: &str = "blindfold/v1/token";
/// The text every token starts with.
pub const TOKEN_PREFIX: &str = "v1.";
/// Bytes of the claims' fixed layout.
pub const CLAIMS_LEN: usize = 1 + 32 + 32 + 8 + 32 + 8 + 8 + 8 + 1 + 16;
/// Bytes of a token before base64: key id, nonce, sealed claims and tag.
pub const RAW_TOKEN_LEN: usize = 1 + CLAIMS_LEN + OVERHEAD;
/// The length of every token, in characters, whatever its claims.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + base64_no_pad_len(RAW_TOKEN_LEN);

/// The layout version written in the first claims byte.
const CLAIMS_FORMAT: u8 = 1;

/// Characters of unpadded base64 for `bytes` bytes.
const fn base64_no_pad_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// A token was refused or could not be made. Says nothing about the token's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not shaped like a token: wrong length, wrong prefix or not base64url.
    #[error("token is malformed")]
    Malformed,
    /// Shaped like a token but not sealed by this server under a key it accepts (or, when
    /// sealing, the system random number generator failed).
    #[error("token is invalid")]
    Invalid,
    /// Authentic, but its expiry or its session's expiry has passed.
    #[error("token has expired")]
    Expired,
}

/// The login methods (and later, second factors) a session was established with, as a set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Methods(u8);

impl Methods {
    /// No method.
    pub const NONE: Methods = Methods(0);
    /// A password.
    pub const PASSWORD: Methods = Methods(1);
    /// The recovery key.
    pub const RECOVERY: Methods = Methods(1 << 1);
    /// A passkey.
    pub const PASSKEY: Methods = Methods(1 << 2);
    /// A TOTP code.
    pub const TOTP: Methods = Methods(1 << 3);
    /// A backup code.
    pub const BACKUP_CODE: Methods = Methods(1 << 4);
    /// Every method known.
    const ALL: Methods = Methods(0b1_1111);

    /// The set holding the one login method.
    pub fn login(method: LoginMethod) -> Methods {
        match method {
            LoginMethod::Password => Methods::PASSWORD,
            LoginMethod::Recovery => Methods::RECOVERY,
            LoginMethod::Passkey => Methods::PASSKEY,
        }
    }

    /// Both sets together.
    pub fn with(self, other: Methods) -> Methods {
        Methods(self.0 | other.0)
    }

    /// Whether every method of `other` is in this set.
    pub fn contains(self, other: Methods) -> bool {
        self.0 & other.0 == other.0
    }

    /// The set as bits, as stored in a token.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set named by `bits`, or `None` if a bit names no known method.
    pub fn from_bits(bits: u8) -> Option<Methods> {
        (bits & !Methods::ALL.0 == 0).then_some(Methods(bits))
    }
}

impl From<LoginMethod> for Methods {
    fn from(method: LoginMethod) -> Methods {
        Methods::login(method)
    }
}

/// What a token says: whose session, unlocked with which user key, for which device, until when.
/// Debug prints only the type name.
#[derive(Clone)]
pub struct TokenClaims {
    /// The account.
    pub handle: Handle,
    /// The account's user key, so requests can open the user's data.
    pub user_key: UserKey,
    /// The account's epoch when the token was issued; a newer epoch revokes it.
    pub epoch: u64,
    /// RFC 7638 thumbprint (SHA-256) of the device key the token is bound to.
    pub jkt: [u8; 32],
    /// Unix seconds when the token was issued.
    pub issued_at: u64,
    /// Unix seconds from which the token is expired.
    pub expires_at: u64,
    /// Unix seconds from which the session is over; refreshes never extend it.
    pub session_expires_at: u64,
    /// The methods the session was established with.
    pub methods: Methods,
    /// A random id for this token.
    pub token_id: [u8; 16],
}

impl std::fmt::Debug for TokenClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenClaims(<redacted>)")
    }
}

impl TokenClaims {
    /// The fixed layout described in the module docs.
    fn encode(&self) -> Zeroizing<[u8; CLAIMS_LEN]> {
        let mut out = Zeroizing::new([0u8; CLAIMS_LEN]);
        let parts: [&[u8]; 10] = [
            &[CLAIMS_FORMAT],
            &self.handle.0,
            self.user_key.expose(),
            &self.epoch.to_be_bytes(),
            &self.jkt,
            &self.issued_at.to_be_bytes(),
            &self.expires_at.to_be_bytes(),
            &self.session_expires_at.to_be_bytes(),
            &[self.methods.bits()],
            &self.token_id,
        ];
        // The parts add up to CLAIMS_LEN exactly (a round-trip test holds this).
        let bytes = parts.into_iter().flatten();
        out.iter_mut()
            .zip(bytes)
            .for_each(|(slot, byte)| *slot = *byte);
        out
    }

    /// Reads the fixed layout back; `None` if its length, format or methods are not ones this
    /// build writes.
    fn decode(bytes: &[u8]) -> Option<TokenClaims> {
        let mut reader = Reader(bytes);
        if reader.take::<1>()? != [CLAIMS_FORMAT] {
            return None;
        }
        let claims = TokenClaims {
            handle: Handle(reader.take()?),
            user_key: UserKey::from_bytes(reader.take()?),
            epoch: u64::from_be_bytes(reader.take()?),
            jkt: reader.take()?,
            issued_at: u64::from_be_bytes(reader.take()?),
            expires_at: u64::from_be_bytes(reader.take()?),
            session_expires_at: u64::from_be_bytes(reader.take()?),
            methods: Methods::from_bits(u8::from_be_bytes(reader.take()?))?,
            token_id: reader.take()?,
        };
        reader.0.is_empty().then_some(claims)
    }
}

/// Takes fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.0.split_first_chunk::<N>()?;
        self.0 = tail;
        Some(*head)
    }
}

/// The token keys: the current key id, which seals new tokens, and the keys of the ids it
/// accepts, the current one and the one before it, so tokens sealed before a rotation open until
/// they expire. Key ids count modulo 256. Wiped on drop; Debug prints only the current id.
#[derive(Clone)]
pub struct TokenKeys {
    current_id: u8,
    current: Zeroizing<[u8; KEY_LEN]>,
    previous: Option<Zeroizing<[u8; KEY_LEN]>>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("current_id", &self.current_id)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// The keys of `current_id` and of the id before it, derived from `master`.
    pub fn derive(master: &MasterSecret, current_id: u8) -> TokenKeys {
        TokenKeys {
            current_id,
            current: token_key(master, current_id),
            previous: Some(token_key(master, current_id.wrapping_sub(1))),
        }
    }

    /// Keys given as raw bytes: `current` for `current_id` and, if given, `previous` for the id
    /// before it. For tests and tools; the server derives its keys with [`TokenKeys::derive`].
    pub fn from_bytes(
        current_id: u8,
        current: [u8; KEY_LEN],
        previous: Option<[u8; KEY_LEN]>,
    ) -> TokenKeys {
        TokenKeys {
            current_id,
            current: Zeroizing::new(current),
            previous: previous.map(Zeroizing::new),
        }
    }

    /// The id new tokens are sealed under.
    pub fn current_id(&self) -> u8 {
        self.current_id
    }

    /// Seals `claims` into a token of exactly [`TOKEN_LEN`] characters under the current key.
    /// Fails only if the system random number generator does.
    pub fn seal(&self, claims: &TokenClaims) -> Result<String, TokenError> {
        let kid = self.current_id;
        let aad: [&[u8]; 2] = [TOKEN_LABEL.as_bytes(), &[kid]];
        let sealed = seal(&self.current, &aad, claims.encode().as_slice())
            .map_err(|_| TokenError::Invalid)?;

        let mut raw = Vec::with_capacity(RAW_TOKEN_LEN);
        raw.push(kid);
        raw.extend_from_slice(&sealed);

        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut token);
        Ok(token)
    }

    /// Opens a token this server sealed, at time `now` (Unix seconds).
    ///
    /// [`TokenError::Malformed`] if it is not [`TOKEN_LEN`] characters of `v1.` and base64url
    /// (checked before any decoding); [`TokenError::Invalid`] if its key id is not accepted or it
    /// does not open; [`TokenError::Expired`] if `now` has reached its expiry or its session's.
    pub fn open(&self, token: &str, now: u64) -> Result<TokenClaims, TokenError> {
        if token.len() != TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let body = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Malformed)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Malformed)?;
        let (kid, sealed) = raw.split_first().ok_or(TokenError::Malformed)?;

        let key = self.key_for(*kid).ok_or(TokenError::Invalid)?;
        let aad: [&[u8]; 2] = [TOKEN_LABEL.as_bytes(), &[*kid]];
        let opened = open(key, &aad, sealed).map_err(|_| TokenError::Invalid)?;
        let claims = TokenClaims::decode(&opened).ok_or(TokenError::Invalid)?;

        if now >= claims.expires_at || now >= claims.session_expires_at {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The key of `kid`, if it is the current id or the one before it.
    fn key_for(&self, kid: u8) -> Option<&[u8; KEY_LEN]> {
        if kid == self.current_id {
            Some(&self.current)
        } else if kid == self.current_id.wrapping_sub(1) {
            self.previous.as_deref()
        } else {
            None
        }
    }
}
