//! Conventions the controller's and the cockpit's HTTP APIs share.
//!
//! - The token of a request: `Authorization: Bearer <token>`. The scheme name is
//!   case-insensitive (RFC 7235 §2.1), so `bearer`, `BEARER` and `Bearer` are the same; one or
//!   more spaces separate it from the token.
//! - Every error answer is JSON `{"error": "..."}`: [`json_errors`] rewrites the answers the
//!   web framework makes by itself (a body over the size limit, a query string or path that
//!   does not parse, a method the route does not have, a WebSocket route called without an
//!   upgrade) from plain text into that shape, keeping the status and the `Allow` header.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Longest framework error text carried into a JSON error, in bytes.
const ERROR_TEXT_BYTES_MAX: usize = 4096;

/// The token of an `Authorization: Bearer <token>` header, whatever the scheme's case.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What [`json_errors`] needs to word its messages.
#[derive(Debug, Clone, Copy)]
pub struct ErrorContext {
    /// The body limit, named in 413 answers.
    pub request_bytes_max: usize,
}

/// Middleware: answers with status 400 or more that are not JSON become
/// `{"error": "<their text>"}` with the same status.
pub async fn json_errors(State(ctx): State<ErrorContext>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_BYTES_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is larger than request_bytes_max ({} bytes)",
            ctx.request_bytes_max
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("{method} is not allowed on {path}; allowed: {allowed}")
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
        _ => text,
    };
    let mut answer = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(serde_json::json!({ "error": message }).to_string()),
    )
        .into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc "] {
            assert_eq!(bearer_token(&headers(v)), Some("abc"), "{v}");
        }
        for v in ["Basic abc", "Bearerabc", "Bearer ", "Bearer", "abc"] {
            assert_eq!(bearer_token(&headers(v)), None, "{v}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
