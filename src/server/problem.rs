//! Errors a client can see: RFC 9457 `application/problem+json` with a stable `code`.
//!
//! Every failure of a route ends here. The body carries only the fixed title of its code, never
//! internal detail; the detail, if any, is logged once where the error is mapped.

use std::time::Duration;

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// An error answered to the client. Each variant has one status and one stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The request is malformed; the reason is a fixed, input-free sentence.
    InvalidRequest(&'static str),
    /// Unknown username, wrong password or wrong recovery key: never told apart.
    InvalidCredentials,
    /// The password was right and a second factor is needed.
    SecondFactorRequired,
    /// The second factor was wrong or already used.
    InvalidSecondFactor,
    /// The username is registered already.
    UsernameTaken,
    /// No usable `Authorization: DPoP` token.
    InvalidToken,
    /// The token expired.
    TokenExpired,
    /// The token was revoked (log out everywhere, password change, recovery, deletion).
    TokenRevoked,
    /// The DPoP proof was missing or failed a check.
    InvalidDpopProof,
    /// The server wants a DPoP nonce; the fresh one is in the `DPoP-Nonce` header.
    UseDpopNonce,
    /// Too many attempts; retry after the given time.
    RateLimited(Duration),
    /// The server is saturated (derivation queue full, actor restarting); retry shortly.
    Overloaded(Duration),
    /// The body is larger than the route accepts.
    PayloadTooLarge,
    /// The body did not arrive in time.
    RequestTimeout,
    /// No such route or item.
    NotFound,
    /// The route exists but not with this method; the methods it takes, for `Allow`.
    MethodNotAllowed(&'static str),
    /// A concurrent change won; re-read and retry.
    Conflict,
    /// Something failed inside the server. The body says nothing more.
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidCredentials
            | ApiError::SecondFactorRequired
            | ApiError::InvalidSecondFactor
            | ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::TokenRevoked
            | ApiError::InvalidDpopProof
            | ApiError::UseDpopNonce => StatusCode::UNAUTHORIZED,
            ApiError::UsernameTaken | ApiError::Conflict => StatusCode::CONFLICT,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, documented code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::SecondFactorRequired => "second_factor_required",
            ApiError::InvalidSecondFactor => "invalid_second_factor",
            ApiError::UsernameTaken => "username_taken",
            ApiError::InvalidToken => "invalid_token",
            ApiError::TokenExpired => "token_expired",
            ApiError::TokenRevoked => "token_revoked",
            ApiError::InvalidDpopProof => "invalid_dpop_proof",
            ApiError::UseDpopNonce => "use_dpop_nonce",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict => "conflict",
            ApiError::Internal => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(reason) => reason,
            ApiError::InvalidCredentials => "The username or the credentials are wrong.",
            ApiError::SecondFactorRequired => "A second factor is required.",
            ApiError::InvalidSecondFactor => "The second factor is wrong or was already used.",
            ApiError::UsernameTaken => "This username is taken.",
            ApiError::InvalidToken => "A valid DPoP-bound access token is required.",
            ApiError::TokenExpired => "The access token expired.",
            ApiError::TokenRevoked => "The access token was revoked.",
            ApiError::InvalidDpopProof => "The DPoP proof is missing or invalid.",
            ApiError::UseDpopNonce => "Use the DPoP nonce the server sent.",
            ApiError::RateLimited(_) => "Too many attempts. Retry later.",
            ApiError::Overloaded(_) => "The server is busy. Retry shortly.",
            ApiError::PayloadTooLarge => "The request body is too large.",
            ApiError::RequestTimeout => "The request body did not arrive in time.",
            ApiError::NotFound => "Not found.",
            ApiError::MethodNotAllowed(_) => "Method not allowed on this route.",
            ApiError::Conflict => "A concurrent change won. Retry.",
            ApiError::Internal => "Internal error.",
        }
    }

    /// The problem+json body: `{"type", "title", "status", "code"}`.
    pub fn body(&self) -> String {
        serde_json::json!({
            "type": format!("urn:blindfold:problem:{}", self.code()),
            "title": self.title(),
            "status": self.status().as_u16(),
            "code": self.code(),
        })
        .to_string()
    }

    /// The problem+json response, with `Retry-After` and `WWW-Authenticate` where they apply.
    pub fn into_response(self) -> Response {
        let mut response = Response::new(self.body().into());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );

        if let ApiError::RateLimited(wait) | ApiError::Overloaded(wait) = self {
            let seconds = wait.as_secs().max(1);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(challenge) = self.challenge() {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }

    /// The RFC 9449 §7.1 challenge for token and proof errors.
    fn challenge(&self) -> Option<&'static str> {
        match self {
            ApiError::InvalidToken | ApiError::TokenExpired | ApiError::TokenRevoked => {
                Some(r#"DPoP error="invalid_token", algs="ES256 EdDSA""#)
            }
            ApiError::InvalidDpopProof => {
                Some(r#"DPoP error="invalid_dpop_proof", algs="ES256 EdDSA""#)
            }
            ApiError::UseDpopNonce => Some(r#"DPoP error="use_dpop_nonce", algs="ES256 EdDSA""#),
            _ => None,
        }
    }
}
