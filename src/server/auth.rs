//! Who is asking: DPoP proofs, access tokens, revocation epochs and credential rate limits.
//!
//! ```text
//!   Authorization: DPoP <token>   DPoP: <proof>
//!        │                            │
//!        │                 verify proof (typ, alg, jwk, signature, htm, htu, iat, ath, nonce)
//!        │                 jti never seen in the window
//!   open token (sealer) ──── proof key thumbprint == token jkt
//!        │
//!   account record: exists, epoch == token epoch  ──>  Session
//! ```

use std::net::IpAddr;

use blindfold_actors::crypto::data::Purpose;
use blindfold_actors::crypto::dpop::{self, ProofContext, VerifiedProof};
use blindfold_actors::crypto::token::{TokenClaims, TokenError};
use blindfold_events::{AccountRecord, Handle};
use subtle::ConstantTimeEq;
use warp::http::header;

use super::App;
use super::problem::ApiError;
use super::rate_limit::RateLimiter;
use super::router::Request;
use super::spent_proofs::SpendError;

/// An authenticated request: a live token, its device proven, its account current.
pub(crate) struct Session {
    pub claims: Box<TokenClaims>,
    pub record: AccountRecord,
}

impl Session {
    pub(crate) fn handle(&self) -> &Handle {
        &self.claims.handle
    }
}

impl App {
    /// Unix seconds, from the injected clock.
    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Verifies the request's DPoP proof and spends its `jti`: for the routes that issue a
    /// token from credentials, where no token comes with the proof.
    pub(crate) fn device_proof(&self, req: &Request) -> Result<VerifiedProof, ApiError> {
        let proof = self.verify_proof(req, None)?;
        self.spend_proof(&proof)?;
        Ok(proof)
    }

    /// Checks the request's one DPoP proof against this request (and its token, if any), without
    /// spending it yet.
    fn verify_proof(
        &self,
        req: &Request,
        access_token: Option<&str>,
    ) -> Result<VerifiedProof, ApiError> {
        let mut values = req.headers.get_all("dpop").iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            tracing::info!(reason = "missing_or_repeated", "dpop.rejected");
            return Err(ApiError::InvalidDpopProof);
        };
        let proof = value.to_str().map_err(|_| ApiError::InvalidDpopProof)?;

        let url = format!("{}{}", self.config.public_url, req.path);
        let context = ProofContext {
            method: req.method.as_str(),
            url: &url,
            access_token,
            now: self.now(),
            max_age_secs: self.config.dpop_window,
            nonce_key: self.config.dpop_nonces.then_some(&self.nonce_key),
        };
        dpop::verify(proof, &context).map_err(|error| {
            tracing::info!(reason = error.reason(), "dpop.rejected");
            match error.code() {
                "use_dpop_nonce" => ApiError::UseDpopNonce,
                _ => ApiError::InvalidDpopProof,
            }
        })
    }

    /// Remembers a verified proof's `jti` for the window, refusing it if it was seen before.
    fn spend_proof(&self, proof: &VerifiedProof) -> Result<(), ApiError> {
        match self
            .spent_proofs
            .spend(proof.jti_digest, proof.iat, self.now())
        {
            Ok(()) => Ok(()),
            Err(SpendError::Replayed) => {
                tracing::info!(reason = "replayed", "dpop.rejected");
                Err(ApiError::InvalidDpopProof)
            }
            Err(SpendError::Unavailable { retry_after_secs }) => Err(ApiError::Overloaded(
                std::time::Duration::from_secs(retry_after_secs),
            )),
        }
    }

    /// Authenticates a request that carries `Authorization: DPoP <token>`.
    ///
    /// The proof's `jti` is spent only once the token has opened and is bound to the proof's
    /// key, so requests without a live token cannot fill the replay cache. A token is good only
    /// for the account it was issued for: the user key it carries must open the account's
    /// sealed username, which fails for a new account that took over a deleted one's name.
    pub(crate) async fn authenticate(&self, req: &Request) -> Result<Session, ApiError> {
        let token = access_token(req)?;
        let proof = self.verify_proof(req, Some(token))?;

        let claims = match self.actors.sealer.open(token.to_owned(), self.now()).await {
            Ok(Ok(claims)) => claims,
            Ok(Err(error)) => return Err(token_rejected(error)),
            Err(_) => return Err(ApiError::Overloaded(std::time::Duration::from_secs(1))),
        };
        if !bool::from(claims.jkt.ct_eq(proof.thumbprint.as_bytes())) {
            tracing::info!(reason = "other_device", "token.rejected");
            return Err(ApiError::InvalidDpopProof);
        }
        self.spend_proof(&proof)?;

        let record = self.account(&claims.handle)?;
        let current = record.filter(|record| {
            record.epoch == claims.epoch
                && claims
                    .user_key
                    .open(
                        Purpose::Username,
                        &claims.handle,
                        &[],
                        &record.sealed_username,
                    )
                    .is_ok()
        });
        match current {
            Some(record) => Ok(Session { claims, record }),
            None => {
                tracing::info!(reason = "revoked", "token.rejected");
                Err(ApiError::TokenRevoked)
            }
        }
    }

    /// The current record of an account.
    pub(crate) fn account(&self, handle: &Handle) -> Result<Option<AccountRecord>, ApiError> {
        self.store.account(handle).map_err(|error| {
            tracing::error!(%error, "store.read_failed");
            ApiError::Internal
        })
    }

    /// Takes one credential attempt (sign-up, log-in, recovery) from the client address's budget.
    pub(crate) fn limit_address(&self, req: &Request) -> Result<(), ApiError> {
        let Some(address) = req.remote.map(|a| client_key(a.ip())) else {
            return Ok(());
        };
        self.per_address
            .check(&address, self.clock.now_ms())
            .map_err(|wait| {
                tracing::info!(scope = "address", "rate.limited");
                ApiError::RateLimited(wait)
            })
    }

    /// Takes one credential attempt from the handle's budget, whether or not an account has the
    /// handle: throttling says nothing about which names exist.
    pub(crate) fn limit_handle(&self, handle: &Handle) -> Result<(), ApiError> {
        Self::limit(&self.per_handle, handle, self.clock.now_ms(), "handle")
    }

    /// Takes one recovery attempt from the handle's recovery budget, which is kept apart from
    /// the password budget: someone guessing at a name's password (and so spending its budget)
    /// does not also keep the owner from recovering. Recovery keys carry 160 bits, so a budget
    /// of their own adds no useful guesses.
    pub(crate) fn limit_recovery_handle(&self, handle: &Handle) -> Result<(), ApiError> {
        Self::limit(
            &self.per_handle_recovery,
            handle,
            self.clock.now_ms(),
            "handle_recovery",
        )
    }

    fn limit(
        limiter: &RateLimiter<Handle>,
        handle: &Handle,
        now_ms: u64,
        scope: &'static str,
    ) -> Result<(), ApiError> {
        limiter.check(handle, now_ms).map_err(|wait| {
            tracing::info!(scope, "rate.limited");
            ApiError::RateLimited(wait)
        })
    }
}

/// The token of `Authorization: DPoP <token>`.
fn access_token(req: &Request) -> Result<&str, ApiError> {
    let value = req
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::InvalidToken)?;
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("DPoP") || token.is_empty() {
        return Err(ApiError::InvalidToken);
    }
    Ok(token.trim())
}

fn token_rejected(error: TokenError) -> ApiError {
    let reason = match error {
        TokenError::Expired => "expired",
        TokenError::Malformed => "malformed",
        TokenError::Invalid => "invalid",
    };
    tracing::info!(reason, "token.rejected");
    match error {
        TokenError::Expired => ApiError::TokenExpired,
        _ => ApiError::InvalidToken,
    }
}

/// IPv6 clients are limited per /64, the block one subscriber usually holds. An IPv4 client
/// on a dual-stack listener (`::ffff:a.b.c.d`) is its IPv4 address, not one /64 shared by all.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_key_per_64_and_mapped_ipv4_clients_keep_their_own() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:bbbb::9")),
            client_key(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(
            client_key(ip("::ffff:192.0.2.7")),
            client_key(ip("::ffff:198.51.100.1"))
        );
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}
