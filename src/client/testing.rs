//! Test doubles for the client: a proof signer that records what it signs, and a loopback HTTP
//! server that answers from a script and records what it was sent.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::http::{ProofSigner, ServerUrl};

/// What the fake signer was asked to sign.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Signed {
    pub(crate) method: String,
    pub(crate) htu: String,
    pub(crate) token: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) iat: u64,
}

#[derive(Default)]
pub(crate) struct RecordingSigner(pub(crate) Mutex<Vec<Signed>>);

impl ProofSigner for RecordingSigner {
    fn proof(
        &self,
        method: &str,
        htu: &str,
        token: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> String {
        let mut calls = self.0.lock().unwrap();
        calls.push(Signed {
            method: method.into(),
            htu: htu.into(),
            token: token.map(Into::into),
            nonce: nonce.map(Into::into),
            iat,
        });
        format!("proof-{}", calls.len())
    }
}

/// A request as the fake server saw it: request line and headers, lower-cased names.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) line: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves the given raw HTTP responses in order, one per connection, on 127.0.0.1.
pub(crate) async fn fake_server(responses: Vec<String>) -> (ServerUrl, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = ServerUrl::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for response in responses {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = stream.read(&mut chunk).await.unwrap();
                buffer.extend_from_slice(&chunk[..n]);
                if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let line = lines.next().unwrap().to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(": "))
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            while buffer.len() < head_end + length {
                let n = stream.read(&mut chunk).await.unwrap();
                buffer.extend_from_slice(&chunk[..n]);
            }
            let body = buffer[head_end..head_end + length].to_vec();
            log.lock().unwrap().push(Seen {
                line,
                headers,
                body,
            });
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        }
    });
    (url, seen)
}

pub(crate) fn answer(status: &str, extra_headers: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

pub(crate) fn problem(status: &str, code: &str, nonce: Option<&str>) -> String {
    let extra = nonce
        .map(|n| format!("DPoP-Nonce: {n}\r\n"))
        .unwrap_or_default();
    let body =
        format!(r#"{{"type":"about:blank","title":"Refused","status":401,"code":"{code}"}}"#);
    answer(status, &extra, "application/problem+json", &body)
}

pub(crate) fn ok(body: &str, nonce: Option<&str>) -> String {
    let extra = nonce
        .map(|n| format!("DPoP-Nonce: {n}\r\n"))
        .unwrap_or_default();
    answer("200 OK", &extra, "application/json", body)
}
