//! The client of the cockpit API (`/api/v1`, JSON, bearer token): requests with errors
//! turned into exit codes, and WebSockets over `wss://` (or `ws://` for a plain-HTTP API on
//! this machine).
//!
//! Error answers are `{"error": "...", "details": [...]?}`; the CLI prints the server's
//! message (and details), and exits 3 for 401, 403 and 502–504 (the cockpit cannot reach the
//! controller, or the controller is stopping), else 1.

use crate::exit::Failure;
use crate::profile::Settings;
use bytes::Bytes;
use futures_util::StreamExt;
use ordo_net::client::{ClientError as E, HttpsClient, HttpsClientOptions};
use ordo_net::tls::CaBundle;
use serde_json::Value as Json;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{Method, StatusCode, Uri};

/// Where the system's CA certificates usually are, for an https API without `--ca`.
const SYSTEM_CA_FILES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];
/// Largest WebSocket message accepted: the largest event the controller streams by default.
pub const WS_MESSAGE_BYTES_MAX: usize = ordo_api::limits::EVENT_BYTES_MAX_DEFAULT;
/// Largest answer accepted: a long poll of events is at most one event over its size bound.
pub const BODY_BYTES_MAX: usize = ordo_api::limits::EVENT_BYTES_MAX_DEFAULT + (1 << 20);
/// Time for TCP, TLS and WebSocket handshakes together.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Time for one request, response body included (long polls ask for less).
pub const REQUEST_TIMEOUT_MS: u64 = 60_000;

/// A connected client.
pub struct Api {
    base: String,
    http: HttpsClient,
    tls: Arc<rustls::ClientConfig>,
    token: Option<String>,
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The CA bundle to trust: `--ca`, else the system's.
fn ca_bundle(ca: Option<&std::path::Path>) -> Result<CaBundle, Failure> {
    if let Some(path) = ca {
        return CaBundle::from_pem_file(path)
            .map_err(|e| Failure::usage(format!("CA certificate {}: {e}", path.display())));
    }
    let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let system = env
        .into_iter()
        .chain(SYSTEM_CA_FILES.iter().map(Into::into));
    for path in system {
        if path.is_file()
            && let Ok(bundle) = CaBundle::from_pem_file(&path)
        {
            return Ok(bundle);
        }
    }
    Ok(CaBundle { certs: Vec::new() })
}

impl Api {
    /// A client for the API of `settings`; checks the URL and reads the CA.
    pub fn new(settings: &Settings) -> Result<Api, Failure> {
        let mut base = settings.api.trim().trim_end_matches('/').to_owned();
        if let Some(b) = base.strip_suffix("/api/v1") {
            base = b.to_owned();
        }
        let bad = |why: &str| Failure::usage(format!("API URL {:?}: {why}", settings.api));
        let uri: Uri = base.parse().map_err(|_| bad("not a URL"))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let plain = match uri.scheme_str() {
            Some("https") => false,
            Some("http") if is_loopback(host) => true,
            Some("http") => {
                return Err(bad(
                    "plain http:// is only for an API on this machine (127.0.0.1, localhost); use https://",
                ));
            }
            _ => return Err(bad("use https://host:port")),
        };
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad("give only scheme, host and port (and /api/v1)"));
        }
        let bundle = if plain {
            CaBundle { certs: Vec::new() }
        } else {
            ca_bundle(settings.ca.as_deref())?
        };
        let tls = ordo_net::tls::client_config(&bundle, None)
            .map_err(|e| Failure::usage(format!("TLS configuration: {e}")))?;
        let options = HttpsClientOptions {
            connect_timeout_ms: CONNECT_TIMEOUT_MS,
            request_timeout_ms: REQUEST_TIMEOUT_MS,
            body_bytes_max: BODY_BYTES_MAX,
            allow_plain_http: plain,
        };
        let mut http = HttpsClient::new(tls.clone(), options);
        if let Some(t) = &settings.token {
            http = http
                .with_bearer(t)
                .map_err(|e| Failure::usage(format!("token: {e}")))?;
        }
        Ok(Api {
            base,
            http,
            tls,
            token: settings.token.clone(),
        })
    }

    /// The API's base URL (scheme, host and port).
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends a request and returns the 2xx body, or the failure with its exit code.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Bytes, Failure> {
        let url = self.url(path);
        let body = body.map(|b| (Bytes::from(b.to_string()), "application/json"));
        let response = self
            .http
            .request(method.clone(), &url, body)
            .await
            .map_err(|e| transport_failure(&self.base, e))?;
        if response.status.is_success() {
            return Ok(response.body);
        }
        Err(status_failure(response.status, &response.body))
    }

    pub async fn get(&self, path: &str) -> Result<Json, Failure> {
        let body = self.call(Method::GET, path, None).await?;
        parse_json(&body, path)
    }

    /// `GET path` answered with any status: the status and the JSON body (an error answer's
    /// `{"error"}` included). Only a network failure or a body that is not JSON fails.
    pub async fn get_any(&self, path: &str) -> Result<(StatusCode, Json), Failure> {
        let url = self.url(path);
        let response = self
            .http
            .request(Method::GET, &url, None)
            .await
            .map_err(|e| transport_failure(&self.base, e))?;
        if response.status == StatusCode::UNAUTHORIZED {
            return Err(status_failure(response.status, &response.body));
        }
        let json = parse_json(&response.body, path)
            .map_err(|_| status_failure(response.status, &response.body))?;
        Ok((response.status, json))
    }

    /// `GET /health`, also when it answers 503 (a cockpit whose view is stuck says why).
    pub async fn health(&self) -> Result<Json, Failure> {
        let (status, health) = self.get_any("/health").await?;
        if status.is_success() || health.get("status").is_some() {
            Ok(health)
        } else {
            Err(status_failure(status, health.to_string().as_bytes()))
        }
    }

    pub async fn get_text(&self, path: &str) -> Result<String, Failure> {
        let body = self.call(Method::GET, path, None).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn post(&self, path: &str, body: &Json) -> Result<Json, Failure> {
        let body = self.call(Method::POST, path, Some(body)).await?;
        parse_json(&body, path)
    }

    /// `POST path` answered with any status but 401: the status and the JSON body, so a
    /// caller can read an error answer's `details`. A network failure, or an answer that is
    /// not JSON, fails as [`Api::post`] does.
    pub async fn post_any(&self, path: &str, body: &Json) -> Result<(StatusCode, Json), Failure> {
        let url = self.url(path);
        let body = Some((Bytes::from(body.to_string()), "application/json"));
        let response = self
            .http
            .request(Method::POST, &url, body)
            .await
            .map_err(|e| transport_failure(&self.base, e))?;
        if response.status == StatusCode::UNAUTHORIZED {
            return Err(status_failure(response.status, &response.body));
        }
        let json = parse_json(&response.body, path)
            .map_err(|_| status_failure(response.status, &response.body))?;
        Ok((response.status, json))
    }

    pub async fn delete(&self, path: &str) -> Result<Json, Failure> {
        let body = self.call(Method::DELETE, path, None).await?;
        parse_json(&body, path)
    }

    /// Opens a WebSocket at `path` (under `/api/v1`).
    pub async fn websocket(&self, path: &str) -> Result<Ws, String> {
        let url = self.url(path);
        let ws_url = if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            return Err(format!("{url} is not an http(s) URL"));
        };
        let mut request = ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| e.to_string())?;
        if let Some(t) = &self.token {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| "the token is not a valid header value".to_owned())?;
            request.headers_mut().insert("authorization", value);
        }
        if ws_url.starts_with("wss://") {
            let ws = ordo_net::client::connect_ws_request(
                request,
                self.tls.clone(),
                WS_MESSAGE_BYTES_MAX,
                CONNECT_TIMEOUT_MS,
            )
            .await
            .map_err(|e| e.to_string())?;
            return Ok(Ws::Tls(Box::new(ws)));
        }
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or("127.0.0.1").to_owned();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
            let (ws, _) = tokio_tungstenite::client_async_with_config(
                request,
                tcp,
                Some(ordo_net::frame::ws_config(WS_MESSAGE_BYTES_MAX)),
            )
            .await
            .map_err(|e| format!("WebSocket handshake with {ws_url}: {e}"))?;
            Ok::<_, String>(ws)
        };
        let ws = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect)
            .await
            .map_err(|_| format!("connecting to {ws_url} timed out"))??;
        Ok(Ws::Plain(Box::new(ws)))
    }
}

/// A WebSocket to the API.
pub enum Ws {
    Tls(Box<ordo_net::client::WsStream>),
    Plain(Box<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>),
}

/// What came over a WebSocket.
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    /// The server closed the socket.
    Closed,
}

impl Ws {
    /// The next text or binary message; pings are answered by the library.
    pub async fn next(&mut self) -> Result<Incoming, String> {
        loop {
            let next = match self {
                Ws::Tls(ws) => ws.next().await,
                Ws::Plain(ws) => ws.next().await,
            };
            return match next {
                None | Some(Ok(Message::Close(_))) => Ok(Incoming::Closed),
                Some(Ok(Message::Text(t))) => Ok(Incoming::Text(t.to_string())),
                Some(Ok(Message::Binary(b))) => Ok(Incoming::Binary(b.to_vec())),
                Some(Ok(_)) => continue,
                Some(Err(e)) => Err(e.to_string()),
            };
        }
    }
}

fn parse_json(body: &[u8], path: &str) -> Result<Json, Failure> {
    if body.is_empty() {
        return Ok(Json::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| Failure::failed(format!("the answer to {path} is not JSON: {e}")))
}

/// A network, TLS or URL error.
fn transport_failure(base: &str, e: E) -> Failure {
    match e {
        E::Url { .. } | E::BadToken => Failure::usage(e.to_string()),
        E::BodyTooLarge { .. } | E::Json { .. } | E::Encode(_) | E::Status { .. } => {
            Failure::failed(e.to_string())
        }
        E::Connect { .. }
        | E::ConnectTimeout { .. }
        | E::WsHandshake { .. }
        | E::Timeout { .. }
        | E::Request { .. } => Failure::unreachable(format!("cannot reach the API at {base}: {e}")),
    }
}

/// An error answer: the server's message (and details); 401, 403 and 502–504 exit 3,
/// others 1.
pub fn status_failure(status: StatusCode, body: &[u8]) -> Failure {
    let parsed: Option<Json> = serde_json::from_slice(body).ok();
    let mut message = match parsed
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Json::as_str)
    {
        Some(m) => m.to_owned(),
        None => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(1024).collect();
            if text.is_empty() {
                format!("the API answered {status}")
            } else {
                format!("the API answered {status}: {text}")
            }
        }
    };
    if let Some(details) = parsed
        .as_ref()
        .and_then(|j| j.get("details"))
        .and_then(Json::as_array)
    {
        for d in details {
            message.push('\n');
            match d.as_str() {
                Some(s) => message.push_str(s),
                None => message.push_str(&d.to_string()),
            }
        }
    }
    match status {
        StatusCode::UNAUTHORIZED => Failure::unreachable(format!(
            "{message} (give a token with --token, ORDO_TOKEN or the profile)"
        )),
        StatusCode::FORBIDDEN
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Failure::unreachable(message),
        _ => Failure::failed(message),
    }
}

/// Percent-encodes a path segment or query value (everything but `A-Z a-z 0-9 - _ . ~`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&...` of the pairs whose value is set, or "".
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_queries_are_encoded() {
        assert_eq!(encode("a|b#c d"), "a%7Cb%23c%20d");
        assert_eq!(
            query(&[("state", Some("failed".into())), ("x", None)]),
            "?state=failed"
        );
        assert_eq!(query(&[("x", None)]), "");
    }

    #[test]
    fn urls_are_checked() {
        let s = |api: &str| Settings {
            api: api.into(),
            token: None,
            ca: None,
        };
        assert!(Api::new(&s("http://127.0.0.1:8080")).is_ok());
        assert!(Api::new(&s("http://localhost:8080/api/v1/")).is_ok());
        let e = Api::new(&s("http://example.org:8080")).err().unwrap();
        assert!(e.message.contains("only for an API on this machine"));
        assert!(Api::new(&s("ftp://h")).is_err());
        assert!(Api::new(&s("https://h:1/x")).is_err());
    }

    #[test]
    fn error_answers_give_the_server_message_and_exit_code() {
        let f = status_failure(
            StatusCode::NOT_FOUND,
            br#"{"error":"order x does not exist"}"#,
        );
        assert_eq!(f.message, "order x does not exist");
        assert_eq!(f.exit, crate::exit::Exit::Failed);
        let f = status_failure(
            StatusCode::BAD_REQUEST,
            br#"{"error":"2 problems","details":["a:1:1: error: x","b"]}"#,
        );
        assert_eq!(f.message, "2 problems\na:1:1: error: x\nb");
        let f = status_failure(StatusCode::UNAUTHORIZED, b"");
        assert_eq!(f.exit, crate::exit::Exit::Unreachable);
        let f = status_failure(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(f.exit, crate::exit::Exit::Unreachable);
        assert!(f.message.contains("502"), "{}", f.message);
        let f = status_failure(StatusCode::CONFLICT, br#"{"error":"refused"}"#);
        assert_eq!(
            (f.exit, f.message.as_str()),
            (crate::exit::Exit::Failed, "refused")
        );
    }
}
