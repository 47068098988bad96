//! Operator blindness: canary values a user gives the server appear nowhere an operator can
//! look — not in the data directory, not in debug logs, not in `blindfold inspect`, and not even
//! in the events the operator can decrypt with every server key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use blindfold_actors::crypto::keys::{MasterSecret, ServerKeys};
use blindfold_events::{EventStore, FjallStore, Handle};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::rfc6238;
use crate::support::{Client, HIGH_LIMITS, SMALL_KDF, ServerFiles, every_file};

const USERNAME: &str = "CanaryUserZebra7";
const USERNAME_NORMALIZED: &str = "canaryuserzebra7";
const PASSWORD: &str = "CanaryPasswordQuokka9";
const NEW_PASSWORD: &str = "CanaryNewPasswordMarmot3";
const RECOVERED_PASSWORD: &str = "CanaryRecoveredPasswordLynx5";
const WRONG_PASSWORD: &str = "CanaryWrongPasswordGecko1";
const UNKNOWN_USER: &str = "CanaryUnknownUserHeron4";
const EMAIL: &str = "canary.email.okapi@example.org";
const PROFILE_KEY: &str = "CanaryFieldKeyIbex";
const PROFILE_VALUE: &str = "CanaryProfileValueTapir";
const NEW_EMAIL: &str = "canary.second.email.dugong@example.org";
const ITEM_NAME: &str = "CanaryItemNameNarwhal";
const ITEM_VALUE: &str = "CanaryItemValueAxolotl-the-secret-note";
const SECOND_ITEM_NAME: &str = "CanarySecondItemPangolin";
const SECOND_ITEM_VALUE: &str = "CanarySecondValueCapybara-deleted-later";

/// Every form of `canary` an encoder on the way to disk or a log might produce: plain, UTF-16
/// (LE and BE), hex (lower and upper case), and base64 (standard and URL-safe) at each of the
/// three byte alignments.
fn forms(canary: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![canary.to_vec()];
    let text = String::from_utf8_lossy(canary);
    forms.push(text.encode_utf16().flat_map(u16::to_le_bytes).collect());
    forms.push(text.encode_utf16().flat_map(u16::to_be_bytes).collect());
    let hex: String = canary.iter().map(|b| format!("{b:02x}")).collect();
    forms.push(hex.clone().into_bytes());
    forms.push(hex.to_uppercase().into_bytes());
    for shift in 0..3usize {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(canary);
        let first = (8 * shift).div_ceil(6);
        let last = 8 * shifted.len() / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&shifted);
            forms.push(encoded.as_bytes()[first..last].to_vec());
        }
    }
    forms
}

/// Each (canary label, where) pair at which some form of a canary occurs in `haystack`.
///
/// ASCII forms are searched in a lossy UTF-8 view of the haystack, which keeps every ASCII run
/// intact, with the standard library's substring search: data files run to tens of MiB.
fn hits(canaries: &[(String, Vec<u8>)], haystack: &[u8], place: &str) -> Vec<String> {
    let squeezed = squeeze_zero_runs(haystack);
    let text = String::from_utf8_lossy(&squeezed);
    let mut found = Vec::new();
    for (label, canary) in canaries {
        for form in forms(canary) {
            let present = match std::str::from_utf8(&form) {
                Ok(ascii) if ascii.is_ascii() => text.contains(ascii),
                // Raw bytes (handles) are only looked for in logs and reports, which are small.
                _ => haystack
                    .windows(form.len())
                    .any(|window| window == form.as_slice()),
            };
            if present {
                found.push(format!("{label} in {place}"));
            }
        }
    }
    found
}

/// `bytes` with every run of two or more zero bytes cut to one 0xFF byte. No ASCII form of a
/// canary holds two zeros in a row (UTF-16 of ASCII has single ones), so no match is lost, and
/// the preallocated, mostly empty files of the store shrink to what was written.
fn squeeze_zero_runs(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().min(1 << 20));
    let mut rest = bytes;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == 0 && tail.first() == Some(&0) {
            let zeros = rest.iter().take_while(|b| **b == 0).count();
            out.push(0xFF);
            rest = &rest[zeros..];
        } else {
            out.push(byte);
            rest = tail;
        }
    }
    out
}

fn canaries(extra: &[(&str, String)]) -> Vec<(String, Vec<u8>)> {
    let fixed = [
        ("username", USERNAME),
        ("normalized username", USERNAME_NORMALIZED),
        ("password", PASSWORD),
        ("new password", NEW_PASSWORD),
        ("recovered password", RECOVERED_PASSWORD),
        ("wrong password", WRONG_PASSWORD),
        ("unknown user", UNKNOWN_USER),
        ("email", EMAIL),
        ("profile key", PROFILE_KEY),
        ("profile value", PROFILE_VALUE),
        ("new email", NEW_EMAIL),
        ("item name", ITEM_NAME),
        ("item value", ITEM_VALUE),
        ("second item name", SECOND_ITEM_NAME),
        ("second item value", SECOND_ITEM_VALUE),
    ];
    let mut all: Vec<(String, Vec<u8>)> = fixed
        .iter()
        .map(|(label, value)| (label.to_string(), value.as_bytes().to_vec()))
        .collect();
    all.extend(
        extra
            .iter()
            .map(|(label, value)| (label.to_string(), value.as_bytes().to_vec())),
    );
    all
}

#[track_caller]
fn ok(
    reply: Result<crate::support::Reply, reqwest::Error>,
    status: StatusCode,
) -> crate::support::Reply {
    let reply = reply.unwrap();
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

#[tokio::test]
async fn an_operator_with_every_key_and_debug_logs_finds_no_canary_anywhere() {
    let files = ServerFiles::new();
    let args: Vec<&str> = SMALL_KDF
        .iter()
        .chain(HIGH_LIMITS.iter())
        .copied()
        .collect();
    let server = files.start(&args, "debug").await;
    let http = reqwest::Client::new();

    // A full life: sign up, profile, items, wrong guesses, password change, log out, recovery.
    let mut user = Client::new(&http, &server.base);
    let profile = json!({"email": EMAIL, PROFILE_KEY: PROFILE_VALUE});
    let created = ok(
        user.sign_up(USERNAME, PASSWORD, profile).await,
        StatusCode::CREATED,
    );
    let recovery_key = created.json()["recovery_key"].as_str().unwrap().to_owned();
    let first_token = user.token.clone().unwrap();
    ok(
        user.send(Method::GET, "/v1/me", Vec::new()).await,
        StatusCode::OK,
    );
    let new_profile = json!({"email": NEW_EMAIL, PROFILE_KEY: PROFILE_VALUE});
    ok(
        user.send_json(Method::PUT, "/v1/me/profile", &new_profile)
            .await,
        StatusCode::NO_CONTENT,
    );
    for (name, value) in [
        (ITEM_NAME, ITEM_VALUE),
        (SECOND_ITEM_NAME, SECOND_ITEM_VALUE),
    ] {
        let path = format!("/v1/me/items/{name}");
        ok(
            user.send(Method::PUT, &path, value.as_bytes().to_vec())
                .await,
            StatusCode::NO_CONTENT,
        );
    }
    let got = ok(
        user.send(
            Method::GET,
            &format!("/v1/me/items/{ITEM_NAME}"),
            Vec::new(),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(got.body, ITEM_VALUE.as_bytes());
    ok(
        user.send(Method::GET, "/v1/me/items", Vec::new()).await,
        StatusCode::OK,
    );
    let second = format!("/v1/me/items/{SECOND_ITEM_NAME}");
    ok(
        user.send(Method::DELETE, &second, Vec::new()).await,
        StatusCode::NO_CONTENT,
    );
    let refreshed = ok(
        user.send(Method::POST, "/v1/sessions/refresh", Vec::new())
            .await,
        StatusCode::OK,
    );
    user.keep_token(&refreshed);

    let mut stranger = Client::new(&http, &server.base);
    ok(
        stranger.log_in(USERNAME, WRONG_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    );
    ok(
        stranger.log_in(UNKNOWN_USER, WRONG_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    );
    ok(
        stranger.sign_up(USERNAME, WRONG_PASSWORD, json!({})).await,
        StatusCode::CONFLICT,
    );

    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let changed = ok(
        user.send_json(Method::PUT, "/v1/me/password", &change)
            .await,
        StatusCode::OK,
    );
    user.keep_token(&changed);
    ok(
        user.send(Method::DELETE, "/v1/sessions", Vec::new()).await,
        StatusCode::NO_CONTENT,
    );
    let mut device = Client::new(&http, &server.base);
    ok(device.log_in(USERNAME, NEW_PASSWORD).await, StatusCode::OK);
    let recover = json!({"username": USERNAME, "recovery_key": recovery_key, "new_password": RECOVERED_PASSWORD});
    let recovered = ok(
        device
            .send_json(Method::POST, "/v1/recovery", &recover)
            .await,
        StatusCode::OK,
    );
    let second_recovery_key = recovered.json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_owned();
    device.keep_token(&recovered);
    ok(
        device.send(Method::GET, "/v1/me", Vec::new()).await,
        StatusCode::OK,
    );

    // The second factor: enrol, log in with a code and then a backup code, read the log.
    let begun = ok(
        device.send(Method::POST, "/v1/me/totp", Vec::new()).await,
        StatusCode::OK,
    )
    .json();
    let totp_base32 = begun["secret"].as_str().unwrap().to_owned();
    let totp_secret = rfc6238::base32_decode(&totp_base32);
    let code = rfc6238::code(&totp_secret, rfc6238::unix_now());
    let confirm = json!({"enrollment": begun["enrollment"], "code": code});
    let confirmed = ok(
        device
            .send_json(Method::POST, "/v1/me/totp/confirm", &confirm)
            .await,
        StatusCode::OK,
    )
    .json();
    let backup_codes: Vec<String> = confirmed["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let with_backup =
        json!({"username": USERNAME, "password": RECOVERED_PASSWORD, "totp": backup_codes[0]});
    ok(
        Client::new(&http, &server.base)
            .send_json(Method::POST, "/v1/sessions", &with_backup)
            .await,
        StatusCode::OK,
    );
    ok(
        device
            .send(Method::GET, "/v1/me/security-log", Vec::new())
            .await,
        StatusCode::OK,
    );

    let last_token = device.token.clone().unwrap();
    server.kill();

    let mut secrets = vec![
        ("recovery key", recovery_key.clone()),
        ("second recovery key", second_recovery_key),
        ("first token", first_token),
        ("last token", last_token),
        ("TOTP secret (base32)", totp_base32),
    ];
    for code in &backup_codes {
        secrets.push(("backup code", code.clone()));
    }
    let mut canaries = canaries(&secrets);
    canaries.push(("TOTP secret (raw)".to_string(), totp_secret.clone()));
    let mut found = Vec::new();

    // (a) Every byte of the data directory, and the logs.
    let data_files = every_file(&files.data());
    assert!(
        data_files.len() > 3,
        "the data directory is unexpectedly empty"
    );
    for (path, bytes) in &data_files {
        found.extend(hits(&canaries, bytes, &path.display().to_string()));
    }
    let log = std::fs::read(files.log()).unwrap();
    assert!(
        log.windows(5).any(|w| w == b"DEBUG"),
        "debug logging did not reach the log"
    );
    found.extend(hits(&canaries, &log, "the server log"));

    // (b) Every event, decrypted with the keyring: postcard and Debug forms.
    let handles = {
        let (master, created) = MasterSecret::load_or_create(&files.keyring()).unwrap();
        assert!(!created);
        let keys = ServerKeys::derive(&master, 1).unwrap();
        let store = FjallStore::open(&files.data(), keys.storage.clone()).unwrap();
        let mut handles: Vec<Handle> = Vec::new();
        for entry in store.feed(0, usize::MAX).unwrap() {
            if !handles.contains(&entry.handle) {
                handles.push(entry.handle);
            }
        }
        assert_eq!(handles.len(), 1);
        let mut opened = 0;
        for handle in &handles {
            for recorded in store.read_stream(handle).unwrap() {
                let bytes = postcard::to_allocvec(&recorded).unwrap();
                found.extend(hits(
                    &canaries,
                    &bytes,
                    &format!("decrypted {}", recorded.event.kind()),
                ));
                found.extend(hits(
                    &canaries,
                    format!("{recorded:?}").as_bytes(),
                    "an event's Debug",
                ));
                opened += 1;
            }
        }
        assert!(opened >= 8, "only {opened} events opened");
        handles
    };

    // What inspect prints: no canary, no handle.
    let inspection = files.operator("inspect");
    assert!(inspection.contains("accounts        1"), "{inspection}");
    assert!(inspection.contains("item_put"), "{inspection}");
    found.extend(hits(&canaries, inspection.as_bytes(), "inspect's output"));
    let handle_canaries: Vec<(String, Vec<u8>)> = handles
        .iter()
        .map(|h| ("a handle".to_string(), h.0.to_vec()))
        .collect();
    found.extend(hits(
        &handle_canaries,
        inspection.as_bytes(),
        "inspect's output",
    ));
    found.extend(hits(&handle_canaries, &log, "the server log"));

    assert!(found.is_empty(), "canaries found: {found:#?}");
}

#[test]
fn every_encoding_of_a_canary_is_found_where_it_was_hidden() {
    let canary = b"CanaryProbeValue".to_vec();
    let all = vec![("probe".to_string(), canary.clone())];
    for prefix in 0..3 {
        let mut hay = vec![b'x'; prefix];
        hay.extend(STANDARD_NO_PAD.encode(&canary).into_bytes());
        assert!(!hits(&all, &hay, "a").is_empty());
        let mut hay = vec![0u8; prefix];
        hay.extend_from_slice(&canary);
        let encoded = URL_SAFE_NO_PAD.encode(&hay).into_bytes();
        assert!(
            !hits(&all, &encoded, "b").is_empty(),
            "url-safe at shift {prefix}"
        );
    }
    let utf16: Vec<u8> = "CanaryProbeValue"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    assert!(!hits(&all, &utf16, "c").is_empty());
    assert!(!hits(&all, b"43616e61727950726f626556616c7565", "d").is_empty());
    assert!(hits(&all, b"nothing to see here", "e").is_empty());
}
