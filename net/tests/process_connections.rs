//! Connection time limits and the share of the connection limit kept for authenticated
//! clients, through real sockets on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Extension;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use ordo_net::certs::TestPki;
use ordo_net::client::{HttpsClient, HttpsClientOptions};
use ordo_net::serve::{ConnectionAuth, ServeLimits};
use ordo_net::tls::{ClientAuth, client_config, server_config};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const TOKEN: &str = "s3cret";

/// `/health` for anyone; `/private` with `Authorization: Bearer s3cret` (which marks the
/// connection authenticated), 401 otherwise.
fn app() -> Router {
    Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route("/private", axum::routing::get(private))
}

async fn private(
    Extension(connection): Extension<ConnectionAuth>,
    headers: HeaderMap,
) -> StatusCode {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer == Some(&format!("Bearer {TOKEN}")) {
        connection.authenticated();
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test finished within its time bound");
}

/// A TLS server for `app()` whose client certificates, when sent, must lead to the CA.
async fn tls_server(pki: &TestPki, limits: ServeLimits) -> Server {
    let server_pem = pem(pki, "ctl-main", "ordo:controller:main");
    let tls = server_config(
        &material(&server_pem),
        ClientAuth::Optional(pki.ca_bundle().unwrap()),
    )
    .unwrap();
    start_tls(tls, app(), limits).await
}

async fn tls_connect(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// Reads until the server closes the stream (end of file or an error); returns what it read.
async fn read_to_close<S: AsyncRead + Unpin>(mut stream: S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded in count: a closed stream ends it; a server that keeps sending would not.
    for _ in 0..10_000 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    panic!("the server kept sending");
}

/// An HTTP/1.1 connection of its own (no pool), to see which connection answers.
async fn http1<S>(stream: S) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    send
}

async fn get_status(
    send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
    token: Option<&str>,
) -> StatusCode {
    let mut request = axum::http::Request::get(path).header("host", "localhost");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send.ready().await.expect("the connection is still open");
    let response = send
        .send_request(request.body(Empty::new()).unwrap())
        .await
        .expect("an answer on the same connection");
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

fn client(tls: Arc<rustls::ClientConfig>) -> HttpsClient {
    HttpsClient::new(
        tls,
        HttpsClientOptions {
            connect_timeout_ms: 20_000,
            request_timeout_ms: 20_000,
            body_bytes_max: 64 * 1024,
            allow_plain_http: true,
        },
    )
}

#[tokio::test]
async fn process_silent_connections_are_closed_after_the_timeouts() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let limits = ServeLimits {
            handshake_timeout_ms: 400,
            idle_timeout_ms: 400,
            connections_max: 64,
            unauthenticated_connections_max: 64,
        };
        let tls_server = tls_server(&pki, limits).await;
        let plain_server = start_plain(app(), limits).await;
        let tls = client_config(&pki.ca_bundle().unwrap(), None).unwrap();

        let mut closed = JoinSet::new();
        for addr in [tls_server.addr, plain_server.addr] {
            // Connected, and nothing sent.
            for _ in 0..5 {
                let silent = TcpStream::connect(addr).await.unwrap();
                closed.spawn(async move { ("silent TCP", read_to_close(silent).await) });
            }
            // Half a request head, the rest never comes.
            let mut partial = TcpStream::connect(addr).await.unwrap();
            partial
                .write_all(b"GET /health HTTP/1.1\r\n")
                .await
                .unwrap();
            closed.spawn(async move { ("half a request head", read_to_close(partial).await) });
        }
        // TLS handshake done, and nothing sent.
        for _ in 0..5 {
            let silent = tls_connect(tls_server.addr, tls.clone()).await;
            closed.spawn(async move { ("silent TLS", read_to_close(silent).await) });
        }
        // One answered request on a kept-alive connection, then nothing.
        for (addr, tls) in [
            (tls_server.addr, Some(tls.clone())),
            (plain_server.addr, None),
        ] {
            let request =
                b"GET /private HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret\r\n\r\n";
            let tcp = TcpStream::connect(addr).await.unwrap();
            match tls {
                Some(tls) => {
                    let mut stream = tokio_rustls::TlsConnector::from(tls)
                        .connect(ServerName::try_from("localhost").unwrap(), tcp)
                        .await
                        .unwrap();
                    stream.write_all(request).await.unwrap();
                    closed.spawn(
                        async move { ("idle after a request", read_to_close(stream).await) },
                    );
                }
                None => {
                    let mut stream = tcp;
                    stream.write_all(request).await.unwrap();
                    closed.spawn(
                        async move { ("idle after a request", read_to_close(stream).await) },
                    );
                }
            }
        }

        let mut n = 0;
        while let Some(joined) = closed.join_next().await {
            let (what, read) = joined.unwrap();
            if what == "idle after a request" {
                let text = String::from_utf8_lossy(&read);
                assert!(text.starts_with("HTTP/1.1 200"), "{what}: {text}");
            }
            n += 1;
        }
        assert_eq!(n, 2 * 6 + 5 + 2);

        // The servers still answer.
        let client = client(tls);
        for base in [
            format!("https://localhost:{}", tls_server.port()),
            format!("http://127.0.0.1:{}", plain_server.port()),
        ] {
            let answer = client
                .request(axum::http::Method::GET, &format!("{base}/health"), None)
                .await
                .unwrap();
            assert_eq!(answer.status, StatusCode::OK);
        }
        tls_server.stop().await;
        plain_server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_silent_connections_beyond_the_limit_leave_room_for_probes_and_authenticated_clients()
 {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        // Timeouts far beyond the test: only the limits make room.
        let limits = ServeLimits {
            handshake_timeout_ms: 600_000,
            idle_timeout_ms: 600_000,
            connections_max: 16,
            unauthenticated_connections_max: 8,
        };
        let server = tls_server(&pki, limits).await;
        let anonymous = client_config(&pki.ca_bundle().unwrap(), None).unwrap();
        let peer_pem = pem(&pki, "ctl-main", "ordo:controller:main");
        let peer = client_config(&pki.ca_bundle().unwrap(), Some(&material(&peer_pem))).unwrap();

        // Connections that authenticated before the flood: by a token, and by a certificate.
        let mut by_token = http1(tls_connect(server.addr, anonymous.clone()).await).await;
        assert_eq!(
            get_status(&mut by_token, "/private", Some(TOKEN)).await,
            StatusCode::OK
        );
        let mut by_certificate = http1(tls_connect(server.addr, peer.clone()).await).await;
        assert_eq!(
            get_status(&mut by_certificate, "/health", None).await,
            StatusCode::OK
        );

        // Three times the limit of silent connections, plain TCP and TLS.
        let silent_n = 3 * limits.connections_max;
        let mut closed = JoinSet::new();
        for i in 0..silent_n {
            if i % 2 == 0 {
                let silent = TcpStream::connect(server.addr).await.unwrap();
                closed.spawn(read_to_close(silent));
            } else {
                let silent = tls_connect(server.addr, anonymous.clone()).await;
                closed.spawn(read_to_close(silent));
            }
        }

        // A probe without a token and a new authenticated client are answered.
        let base = format!("https://localhost:{}", server.port());
        let probe = client(anonymous.clone())
            .request(axum::http::Method::GET, &format!("{base}/health"), None)
            .await
            .unwrap();
        assert_eq!(probe.status, StatusCode::OK);
        let authenticated = client(anonymous.clone())
            .with_bearer(TOKEN)
            .unwrap()
            .request(axum::http::Method::GET, &format!("{base}/private"), None)
            .await
            .unwrap();
        assert_eq!(authenticated.status, StatusCode::OK);

        // The connections authenticated before keep working.
        assert_eq!(
            get_status(&mut by_token, "/private", Some(TOKEN)).await,
            StatusCode::OK
        );
        assert_eq!(
            get_status(&mut by_certificate, "/health", None).await,
            StatusCode::OK
        );

        // Every silent connection beyond the unauthenticated share was closed.
        let must_close = silent_n - limits.unauthenticated_connections_max;
        for _ in 0..must_close {
            closed
                .join_next()
                .await
                .expect("a silent connection left")
                .unwrap();
        }
        closed.abort_all();
        server.stop().await;
    })
    .await;
}
