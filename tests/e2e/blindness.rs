//! The operator's view: nothing a user owns is readable in the data directory.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::TestServer;

/// Every file under `dir`, whole.
fn every_byte(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

/// Whether `needle` appears in any file under `dir`.
pub fn found_in_dir(dir: &std::path::Path, needle: &[u8]) -> bool {
    every_byte(dir)
        .iter()
        .any(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
}

#[tokio::test]
async fn the_data_directory_holds_no_username_email_item_name_or_value() {
    let server = TestServer::start().await;
    let mut user = server.client();
    user.sign_up("CanaryUserZebra", "canary-password-Quokka")
        .await
        .expect(StatusCode::CREATED);
    user.send_json(
        Method::PUT,
        "/v1/me/profile",
        &json!({"email": "canary-email@Okapi.example"}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    user.send(
        Method::PUT,
        "/v1/me/items/CanaryItemNameNarwhal",
        b"CanaryItemValueAxolotl".to_vec(),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    let data = server.data.path().to_path_buf();
    server.server.shutdown().await;

    let canaries = [
        "CanaryUserZebra",
        "canaryuserzebra",
        "canary-password-Quokka",
        "canary-email@Okapi.example",
        "CanaryItemNameNarwhal",
        "CanaryItemValueAxolotl",
    ];
    let files = every_byte(&data);
    assert!(!files.is_empty());
    for (path, bytes) in files {
        for canary in canaries {
            let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
            assert!(!found, "{canary} found in {}", path.display());
        }
    }
}
