//! The user's items: raw bytes under names only the user can read.
//!
//! The server finds an item by its blind id (an HMAC of the name under a key from the user key);
//! the name and the value are sealed under the user key, the value bound to the item and to the
//! version of the event that carries it.

use blindfold_actors::crypto::data;
use blindfold_events::{Event, ItemId};
use percent_encoding::percent_decode_str;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::App;
use super::accounts::internal;
use super::problem::ApiError;
use super::router::{Request, json, no_content};

/// Longest item name in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 255;

/// The item name of a path segment: percent-decoded, UTF-8, 1 to 255 bytes, without ASCII
/// control characters. A `%` not followed by two hex digits is refused, never kept literally.
pub(crate) fn decode_name(segment: &str) -> Result<String, ApiError> {
    if !escapes_are_well_formed(segment) {
        return Err(ApiError::InvalidRequest(
            "The item name has a malformed percent-escape.",
        ));
    }
    let name = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::InvalidRequest("The item name must be UTF-8."))?;
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(ApiError::InvalidRequest(
            "The item name must be 1 to 255 bytes long.",
        ));
    }
    if name.chars().any(|c| c.is_ascii_control()) {
        return Err(ApiError::InvalidRequest(
            "The item name must not contain control characters.",
        ));
    }
    Ok(name.into_owned())
}

/// Whether every `%` in `segment` starts an escape of exactly two hex digits (RFC 3986 §2.1).
fn escapes_are_well_formed(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            continue;
        }
        let (high, low) = (bytes.next(), bytes.next());
        let is_hex = |digit: Option<u8>| digit.is_some_and(|d| d.is_ascii_hexdigit());
        if !is_hex(high) || !is_hex(low) {
            return false;
        }
    }
    true
}

/// `GET /v1/me/items` → `{items: [{name, size, updated_at}]}`, sorted by name.
pub(crate) async fn list(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let user_key = &session.claims.user_key;
    let handle = session.handle();
    let entries = app.store.items(handle).map_err(internal)?;

    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = data::open_item_name(user_key, handle, &entry.item_id, &entry.sealed_name)
            .map_err(internal)?;
        let name = String::from_utf8_lossy(&name).into_owned();
        items.push(
            serde_json::json!({ "name": name, "size": entry.size, "updated_at": entry.updated_at }),
        );
    }
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
}

/// `GET /v1/me/items/{name}` → the raw value.
pub(crate) async fn get(app: &App, req: &Request, name: &str) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let user_key = &session.claims.user_key;
    let handle = session.handle();
    let item_id = user_key.item_id(name.as_bytes());

    let entry = app
        .store
        .item(handle, &item_id)
        .map_err(internal)?
        .ok_or(ApiError::NotFound)?;
    let recorded = app
        .store
        .read_event(handle, entry.version)
        .map_err(internal)?;
    let Event::ItemPut { sealed_value, .. } = recorded.event else {
        return Err(internal(
            "item index points at an event that is not an item write",
        ));
    };
    let value = data::open_item_value(user_key, handle, &item_id, entry.version, &sealed_value)
        .map_err(internal)?;

    let mut response = Response::new(value.to_vec().into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// `PUT /v1/me/items/{name}` with the raw value as the body.
pub(crate) async fn put(app: &App, req: &Request, name: &str) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let user_key = &session.claims.user_key;
    let handle = *session.handle();
    let item_id: ItemId = user_key.item_id(name.as_bytes());
    let sealed_name =
        data::seal_item_name(user_key, &handle, &item_id, name.as_bytes()).map_err(internal)?;

    let value = &req.body;
    app.append_with_retry(&session, |version| {
        let sealed_value =
            data::seal_item_value(user_key, &handle, &item_id, version, value).map_err(internal)?;
        Ok(vec![Event::ItemPut {
            item_id,
            sealed_name: sealed_name.clone(),
            sealed_value,
            size: value.len() as u64,
        }])
    })
    .await?;
    tracing::info!(size = value.len(), "item.written");
    Ok(no_content())
}

/// `DELETE /v1/me/items/{name}`.
pub(crate) async fn delete(app: &App, req: &Request, name: &str) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let item_id = session.claims.user_key.item_id(name.as_bytes());
    if app
        .store
        .item(session.handle(), &item_id)
        .map_err(internal)?
        .is_none()
    {
        return Err(ApiError::NotFound);
    }
    app.append_with_retry(&session, |_| Ok(vec![Event::ItemDeleted { item_id }]))
        .await?;
    tracing::info!("item.deleted");
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_percent_escapes_are_refused() {
        for segment in ["%", "%Z", "%ZZ", "a%", "a%2", "%2G", "ok%zz"] {
            assert!(
                matches!(decode_name(segment), Err(ApiError::InvalidRequest(_))),
                "{segment:?} was accepted"
            );
        }
    }

    #[test]
    fn well_formed_escapes_decode_in_either_case() {
        assert_eq!(decode_name("a%20b").unwrap(), "a b");
        assert_eq!(decode_name("%c3%a9t%C3%A9").unwrap(), "été");
        assert_eq!(decode_name("100%25").unwrap(), "100%");
    }

    #[test]
    fn names_with_control_characters_are_refused_after_decoding() {
        for segment in ["%00", "a%0Ab", "%1F", "%7F", "tab%09"] {
            assert!(
                matches!(decode_name(segment), Err(ApiError::InvalidRequest(_))),
                "{segment:?} was accepted"
            );
        }
    }
}
