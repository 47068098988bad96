//! The client's side of the blindfold HTTP API: DPoP proofs, nonces and problem responses.
//!
//! Every request carries a `DPoP` proof for its exact method and URL (`htu` is the server URL
//! plus the path, never a query), signed by the device key; an authenticated request also sends
//! `Authorization: DPoP <token>` and its proof binds that token (`ath`). The last `DPoP-Nonce` the
//! server sent goes into the next proof, and a `401 use_dpop_nonce` refusal that brings a nonce
//! is retried once with it (RFC 9449 §8). Redirects are never followed: a proof is valid for one
//! URL only, and a token must not be sent anywhere else.
//!
//! This module must never log or put into an error a request body, a token or a proof.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode, Url, header};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::ClientError;

/// The header a server uses to hand out a DPoP nonce.
const DPOP_NONCE: &str = "DPoP-Nonce";
/// The problem code a server uses to demand a (fresh) nonce.
const USE_DPOP_NONCE: &str = "use_dpop_nonce";
/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Characters left as they are in a path segment: RFC 3986 unreserved ones. Everything else,
/// `/` included, is percent-encoded, so a name is always exactly one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Signs DPoP proofs for one device key.
pub(crate) trait ProofSigner {
    /// A compact JWS proof for `method` on `htu` at unix time `iat`, binding `access_token` (as
    /// `ath`) and `nonce` when given.
    fn proof(
        &self,
        method: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> String;
}

/// A server's base URL: `http` or `https`, no query or fragment, no trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerUrl(String);

impl ServerUrl {
    /// Checks and normalises a server URL given by the user.
    pub(crate) fn parse(given: &str) -> Result<ServerUrl, ClientError> {
        let bad = |why: &str| ClientError::Usage(format!("the server URL {given:?} {why}"));
        let url = Url::parse(given).map_err(|_| bad("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must start with http:// or https://"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(bad("must not have a query, fragment or user name"));
        }
        Ok(ServerUrl(url.as_str().trim_end_matches('/').to_string()))
    }

    /// The URL as text, without a trailing slash.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The path of one item: `/v1/me/items/{name}` with the name as one percent-encoded segment.
/// Names that a URL would read as a path step (empty, `.` or `..`) are refused.
pub(crate) fn item_path(name: &str) -> Result<String, ClientError> {
    if matches!(name, "" | "." | "..") {
        return Err(ClientError::Usage(format!(
            "{name:?} cannot be an item name"
        )));
    }
    Ok(format!(
        "/v1/me/items/{}",
        utf8_percent_encode(name, SEGMENT)
    ))
}

/// A request body. Bodies that may hold secrets are wiped when dropped.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// A JSON document.
    Json(Zeroizing<Vec<u8>>),
    /// Raw bytes (`application/octet-stream`).
    Bytes(Zeroizing<Vec<u8>>),
}

/// A successful (2xx) answer's whole body.
pub(crate) struct Reply {
    /// The body; wiped when dropped, since it may hold a token or an item value.
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// An RFC 9457 problem as blindfold sends it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Problem {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) title: String,
}

/// Decides whether a refusal is the server asking for a nonce that we can now supply: a 401
/// with code `use_dpop_nonce` that carried a `DPoP-Nonce`, on the first try only.
pub(crate) fn wants_nonce_retry(
    status: StatusCode,
    problem: &Problem,
    nonce_sent: bool,
    first_try: bool,
) -> bool {
    first_try && nonce_sent && status == StatusCode::UNAUTHORIZED && problem.code == USE_DPOP_NONCE
}

/// A connection to one blindfold server, signing with one device key.
pub(crate) struct Api<'k> {
    http: reqwest::Client,
    server: ServerUrl,
    signer: &'k dyn ProofSigner,
    clock: &'k dyn Fn() -> u64,
    nonce: Option<String>,
}

impl<'k> Api<'k> {
    /// A client for `server` whose proofs `signer` signs, with `iat` taken from `clock`.
    pub(crate) fn new(
        server: ServerUrl,
        signer: &'k dyn ProofSigner,
        clock: &'k dyn Fn() -> u64,
    ) -> Result<Api<'k>, ClientError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Unreachable {
                server: server.as_str().to_string(),
                reason: e.without_url().to_string(),
            })?;
        Ok(Api {
            http,
            server,
            signer,
            clock,
            nonce: None,
        })
    }

    /// The server this client talks to.
    pub(crate) fn server(&self) -> &ServerUrl {
        &self.server
    }

    /// Sends one request and returns its 2xx answer; any other answer becomes
    /// `ClientError::Server` with the problem's code and title.
    pub(crate) async fn call(
        &mut self,
        method: Method,
        path: &str,
        access_token: Option<&str>,
        body: &Body,
    ) -> Result<Reply, ClientError> {
        let url = self.url(path)?;
        let htu = url.as_str().to_string();

        let mut first_try = true;
        loop {
            let response = self.send(&method, &url, &htu, access_token, body).await?;
            let status = response.status();
            let nonce_sent = self.remember_nonce(response.headers());
            let bytes = self.read_body(response).await?;
            if status.is_success() {
                return Ok(Reply { body: bytes });
            }

            let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
            if wants_nonce_retry(status, &problem, nonce_sent, first_try) {
                first_try = false;
                continue;
            }
            return Err(refusal(status, problem));
        }
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        Url::parse(&format!("{}{path}", self.server.as_str()))
            .map_err(|_| ClientError::Usage(format!("cannot build a URL for {path:?}")))
    }

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        htu: &str,
        access_token: Option<&str>,
        body: &Body,
    ) -> Result<reqwest::Response, ClientError> {
        let iat = (self.clock)();
        let proof = self.signer.proof(
            method.as_str(),
            htu,
            access_token,
            self.nonce.as_deref(),
            iat,
        );
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header("DPoP", proof);
        if let Some(token) = access_token {
            request = request.header(header::AUTHORIZATION, format!("DPoP {token}"));
        }

        // LIMITATION: reqwest takes its own copy of the body and does not wipe it, so a password
        // in a JSON body outlives this call in freed memory. The way out is a body type that
        // zeroizes on drop, which reqwest does not offer today.
        request = match body {
            Body::Empty => request,
            Body::Json(bytes) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(bytes.to_vec()),
            Body::Bytes(bytes) => request
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.to_vec()),
        };
        request.send().await.map_err(|e| self.unreachable(e))
    }

    /// Keeps the `DPoP-Nonce` of a response, if any, for the next proof; says whether there was
    /// one.
    fn remember_nonce(&mut self, headers: &header::HeaderMap) -> bool {
        let nonce = headers.get(DPOP_NONCE).and_then(|v| v.to_str().ok());
        match nonce {
            Some(nonce) if !nonce.is_empty() => {
                self.nonce = Some(nonce.to_string());
                true
            }
            _ => false,
        }
    }

    async fn read_body(
        &self,
        response: reqwest::Response,
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        Ok(Zeroizing::new(bytes.to_vec()))
    }

    fn unreachable(&self, error: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            server: self.server.as_str().to_string(),
            reason: error.without_url().to_string(),
        }
    }
}

fn refusal(status: StatusCode, problem: Problem) -> ClientError {
    let code = if problem.code.is_empty() {
        "no_code".to_string()
    } else {
        problem.code
    };
    let title = if problem.title.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        problem.title
    };
    ClientError::Server {
        status: status.as_u16(),
        code,
        title,
    }
}

/// A token answer: sign-up, login, refresh, password change and recovery all give one.
pub(crate) struct TokenResponse {
    pub(crate) access_token: Zeroizing<String>,
    pub(crate) expires_in: u64,
    pub(crate) session_expires_in: u64,
    /// Present after sign-up and recovery only; shown to the user once.
    pub(crate) recovery_key: Option<Zeroizing<String>>,
}

#[derive(Deserialize)]
struct TokenResponseWire {
    access_token: String,
    token_type: String,
    expires_in: u64,
    session_expires_in: u64,
    #[serde(default)]
    recovery_key: Option<String>,
}

impl TokenResponse {
    /// Reads a token answer; anything but a DPoP token is refused.
    pub(crate) fn parse(body: &[u8]) -> Result<TokenResponse, ClientError> {
        let wire: TokenResponseWire = serde_json::from_slice(body)
            .map_err(|_| ClientError::Protocol("the token answer is not readable".into()))?;
        // Moved, not copied, into wiping buffers.
        let access_token = Zeroizing::new(wire.access_token);
        let recovery_key = wire.recovery_key.map(Zeroizing::new);
        if !wire.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(ClientError::Protocol(
                "the token is not a DPoP token".into(),
            ));
        }
        Ok(TokenResponse {
            access_token,
            expires_in: wire.expires_in,
            session_expires_in: wire.session_expires_in,
            recovery_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{RecordingSigner, answer, fake_server, ok, problem};
    use super::*;

    const CLOCK: &dyn Fn() -> u64 = &|| 1_700_000_000;

    #[tokio::test]
    async fn a_use_dpop_nonce_refusal_is_retried_once_with_the_nonce_it_brought() {
        let (server, seen) = fake_server(vec![
            problem("401 Unauthorized", "use_dpop_nonce", Some("n-1")),
            ok("{}", None),
        ])
        .await;
        let signer = RecordingSigner::default();
        let mut api = Api::new(server.clone(), &signer, CLOCK).unwrap();

        let body = Body::Json(Zeroizing::new(b"{}".to_vec()));
        let reply = api
            .call(Method::POST, "/v1/sessions", None, &body)
            .await
            .unwrap();
        assert_eq!(*reply.body, b"{}");

        let signed = signer.0.lock().unwrap().clone();
        let htu = format!("{}/v1/sessions", server.as_str());
        assert_eq!(signed.len(), 2);
        assert_eq!(
            (signed[0].method.as_str(), signed[0].htu.as_str()),
            ("POST", htu.as_str())
        );
        assert_eq!(signed[0].nonce, None);
        assert_eq!(signed[1].nonce.as_deref(), Some("n-1"));
        assert_eq!(signed[1].iat, 1_700_000_000);

        let seen = seen.lock().unwrap();
        assert_eq!(seen[1].header("dpop"), Some("proof-2"));
        assert_eq!(seen[1].body, b"{}");
        assert_eq!(seen[1].header("content-type"), Some("application/json"));
    }

    #[tokio::test]
    async fn a_second_nonce_refusal_is_not_retried_again() {
        let (server, seen) = fake_server(vec![
            problem("401 Unauthorized", "use_dpop_nonce", Some("n-1")),
            problem("401 Unauthorized", "use_dpop_nonce", Some("n-2")),
        ])
        .await;
        let signer = RecordingSigner::default();
        let mut api = Api::new(server, &signer, CLOCK).unwrap();

        let refused = api
            .call(Method::GET, "/v1/me", Some("tok"), &Body::Empty)
            .await;
        assert!(
            matches!(refused, Err(ClientError::Server { status: 401, ref code, .. })
                if code == "use_dpop_nonce")
        );
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_nonce_refusal_without_a_nonce_is_not_retried() {
        let (server, seen) =
            fake_server(vec![problem("401 Unauthorized", "use_dpop_nonce", None)]).await;
        let signer = RecordingSigner::default();
        let mut api = Api::new(server, &signer, CLOCK).unwrap();

        assert!(
            api.call(Method::GET, "/v1/me", Some("tok"), &Body::Empty)
                .await
                .is_err()
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_last_nonce_seen_on_any_answer_goes_into_the_next_proof() {
        let (server, _) = fake_server(vec![ok("{}", Some("n-7")), ok("{}", None)]).await;
        let signer = RecordingSigner::default();
        let mut api = Api::new(server, &signer, CLOCK).unwrap();

        api.call(Method::GET, "/v1/me", Some("tok"), &Body::Empty)
            .await
            .unwrap();
        api.call(Method::GET, "/v1/me", Some("tok"), &Body::Empty)
            .await
            .unwrap();
        let signed = signer.0.lock().unwrap().clone();
        assert_eq!(signed[0].nonce, None);
        assert_eq!(signed[1].nonce.as_deref(), Some("n-7"));
    }

    #[tokio::test]
    async fn an_authenticated_request_sends_the_token_and_binds_its_proof_to_it() {
        let (server, seen) =
            fake_server(vec![answer("204 No Content", "", "text/plain", "")]).await;
        let signer = RecordingSigner::default();
        let mut api = Api::new(server.clone(), &signer, CLOCK).unwrap();

        let path = item_path("a b/c").unwrap();
        let body = Body::Bytes(Zeroizing::new(vec![0, 255]));
        api.call(Method::PUT, &path, Some("v1.tok"), &body)
            .await
            .unwrap();

        let signed = signer.0.lock().unwrap().clone();
        assert_eq!(signed[0].token.as_deref(), Some("v1.tok"));
        assert_eq!(
            signed[0].htu,
            format!("{}/v1/me/items/a%20b%2Fc", server.as_str())
        );

        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].line, "PUT /v1/me/items/a%20b%2Fc HTTP/1.1");
        assert_eq!(seen[0].header("authorization"), Some("DPoP v1.tok"));
        assert_eq!(
            seen[0].header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(seen[0].body, vec![0, 255]);
    }

    #[tokio::test]
    async fn a_problem_answer_becomes_a_server_error_with_its_code_and_title() {
        let (server, _) = fake_server(vec![problem("404 Not Found", "item_not_found", None)]).await;
        let signer = RecordingSigner::default();
        let mut api = Api::new(server, &signer, CLOCK).unwrap();

        let refused = api
            .call(Method::GET, "/v1/me/items/x", Some("t"), &Body::Empty)
            .await;
        let message = refused.err().unwrap().to_string();
        assert_eq!(message, "server refused (404 item_not_found): Refused");
    }

    #[tokio::test]
    async fn a_server_that_is_not_listening_is_reported_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let signer = RecordingSigner::default();
        let server = ServerUrl::parse(&format!("http://{address}")).unwrap();
        let mut api = Api::new(server, &signer, CLOCK).unwrap();
        let failed = api.call(Method::GET, "/v1/me", None, &Body::Empty).await;
        assert!(matches!(failed, Err(ClientError::Unreachable { .. })));
    }

    #[test]
    fn only_the_first_nonce_refusal_with_a_nonce_is_retried() {
        let nonce = Problem {
            code: USE_DPOP_NONCE.into(),
            title: String::new(),
        };
        let other = Problem {
            code: "invalid_token".into(),
            title: String::new(),
        };
        let unauthorized = StatusCode::UNAUTHORIZED;
        assert!(wants_nonce_retry(unauthorized, &nonce, true, true));
        assert!(!wants_nonce_retry(unauthorized, &nonce, true, false));
        assert!(!wants_nonce_retry(unauthorized, &nonce, false, true));
        assert!(!wants_nonce_retry(unauthorized, &other, true, true));
        assert!(!wants_nonce_retry(
            StatusCode::BAD_REQUEST,
            &nonce,
            true,
            true
        ));
    }

    #[test]
    fn item_names_become_exactly_one_path_segment() {
        assert_eq!(item_path("notes.txt").unwrap(), "/v1/me/items/notes.txt");
        assert_eq!(item_path("a/b?c#d").unwrap(), "/v1/me/items/a%2Fb%3Fc%23d");
        assert_eq!(item_path("é").unwrap(), "/v1/me/items/%C3%A9");
        for bad in ["", ".", ".."] {
            assert!(item_path(bad).is_err());
        }
    }

    #[test]
    fn server_urls_are_normalised_and_odd_ones_refused() {
        assert_eq!(
            ServerUrl::parse("http://127.0.0.1:8080/").unwrap().as_str(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            ServerUrl::parse("https://a.example/base/")
                .unwrap()
                .as_str(),
            "https://a.example/base"
        );
        for bad in ["ftp://a", "127.0.0.1:8080", "http://a/?q=1", "http://u@a/"] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_answer_must_be_a_dpop_token() {
        let good = br#"{"access_token":"v1.x","token_type":"DPoP","expires_in":900,
            "session_expires_in":43200,"recovery_key":"AB-CD"}"#;
        let parsed = TokenResponse::parse(good).unwrap();
        assert_eq!(parsed.access_token.as_str(), "v1.x");
        assert_eq!(
            parsed.recovery_key.as_deref().map(String::as_str),
            Some("AB-CD")
        );
        let bearer = br#"{"access_token":"v1.x","token_type":"Bearer","expires_in":1,
            "session_expires_in":1}"#;
        assert!(matches!(
            TokenResponse::parse(bearer),
            Err(ClientError::Protocol(_))
        ));
    }
}
