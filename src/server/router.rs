//! Routing, body limits and the last line of error handling: every request leaves through
//! [`handle`] with a response, never a panic or a warp rejection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warp::Buf;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;
use zeroize::Zeroizing;

use super::problem::ApiError;
use super::{App, accounts, items, me, second_factor};

/// A request once its body is read. The body is wiped when the request is dropped: it may hold
/// a password.
pub(crate) struct Request {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub remote: Option<SocketAddr>,
    pub body: Zeroizing<Vec<u8>>,
    /// The body's share of the body memory budget, given back when the request is dropped.
    _budget: Option<OwnedSemaphorePermit>,
}

/// Reads the body within the route's limit, routes, and answers.
pub(crate) async fn handle<S, B>(
    app: Arc<App>,
    method: Method,
    path: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let started = Instant::now();
    let limit = body_limit(&app, &method, &path);
    let read = read_body(&headers, body, limit, &app.body_budget);
    let result = match tokio::time::timeout(app.config.body_timeout, read).await {
        Ok(Ok((body, budget))) => {
            route(
                &app,
                &Request {
                    method,
                    path,
                    headers,
                    remote,
                    body,
                    _budget: budget,
                },
            )
            .await
        }
        Ok(Err(error)) => Err(error),
        Err(_) => {
            tracing::info!("request.body_timed_out");
            Err(ApiError::RequestTimeout)
        }
    };

    let mut response = result.unwrap_or_else(ApiError::into_response);
    if app.config.dpop_nonces {
        let nonce = app.nonce_key.issue(app.now());
        if let Ok(value) = HeaderValue::from_str(&nonce) {
            response.headers_mut().insert("dpop-nonce", value);
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    app.metrics.observe(response.status(), started.elapsed());
    response
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let path = req.path.strip_prefix('/').unwrap_or(&req.path);
    let segments: Vec<&str> = path.split('/').collect();
    let method = &req.method;

    match segments.as_slice() {
        ["healthz"] if method == Method::GET || method == Method::HEAD => {
            Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
        }
        ["metrics"] if method == Method::GET => Ok(app.metrics.render(app)),
        ["v1", "accounts"] if method == Method::POST => accounts::sign_up(app, req).await,
        ["v1", "sessions"] if method == Method::POST => accounts::log_in(app, req).await,
        ["v1", "sessions"] if method == Method::DELETE => me::log_out_everywhere(app, req).await,
        ["v1", "sessions", "refresh"] if method == Method::POST => {
            accounts::refresh(app, req).await
        }
        ["v1", "recovery"] if method == Method::POST => accounts::recover(app, req).await,
        ["v1", "me"] if method == Method::GET => me::get(app, req).await,
        ["v1", "me"] if method == Method::DELETE => me::delete_account(app, req).await,
        ["v1", "me", "totp"] if method == Method::POST => second_factor::begin(app, req).await,
        ["v1", "me", "totp"] if method == Method::DELETE => second_factor::disable(app, req).await,
        ["v1", "me", "totp", "confirm"] if method == Method::POST => {
            second_factor::confirm(app, req).await
        }
        ["v1", "me", "backup-codes"] if method == Method::POST => {
            second_factor::regenerate(app, req).await
        }
        ["v1", "me", "security-log"] if method == Method::GET => {
            second_factor::security_log(app, req).await
        }
        ["v1", "me", "profile"] if method == Method::PUT => me::put_profile(app, req).await,
        ["v1", "me", "password"] if method == Method::PUT => me::change_password(app, req).await,
        ["v1", "me", "items"] if method == Method::GET => items::list(app, req).await,
        ["v1", "me", "items", name] => {
            let name = items::decode_name(name)?;
            match *method {
                Method::GET => items::get(app, req, &name).await,
                Method::PUT => items::put(app, req, &name).await,
                Method::DELETE => items::delete(app, req, &name).await,
                _ => Err(ApiError::MethodNotAllowed("GET, PUT, DELETE")),
            }
        }
        _ => Err(allowed_methods(&segments).map_or(ApiError::NotFound, ApiError::MethodNotAllowed)),
    }
}

/// The methods a known path answers, for `405` and its `Allow` header; `None` for an unknown
/// path.
fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["healthz"] => "GET, HEAD",
        ["metrics"] | ["v1", "me", "items"] | ["v1", "me", "security-log"] => "GET",
        ["v1", "accounts"]
        | ["v1", "sessions", "refresh"]
        | ["v1", "recovery"]
        | ["v1", "me", "totp", "confirm"]
        | ["v1", "me", "backup-codes"] => "POST",
        ["v1", "sessions"] | ["v1", "me", "totp"] => "POST, DELETE",
        ["v1", "me"] => "GET, DELETE",
        ["v1", "me", "profile"] | ["v1", "me", "password"] => "PUT",
        ["v1", "me", "items", _] => "GET, PUT, DELETE",
        _ => return None,
    })
}

/// Item writes may carry a full item; everything else is a small JSON body.
fn body_limit(app: &App, method: &Method, path: &str) -> usize {
    if method == Method::PUT && path.starts_with("/v1/me/items/") {
        app.config.max_item_bytes
    } else {
        app.config.max_json_bytes
    }
}

/// Reads at most `limit` bytes, refusing as soon as the declared or actual length exceeds it.
///
/// Every byte of buffer is first taken from `budget`, the memory all bodies in flight share,
/// and only as bytes arrive: a declared length that is never sent holds nothing. The buffer
/// grows by doubling up to the declared length (or the limit), and what the budget is charged
/// is its capacity, not its length. A body that does not fit is refused at once with 503, so
/// slow or unauthenticated uploads cannot hold more memory than the budget, however many
/// connections send them.
async fn read_body<S, B>(
    headers: &HeaderMap,
    body: S,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Zeroizing<Vec<u8>>, Option<OwnedSemaphorePermit>), ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge);
    }
    let ceiling = declared.unwrap_or(limit).min(limit);

    let mut held = Held::default();
    let mut body = std::pin::pin!(body);
    let mut bytes = Zeroizing::new(Vec::new());
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|_| ApiError::InvalidRequest("The request body could not be read."))?;
        let wanted = bytes.len() + chunk.remaining();
        if wanted > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        if wanted > bytes.capacity() {
            // IMPORTANT: the budget is charged before the buffer grows. Growing into a fresh
            // buffer (not `reserve`, which would leave the old bytes unwiped in freed memory).
            let capacity = wanted.max(bytes.capacity().saturating_mul(2).min(ceiling));
            held.reserve(budget, capacity)?;
            let mut grown = Zeroizing::new(Vec::with_capacity(capacity));
            grown.extend_from_slice(&bytes);
            bytes = grown;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok((bytes, held.permit))
}

/// The part of the body budget one body holds: one permit per byte of buffer.
#[derive(Default)]
struct Held {
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Grows what is held to `bytes` of buffer, or refuses with 503 if the budget has no room.
    fn reserve(&mut self, budget: &Arc<Semaphore>, bytes: usize) -> Result<(), ApiError> {
        let held = self
            .permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        let more = bytes.saturating_sub(held);
        if more == 0 {
            return Ok(());
        }
        let more_permits = u32::try_from(more).map_err(|_| ApiError::PayloadTooLarge)?;
        let permit = Arc::clone(budget)
            .try_acquire_many_owned(more_permits)
            .map_err(|_| {
                tracing::warn!("request.body_budget_full");
                ApiError::Overloaded(std::time::Duration::from_secs(1))
            })?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    json_text(status, value.to_string())
}

/// A JSON response from text already serialized.
pub(crate) fn json_text(status: StatusCode, text: String) -> Response {
    let mut response = Response::new(text.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An empty 204 response.
pub(crate) fn no_content() -> Response {
    let mut response = Response::new(bytes::Bytes::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Parses a JSON body into `T`, refusing unknown fields (each `T` says `deny_unknown_fields`).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    serde_json::from_slice(&req.body)
        .map_err(|_| ApiError::InvalidRequest("The JSON body is malformed or has unknown fields."))
}
