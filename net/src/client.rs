//! Clients: a WebSocket over TLS ([`connect_ws`]) and a small HTTPS JSON client
//! ([`HttpsClient`], hyper-util's pooled client over tokio-rustls).
//!
//! Both check the server's certificate against the configured CA and the host of the URL
//! against its DNS or IP subject alternative names. Every operation is bounded in time, and
//! response bodies in size.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request as WsRequest;

use crate::frame::ws_config;

/// A client WebSocket over TLS.
pub type WsStream = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Longest part of an error response body quoted in [`ClientError::Status`].
pub const ERROR_BODY_CHARS_MAX: usize = 1024;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("connecting to {target} timed out after {timeout_ms} ms")]
    ConnectTimeout { target: String, timeout_ms: u64 },
    #[error("connecting to {target} failed: {source}")]
    Connect { target: String, source: io::Error },
    #[error("WebSocket handshake with {target} failed: {reason}")]
    WsHandshake { target: String, reason: String },
    #[error("{method} {url} timed out after {timeout_ms} ms")]
    Timeout {
        method: Method,
        url: String,
        timeout_ms: u64,
    },
    #[error("{method} {url} failed: {reason}")]
    Request {
        method: Method,
        url: String,
        reason: String,
    },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("the response body of {method} {url} exceeds {body_bytes_max} bytes")]
    BodyTooLarge {
        method: Method,
        url: String,
        body_bytes_max: usize,
    },
    #[error("the response of {method} {url} is not the expected JSON: {source}")]
    Json {
        method: Method,
        url: String,
        source: serde_json::Error,
    },
    #[error("the bearer token contains characters not allowed in an HTTP header")]
    BadToken,
    #[error("encoding the request body as JSON failed: {0}")]
    Encode(serde_json::Error),
}

/// Opens a WebSocket to `url` (`wss://host:port/path`) over TLS with `tls`, with message and
/// frame limits of `frame_bytes_max`. TCP connect, TLS handshake and WebSocket handshake
/// together must finish within `connect_timeout_ms`.
pub async fn connect_ws(
    url: &str,
    tls: Arc<ClientConfig>,
    frame_bytes_max: usize,
    connect_timeout_ms: u64,
) -> Result<WsStream, ClientError> {
    let request = url.into_client_request().map_err(|e| ClientError::Url {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    connect_ws_request(request, tls, frame_bytes_max, connect_timeout_ms).await
}

/// Like [`connect_ws`], for a prepared request (e.g. with an `Authorization` header); build it
/// with `IntoClientRequest::into_client_request` on the URL.
pub async fn connect_ws_request(
    request: WsRequest,
    tls: Arc<ClientConfig>,
    frame_bytes_max: usize,
    connect_timeout_ms: u64,
) -> Result<WsStream, ClientError> {
    let uri = request.uri().clone();
    let target = uri.to_string();
    let (host, port) = host_and_port(&uri, "wss").map_err(|reason| ClientError::Url {
        url: target.clone(),
        reason,
    })?;
    let server_name = ServerName::try_from(host.clone()).map_err(|e| ClientError::Url {
        url: target.clone(),
        reason: format!("host is not a valid server name: {e}"),
    })?;
    let connect = async {
        let connect_error = |source| ClientError::Connect {
            target: target.clone(),
            source,
        };
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(connect_error)?;
        tcp.set_nodelay(true).map_err(connect_error)?;
        let stream = TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(connect_error)?;
        let (ws, _response) = tokio_tungstenite::client_async_with_config(
            request,
            stream,
            Some(ws_config(frame_bytes_max)),
        )
        .await
        .map_err(|e| ClientError::WsHandshake {
            target: target.clone(),
            reason: e.to_string(),
        })?;
        Ok(ws)
    };
    tokio::time::timeout(Duration::from_millis(connect_timeout_ms), connect)
        .await
        .map_err(|_| ClientError::ConnectTimeout {
            target: target.clone(),
            timeout_ms: connect_timeout_ms,
        })?
}

/// Host (without IPv6 brackets) and port of a URL whose scheme must be `scheme`.
fn host_and_port(uri: &Uri, scheme: &str) -> Result<(String, u16), String> {
    if uri.scheme_str() != Some(scheme) {
        return Err(format!("the scheme must be {scheme}"));
    }
    let host = uri.host().filter(|h| !h.is_empty()).ok_or("no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

/// Limits of an [`HttpsClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpsClientOptions {
    /// Time for the TCP connection (the TLS handshake counts towards the request timeout).
    pub connect_timeout_ms: u64,
    /// Time for a whole request: connection, sending, and reading the full response body.
    pub request_timeout_ms: u64,
    /// Largest response body accepted.
    pub body_bytes_max: usize,
    /// Whether `http://` URLs are allowed (development only).
    pub allow_plain_http: bool,
}

impl Default for HttpsClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            body_bytes_max: 16 * 1024 * 1024,
            allow_plain_http: false,
        }
    }
}

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A pooled HTTPS client for JSON APIs, optionally sending a bearer token.
#[derive(Clone)]
pub struct HttpsClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    bearer: Option<HeaderValue>,
    options: HttpsClientOptions,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("bearer", &self.bearer.as_ref().map(|_| "[elided]"))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// A client that trusts what `tls` trusts.
    pub fn new(tls: Arc<ClientConfig>, options: HttpsClientOptions) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_millis(options.connect_timeout_ms)));
        // The connector sets ALPN itself (and insists on an empty list).
        let mut tls = (*tls).clone();
        tls.alpn_protocols.clear();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner,
            bearer: None,
            options,
        }
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_bearer(self, token: &str) -> Result<Self, ClientError> {
        self.with_authorization(&format!("Bearer {token}"))
    }

    /// Sends `Authorization: <value>` with every request, as given.
    pub fn with_authorization(mut self, value: &str) -> Result<Self, ClientError> {
        let mut value = HeaderValue::try_from(value).map_err(|_| ClientError::BadToken)?;
        value.set_sensitive(true);
        self.bearer = Some(value);
        Ok(self)
    }

    pub fn options(&self) -> &HttpsClientOptions {
        &self.options
    }

    /// `GET url`, expecting a 2xx JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        let response = self.request(Method::GET, url, None).await?;
        json_answer(Method::GET, url, response)
    }

    /// `POST url` with a JSON body, expecting a 2xx JSON answer (an empty body reads as `null`).
    pub async fn post_json<B, T>(&self, url: &str, body: &B) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = serde_json::to_vec(body).map_err(ClientError::Encode)?;
        let response = self
            .request(
                Method::POST,
                url,
                Some((Bytes::from(body), "application/json")),
            )
            .await?;
        json_answer(Method::POST, url, response)
    }

    /// Sends one request with an optional `(body, content type)` and reads the whole response,
    /// whatever its status.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<HttpResponse, ClientError> {
        let uri: Uri = url.parse().map_err(|e| ClientError::Url {
            url: url.to_owned(),
            reason: format!("{e}"),
        })?;
        let scheme_ok = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => self.options.allow_plain_http,
            _ => false,
        };
        if !scheme_ok || uri.host().is_none() {
            return Err(ClientError::Url {
                url: url.to_owned(),
                reason: if self.options.allow_plain_http {
                    "an http:// or https:// URL with a host is needed".to_owned()
                } else {
                    "an https:// URL with a host is needed".to_owned()
                },
            });
        }
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(ACCEPT, "application/json");
        if let Some(bearer) = &self.bearer {
            builder = builder.header(AUTHORIZATION, bearer.clone());
        }
        let request_body = match body {
            Some((bytes, content_type)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder
            .body(request_body)
            .map_err(|e| ClientError::Request {
                method: method.clone(),
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let body_bytes_max = self.options.body_bytes_max;
        let exchange = async {
            let failed = |reason: String| ClientError::Request {
                method: method.clone(),
                url: url.to_owned(),
                reason,
            };
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| failed(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let too_large = || ClientError::BodyTooLarge {
                method: method.clone(),
                url: url.to_owned(),
                body_bytes_max,
            };
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > body_bytes_max as u64) {
                return Err(too_large());
            }
            let collected = Limited::new(body, body_bytes_max)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<LengthLimitError>().is_some() {
                        too_large()
                    } else {
                        failed(format!("reading the response body: {e}"))
                    }
                })?;
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body: collected.to_bytes(),
            })
        };
        let timeout_ms = self.options.request_timeout_ms;
        tokio::time::timeout(Duration::from_millis(timeout_ms), exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                method: method.clone(),
                url: url.to_owned(),
                timeout_ms,
            })?
    }
}

fn json_answer<T: DeserializeOwned>(
    method: Method,
    url: &str,
    response: HttpResponse,
) -> Result<T, ClientError> {
    if !response.status.is_success() {
        let text = String::from_utf8_lossy(&response.body);
        let body: String = text.chars().take(ERROR_BODY_CHARS_MAX).collect();
        return Err(ClientError::Status {
            method,
            url: url.to_owned(),
            status: response.status,
            body,
        });
    }
    let bytes: &[u8] = if response.body.is_empty() {
        b"null"
    } else {
        &response.body
    };
    serde_json::from_slice(bytes).map_err(|source| ClientError::Json {
        method,
        url: url.to_owned(),
        source,
    })
}

/// An error with its sources, so that e.g. "certificate not valid for name" is not hidden
/// behind "client error (Connect)".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut depth = 0;
    while let Some(inner) = source {
        if depth >= 8 {
            break;
        }
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
        depth += 1;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let uri: Uri = "wss://[::1]:9443/agent".parse().unwrap();
        assert_eq!(
            host_and_port(&uri, "wss").unwrap(),
            ("::1".to_owned(), 9443)
        );
        let uri: Uri = "wss://localhost/agent".parse().unwrap();
        assert_eq!(
            host_and_port(&uri, "wss").unwrap(),
            ("localhost".to_owned(), 443)
        );
        let uri: Uri = "ws://localhost/agent".parse().unwrap();
        assert!(host_and_port(&uri, "wss").is_err());
    }

    #[test]
    fn error_bodies_are_truncated() {
        let response = HttpResponse {
            status: StatusCode::BAD_REQUEST,
            headers: HeaderMap::new(),
            body: Bytes::from("x".repeat(5000)),
        };
        match json_answer::<()>(Method::GET, "https://h/x", response) {
            Err(ClientError::Status { status, body, .. }) => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert_eq!(body.len(), ERROR_BODY_CHARS_MAX);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
