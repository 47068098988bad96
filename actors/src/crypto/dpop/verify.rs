//! Server-side checking of a DPoP proof (RFC 9449 §4.3): the one function the HTTP layer calls on
//! every request that carries a `DPoP` header.
//!
//! Steps, cheapest first and never trusting a claim before its signature is checked:
//!
//! ```text
//! size ≤ 4 KiB ─► 3 base64url parts ─► header: typ, alg, no key by reference, jwk public
//!   ─► signature (ring ES256 / dalek EdDSA verify_strict)
//!   ─► claims: htm, htu, iat, jti, ath, nonce
//! ```
//!
//! Decisions: `htu` is compared with the request URL after dropping the query and the fragment
//! of both, byte for byte otherwise (no case folding, no default-port or percent-encoding
//! normalisation: the HTTP layer passes the configured public URL of the route and blindfold's
//! clients send exactly that). `htm` is compared exactly (HTTP methods are case-sensitive). `iat`
//! may lie up to `max_age_secs` in the past and [`MAX_FUTURE_SKEW_SECS`] in the future, and must
//! be a non-negative integer. A `crit` header is refused because no extension is understood.

use std::borrow::Cow;

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    BASE64URL, MAX_FUTURE_SKEW_SECS, MAX_JTI_CHARS, MAX_PROOF_LEN, NonceKey, PROOF_TYPE, Thumbprint,
};

/// What the request a proof must match looks like, and how strict to be.
#[derive(Clone, Copy)]
pub struct ProofContext<'a> {
    /// The request's HTTP method, e.g. `"POST"`.
    pub method: &'a str,
    /// The configured public URL of the route, e.g. `"https://id.example/v1/sessions"`.
    pub url: &'a str,
    /// The access token sent in `Authorization: DPoP …`, if any; when given, `ath` is required.
    pub access_token: Option<&'a str>,
    /// The current time, in seconds since the Unix epoch.
    pub now: u64,
    /// How old a proof's `iat` (and a server nonce) may be, in seconds.
    pub max_age_secs: u64,
    /// When given, every proof must carry a valid server nonce from this key.
    pub nonce_key: Option<&'a NonceKey>,
}

impl std::fmt::Debug for ProofContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofContext")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("access_token", &self.access_token.map(|_| "…"))
            .field("now", &self.now)
            .field("max_age_secs", &self.max_age_secs)
            .field("nonces_required", &self.nonce_key.is_some())
            .finish()
    }
}

/// A proof that passed every check of [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The RFC 7638 thumbprint of the key that signed the proof; the caller compares it with the
    /// token's `jkt`.
    pub thumbprint: Thumbprint,
    /// SHA-256(thumbprint ‖ jti): the key under which the caller remembers this proof in a
    /// [`ReplayCache`](super::ReplayCache).
    pub jti_digest: [u8; 32],
    /// The proof's `iat`, in seconds since the Unix epoch.
    pub iat: u64,
}

/// Why a proof was refused. Carries no part of the proof, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Longer than [`MAX_PROOF_LEN`](super::MAX_PROOF_LEN).
    #[error("DPoP proof too large")]
    TooLarge,
    /// Not a compact JWS of three base64url parts holding JSON objects, or a required member of
    /// the wrong type.
    #[error("DPoP proof malformed")]
    Malformed,
    /// The header's `typ` is not `dpop+jwt`.
    #[error("DPoP proof has the wrong type")]
    WrongType,
    /// `alg` is neither `ES256` nor `EdDSA`.
    #[error("DPoP proof algorithm not supported")]
    UnsupportedAlgorithm,
    /// The header names a key by reference (`jku`, `x5u`, `x5c`) or marks extensions critical.
    #[error("DPoP proof header member not allowed")]
    ForbiddenHeader,
    /// The header has no `jwk`.
    #[error("DPoP proof has no key")]
    MissingKey,
    /// The `jwk` carries a private key member.
    #[error("DPoP proof key is private")]
    PrivateKey,
    /// The `jwk` is not a valid public key of the type `alg` calls for.
    #[error("DPoP proof key is invalid")]
    BadKey,
    /// The signature does not verify under the `jwk`.
    #[error("DPoP proof signature is invalid")]
    BadSignature,
    /// `htm` is missing or differs from the request method.
    #[error("DPoP proof is for another method")]
    WrongMethod,
    /// `htu` is missing or differs from the request URL.
    #[error("DPoP proof is for another URL")]
    WrongUrl,
    /// `iat` is missing, or older than the accepted age.
    #[error("DPoP proof is stale")]
    Stale,
    /// `iat` lies further in the future than clock skew explains.
    #[error("DPoP proof is from the future")]
    IssuedInFuture,
    /// `jti` is missing or empty.
    #[error("DPoP proof has no jti")]
    MissingJti,
    /// `jti` is longer than [`MAX_JTI_CHARS`](super::MAX_JTI_CHARS).
    #[error("DPoP proof jti is too long")]
    JtiTooLong,
    /// An access token came with the request but the proof has no `ath`.
    #[error("DPoP proof has no access token hash")]
    MissingAth,
    /// `ath` is not the hash of the access token that came with the request.
    #[error("DPoP proof is for another access token")]
    WrongAth,
    /// A server nonce is required and the proof has none, or one that is forged or expired.
    #[error("DPoP proof needs a fresh server nonce")]
    UseNonce,
}

impl ProofError {
    /// The public error code (RFC 9449 §7.1, §8): `use_dpop_nonce` when the client should retry
    /// with the nonce it is sent, `invalid_dpop_proof` for everything else.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::UseNonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }

    /// A short stable reason for logs (`dpop.rejected reason=bad_signature`); never shown to
    /// clients, who get [`code`](Self::code).
    pub fn reason(&self) -> &'static str {
        match self {
            ProofError::TooLarge => "too_large",
            ProofError::Malformed => "malformed",
            ProofError::WrongType => "wrong_type",
            ProofError::UnsupportedAlgorithm => "unsupported_algorithm",
            ProofError::ForbiddenHeader => "forbidden_header",
            ProofError::MissingKey => "missing_key",
            ProofError::PrivateKey => "private_key",
            ProofError::BadKey => "bad_key",
            ProofError::BadSignature => "bad_signature",
            ProofError::WrongMethod => "wrong_method",
            ProofError::WrongUrl => "wrong_url",
            ProofError::Stale => "stale",
            ProofError::IssuedInFuture => "issued_in_future",
            ProofError::MissingJti => "missing_jti",
            ProofError::JtiTooLong => "jti_too_long",
            ProofError::MissingAth => "missing_ath",
            ProofError::WrongAth => "wrong_ath",
            ProofError::UseNonce => "use_dpop_nonce",
        }
    }
}

/// Checks a DPoP proof against the request it came with (RFC 9449 §4.3) and returns the
/// thumbprint of the key that signed it.
///
/// **The caller must still** compare `thumbprint` with the token's bound key, and pass
/// `jti_digest` to a [`ReplayCache`](super::ReplayCache): this function holds no state.
/// Never panics, whatever `proof` holds.
pub fn verify(proof: &str, ctx: &ProofContext<'_>) -> Result<VerifiedProof, ProofError> {
    let parts = CompactJws::split(proof)?;
    let header = Header::parse(&parts.header)?;
    let key = header.public_key()?;

    key.verify(parts.signing_input.as_bytes(), &parts.signature)?;

    let claims = Claims::parse(&parts.payload)?;
    claims.check(ctx)?;
    let jti = claims.jti.as_deref().unwrap_or_default();

    let thumbprint = key.thumbprint();
    Ok(VerifiedProof {
        thumbprint,
        jti_digest: jti_digest(&thumbprint, jti),
        iat: claims.iat,
    })
}

/// SHA-256(thumbprint ‖ jti): the same `jti` from two keys are two different proofs.
fn jti_digest(thumbprint: &Thumbprint, jti: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(thumbprint.as_bytes());
    hasher.update(jti.as_bytes());
    hasher.finalize().into()
}

/// A compact JWS cut into its decoded parts. Nothing in it is trusted yet.
struct CompactJws<'a> {
    signing_input: &'a str,
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    fn split(proof: &'a str) -> Result<CompactJws<'a>, ProofError> {
        if proof.len() > MAX_PROOF_LEN {
            return Err(ProofError::TooLarge);
        }
        let (signing_input, signature) = proof.rsplit_once('.').ok_or(ProofError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(ProofError::Malformed)?;
        if payload.contains('.') {
            return Err(ProofError::Malformed);
        }

        Ok(CompactJws {
            signing_input,
            header: decode(header)?,
            payload: decode(payload)?,
            signature: decode(signature)?,
        })
    }
}

fn decode(part: &str) -> Result<Vec<u8>, ProofError> {
    BASE64URL.decode(part).map_err(|_| ProofError::Malformed)
}

/// Deserializes any value, present even if `null`, as `true`: for members whose mere presence is
/// refused.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The JOSE header members DPoP cares about; others are ignored. A repeated member is an error.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    jwk: Option<Jwk<'a>>,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// The members of a JWK that name a public key, and every member that would make it private
/// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
#[derive(Deserialize)]
struct Jwk<'a> {
    #[serde(borrow)]
    kty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow)]
    y: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    d: bool,
    #[serde(default, deserialize_with = "present")]
    p: bool,
    #[serde(default, deserialize_with = "present")]
    q: bool,
    #[serde(default, deserialize_with = "present")]
    dp: bool,
    #[serde(default, deserialize_with = "present")]
    dq: bool,
    #[serde(default, deserialize_with = "present")]
    qi: bool,
    #[serde(default, deserialize_with = "present")]
    oth: bool,
    #[serde(default, deserialize_with = "present")]
    k: bool,
}

impl<'a> Header<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Header<'a>, ProofError> {
        serde_json::from_slice(bytes).map_err(|_| ProofError::Malformed)
    }

    /// Checks `typ`, `alg` and the key members, and reads the key `alg` calls for.
    fn public_key(&self) -> Result<PublicKey, ProofError> {
        if self.typ.as_deref() != Some(PROOF_TYPE) {
            return Err(ProofError::WrongType);
        }
        let algorithm = match self.alg.as_deref() {
            Some("ES256") => Algorithm::Es256,
            Some("EdDSA") => Algorithm::EdDsa,
            _ => return Err(ProofError::UnsupportedAlgorithm),
        };
        if self.jku || self.x5u || self.x5c || self.crit {
            return Err(ProofError::ForbiddenHeader);
        }

        let jwk = self.jwk.as_ref().ok_or(ProofError::MissingKey)?;
        jwk.public_key(algorithm)
    }
}

impl Jwk<'_> {
    fn public_key(&self, algorithm: Algorithm) -> Result<PublicKey, ProofError> {
        if self.d || self.p || self.q || self.dp || self.dq || self.qi || self.oth || self.k {
            return Err(ProofError::PrivateKey);
        }

        let kty = self.kty.as_deref();
        let crv = self.crv.as_deref();
        match algorithm {
            Algorithm::Es256 if kty == Some("EC") && crv == Some("P-256") => Ok(PublicKey::P256 {
                x: coordinate(&self.x)?,
                y: coordinate(&self.y)?,
            }),
            Algorithm::EdDsa
                if kty == Some("OKP") && crv == Some("Ed25519") && self.y.is_none() =>
            {
                Ok(PublicKey::Ed25519(coordinate(&self.x)?))
            }
            _ => Err(ProofError::BadKey),
        }
    }
}

/// A 32-byte key coordinate in canonical base64url.
fn coordinate(member: &Option<Cow<'_, str>>) -> Result<[u8; 32], ProofError> {
    let text = member.as_deref().ok_or(ProofError::BadKey)?;
    let bytes = BASE64URL.decode(text).map_err(|_| ProofError::BadKey)?;
    bytes.try_into().map_err(|_| ProofError::BadKey)
}

#[derive(Clone, Copy)]
enum Algorithm {
    Es256,
    EdDsa,
}

/// A proof's public key, its shape already matched to `alg`, its validity as a curve point not
/// yet known.
enum PublicKey {
    P256 { x: [u8; 32], y: [u8; 32] },
    Ed25519([u8; 32]),
}

impl PublicKey {
    fn thumbprint(&self) -> Thumbprint {
        match self {
            PublicKey::P256 { x, y } => Thumbprint::of_p256(x, y),
            PublicKey::Ed25519(x) => Thumbprint::of_ed25519(x),
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), ProofError> {
        match self {
            PublicKey::P256 { x, y } => verify_es256(x, y, message, signature),
            PublicKey::Ed25519(x) => verify_eddsa(x, message, signature),
        }
    }
}

/// ES256 with ring: JWS signatures are the fixed 64-byte `r ‖ s` form (RFC 7518 §3.4).
fn verify_es256(
    x: &[u8; 32],
    y: &[u8; 32],
    message: &[u8],
    signature: &[u8],
) -> Result<(), ProofError> {
    let point = uncompressed_point(x, y);
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        point.as_slice(),
    );
    if key.verify(message, signature).is_ok() {
        return Ok(());
    }

    // ring says only "no"; tell a point off the curve from a bad signature, off the hot path.
    match p256::ecdsa::VerifyingKey::from_sec1_bytes(&point) {
        Ok(_) => Err(ProofError::BadSignature),
        Err(_) => Err(ProofError::BadKey),
    }
}

/// `0x04 ‖ x ‖ y` (SEC 1 §2.3.3).
fn uncompressed_point(x: &[u8; 32], y: &[u8; 32]) -> [u8; 65] {
    let mut point = [0u8; 65];
    if let Some((tag, coordinates)) = point.split_first_mut() {
        *tag = 0x04;
        for (slot, byte) in coordinates.iter_mut().zip(x.iter().chain(y.iter())) {
            *slot = *byte;
        }
    }
    point
}

/// EdDSA with `verify_strict`, which also refuses small-order keys and non-canonical `R`.
fn verify_eddsa(x: &[u8; 32], message: &[u8], signature: &[u8]) -> Result<(), ProofError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(x).map_err(|_| ProofError::BadKey)?;
    let signature: [u8; 64] = signature.try_into().map_err(|_| ProofError::BadSignature)?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    key.verify_strict(message, &signature)
        .map_err(|_| ProofError::BadSignature)
}

/// The claims DPoP defines (RFC 9449 §4.2); others are allowed and ignored. A repeated claim is
/// an error.
#[derive(Deserialize)]
struct Claims {
    htm: Option<String>,
    htu: Option<String>,
    #[serde(default, deserialize_with = "issued_at")]
    iat: u64,
    jti: Option<String>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// `iat` as whole seconds; absent or `null` reads as 0, which is always stale.
fn issued_at<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Option::<u64>::deserialize(deserializer).map(Option::unwrap_or_default)
}

impl Claims {
    fn parse(bytes: &[u8]) -> Result<Claims, ProofError> {
        serde_json::from_slice(bytes).map_err(|_| ProofError::Malformed)
    }

    fn check(&self, ctx: &ProofContext<'_>) -> Result<(), ProofError> {
        if self.htm.as_deref() != Some(ctx.method) {
            return Err(ProofError::WrongMethod);
        }
        let htu = self.htu.as_deref().ok_or(ProofError::WrongUrl)?;
        if without_query_and_fragment(htu) != without_query_and_fragment(ctx.url) {
            return Err(ProofError::WrongUrl);
        }

        self.check_iat(ctx)?;
        self.check_jti()?;
        self.check_ath(ctx)?;
        self.check_nonce(ctx)
    }

    fn check_iat(&self, ctx: &ProofContext<'_>) -> Result<(), ProofError> {
        if self.iat > ctx.now.saturating_add(MAX_FUTURE_SKEW_SECS) {
            return Err(ProofError::IssuedInFuture);
        }
        if ctx.now.saturating_sub(self.iat) > ctx.max_age_secs {
            return Err(ProofError::Stale);
        }
        Ok(())
    }

    fn check_jti(&self) -> Result<(), ProofError> {
        let jti = self.jti.as_deref().unwrap_or_default();
        if jti.is_empty() {
            return Err(ProofError::MissingJti);
        }
        if jti.chars().count() > MAX_JTI_CHARS {
            return Err(ProofError::JtiTooLong);
        }
        Ok(())
    }

    /// RFC 9449 §4.3 step 11: `ath` = base64url(SHA-256(access token)), compared in constant
    /// time. Without a token, `ath` is not looked at.
    fn check_ath(&self, ctx: &ProofContext<'_>) -> Result<(), ProofError> {
        let Some(token) = ctx.access_token else {
            return Ok(());
        };
        let ath = self.ath.as_deref().ok_or(ProofError::MissingAth)?;

        let expected = BASE64URL.encode(Sha256::digest(token.as_bytes()));
        if bool::from(expected.as_bytes().ct_eq(ath.as_bytes())) {
            Ok(())
        } else {
            Err(ProofError::WrongAth)
        }
    }

    fn check_nonce(&self, ctx: &ProofContext<'_>) -> Result<(), ProofError> {
        let Some(nonce_key) = ctx.nonce_key else {
            return Ok(());
        };
        match self.nonce.as_deref() {
            Some(nonce) if nonce_key.accepts(nonce, ctx.now, ctx.max_age_secs) => Ok(()),
            _ => Err(ProofError::UseNonce),
        }
    }
}

/// RFC 9449 §4.3 step 9: the query and fragment take no part in matching `htu`.
fn without_query_and_fragment(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_query_and_the_fragment_are_dropped_before_comparing_urls() {
        assert_eq!(
            without_query_and_fragment("https://a.example/p?q=1#f"),
            "https://a.example/p"
        );
        assert_eq!(
            without_query_and_fragment("https://a.example/p#f?q"),
            "https://a.example/p"
        );
        assert_eq!(
            without_query_and_fragment("https://a.example/p"),
            "https://a.example/p"
        );
    }

    #[test]
    fn every_error_but_use_nonce_has_the_invalid_proof_code() {
        assert_eq!(ProofError::UseNonce.code(), "use_dpop_nonce");
        assert_eq!(ProofError::BadSignature.code(), "invalid_dpop_proof");
        assert_eq!(ProofError::Stale.code(), "invalid_dpop_proof");
    }

    #[test]
    fn the_uncompressed_point_is_tag_then_x_then_y() {
        let point = uncompressed_point(&[1u8; 32], &[2u8; 32]);
        assert_eq!(point[0], 4);
        assert_eq!(&point[1..33], &[1u8; 32]);
        assert_eq!(&point[33..], &[2u8; 32]);
    }
}
