//! TLS, mTLS, WebSocket frames and HTTPS JSON through real sockets on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ordo_net::PeerIdentity;
use ordo_net::certs::{self, IssueSpec, TestPki};
use ordo_net::client::{ClientError, HttpsClient, HttpsClientOptions, connect_ws};
use ordo_net::frame::{self, FrameError, Received};
use ordo_net::serve::ServeLimits;
use ordo_net::tls::{CaBundle, ClientAuth, TlsMaterial, client_config, server_config};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENT_FRAME_BYTES_MAX: usize = 64 * 1024;

fn https(options: HttpsClientOptions, tls: Arc<rustls::ClientConfig>) -> HttpsClient {
    HttpsClient::new(tls, options)
}

fn quick() -> HttpsClientOptions {
    HttpsClientOptions {
        connect_timeout_ms: 2_000,
        request_timeout_ms: 5_000,
        body_bytes_max: 64 * 1024,
        allow_plain_http: false,
    }
}

/// An agent-style server (`ordo:agent:a1`) that requires client certificates from the CA.
async fn mtls_server(pki: &TestPki, limits: ServeLimits) -> (Server, WsErrors) {
    let server_pem = pem(pki, "agent-a1", "ordo:agent:a1");
    let tls = server_config(
        &material(&server_pem),
        ClientAuth::Required(pki.ca_bundle().unwrap()),
    )
    .unwrap();
    let (router, errors) = app();
    (start_tls(tls, router, limits).await, errors)
}

fn controller_client(pki: &TestPki) -> Arc<rustls::ClientConfig> {
    let pair = pem(pki, "ctl-main", "ordo:controller:main");
    client_config(&pki.ca_bundle().unwrap(), Some(&material(&pair))).unwrap()
}

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test finished within its time bound");
}

#[tokio::test]
async fn process_mtls_handshake_ok_and_identities_visible() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let (server, _) = mtls_server(&pki, ServeLimits::default()).await;
        let tls = controller_client(&pki);

        // The client sees the server's identity.
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let server_identity = PeerIdentity::from_client_stream(&stream).unwrap().unwrap();
        assert_eq!(server_identity.agent_id(), Some("a1"));
        assert_eq!(server_identity.common_name.as_deref(), Some("agent-a1"));
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        drop(stream);

        // The server sees the client's identity.
        let who: WhoAmI = https(quick(), tls)
            .with_bearer("s3cret")
            .unwrap()
            .get_json(&format!("https://localhost:{}/whoami", server.port()))
            .await
            .unwrap();
        assert_eq!(who.uri_sans, vec!["ordo:controller:main".to_owned()]);
        assert_eq!(who.common_name.as_deref(), Some("ctl-main"));
        assert_eq!(who.remote_ip, "127.0.0.1");
        assert_eq!(who.bearer.as_deref(), Some("Bearer s3cret"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_foreign_ca_client_cert_refused() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let (server, _) = mtls_server(&pki, ServeLimits::default()).await;
        let foreign = pki
            .issue_foreign("ctl-main", &IssueSpec::local(["ordo:controller:main"]))
            .unwrap();
        let tls = client_config(&pki.ca_bundle().unwrap(), Some(&material(&foreign))).unwrap();
        let url = format!("https://localhost:{}/whoami", server.port());
        let err = https(quick(), tls)
            .get_json::<WhoAmI>(&url)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Request { .. }), "{err}");

        // The server is undisturbed.
        let who: WhoAmI = https(quick(), controller_client(&pki))
            .get_json(&url)
            .await
            .unwrap();
        assert_eq!(who.uri_sans, vec!["ordo:controller:main".to_owned()]);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_missing_client_cert_refused_when_required() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let (server, _) = mtls_server(&pki, ServeLimits::default()).await;
        let tls = client_config(&pki.ca_bundle().unwrap(), None).unwrap();
        let url = format!("https://localhost:{}/whoami", server.port());
        let err = https(quick(), tls)
            .get_json::<WhoAmI>(&url)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Request { .. }), "{err}");

        // With ClientAuth::Optional the same client gets in, without an identity.
        let server_pem = pem(&pki, "cockpit", "ordo:cockpit:main");
        let optional = server_config(
            &material(&server_pem),
            ClientAuth::Optional(pki.ca_bundle().unwrap()),
        )
        .unwrap();
        let (router, _) = app();
        let open = start_tls(optional, router, ServeLimits::default()).await;
        let tls = client_config(&pki.ca_bundle().unwrap(), None).unwrap();
        let who: WhoAmI = https(quick(), tls)
            .get_json(&format!("https://localhost:{}/whoami", open.port()))
            .await
            .unwrap();
        assert!(who.uri_sans.is_empty());
        assert_eq!(who.common_name, None);
        open.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_server_name_is_checked_against_sans() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let mut spec = IssueSpec::local(["ordo:cockpit:main"]);
        spec.ip_addresses.clear();
        let server_pem = pki.issue("cockpit", &spec).unwrap();
        let tls = server_config(&material(&server_pem), ClientAuth::None).unwrap();
        let (router, _) = app();
        let server = start_tls(tls, router, ServeLimits::default()).await;
        let client = https(
            quick(),
            client_config(&pki.ca_bundle().unwrap(), None).unwrap(),
        );
        let ok: WhoAmI = client
            .get_json(&format!("https://localhost:{}/whoami", server.port()))
            .await
            .unwrap();
        assert!(ok.uri_sans.is_empty());
        let err = client
            .get_json::<WhoAmI>(&format!("https://127.0.0.1:{}/whoami", server.port()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        // A server certificate from the foreign CA is refused by the client.
        let foreign = pki
            .issue_foreign("cockpit", &IssueSpec::local(["x"]))
            .unwrap();
        let tls = server_config(&material(&foreign), ClientAuth::None).unwrap();
        let (router, _) = app();
        let impostor = start_tls(tls, router, ServeLimits::default()).await;
        let err = client
            .get_json::<WhoAmI>(&format!("https://localhost:{}/whoami", impostor.port()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        impostor.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_plaintext_refused_without_disturbing_a_good_connection() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let (server, _) = mtls_server(&pki, ServeLimits::default()).await;
        let url = format!("wss://localhost:{}/ws", server.port());
        let mut ws = connect_ws(&url, controller_client(&pki), CLIENT_FRAME_BYTES_MAX, 5_000)
            .await
            .unwrap();
        let first = Wire::V1 {
            seq: 1,
            payload: vec![1; 10],
        };
        frame::send(&mut ws, &first, CLIENT_FRAME_BYTES_MAX)
            .await
            .unwrap();
        let reply: Reply = frame::recv(&mut ws, CLIENT_FRAME_BYTES_MAX)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(reply, Reply::V1 { seq: 1, .. }));

        // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
        let mut plain = TcpStream::connect(server.addr).await.unwrap();
        plain
            .write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
            .await
            .expect("the server closes a plaintext connection promptly");
        assert!(read.is_ok() || answer.is_empty());
        assert!(
            !answer.starts_with(b"HTTP/"),
            "plaintext got an HTTP answer: {answer:?}"
        );

        // The established WebSocket keeps working.
        for seq in 2..12u64 {
            let msg = Wire::V1 {
                seq,
                payload: vec![2; 100],
            };
            frame::send(&mut ws, &msg, CLIENT_FRAME_BYTES_MAX)
                .await
                .unwrap();
            let reply: Reply = frame::recv(&mut ws, CLIENT_FRAME_BYTES_MAX)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                reply,
                Reply::V1 {
                    seq,
                    payload_len: 100,
                    peer_agent: None
                }
            );
        }
        ws.close(None).await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_websocket_round_trip_of_postcard_frames() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let (server, mut errors) = mtls_server(&pki, ServeLimits::default()).await;
        // An agent-certified client: the handler reports the agent id it saw.
        let agent_pair = pem(&pki, "agent-b2", "ordo:agent:b2");
        let tls = client_config(&pki.ca_bundle().unwrap(), Some(&material(&agent_pair))).unwrap();
        let url = format!("wss://localhost:{}/ws", server.port());
        let mut ws = connect_ws(&url, tls, CLIENT_FRAME_BYTES_MAX, 5_000)
            .await
            .unwrap();
        let server_id = PeerIdentity::from_client_stream(ws.get_ref())
            .unwrap()
            .unwrap();
        assert!(server_id.is_agent("a1"));

        for seq in 0..50u64 {
            let payload = vec![seq as u8; (seq as usize * 13) % 900];
            let len = payload.len();
            frame::send(&mut ws, &Wire::V1 { seq, payload }, CLIENT_FRAME_BYTES_MAX)
                .await
                .unwrap();
            let reply: Reply = frame::recv(&mut ws, CLIENT_FRAME_BYTES_MAX)
                .await
                .unwrap()
                .expect("a reply, not a close");
            assert_eq!(
                reply,
                Reply::V1 {
                    seq,
                    payload_len: len,
                    peer_agent: Some("b2".into())
                }
            );
        }

        // A ping is answered with a pong by the server's WebSocket layer.
        frame::send_ping(&mut ws, Bytes::from_static(b"hb"))
            .await
            .unwrap();
        let pong = frame::recv_any::<_, Reply>(&mut ws, CLIENT_FRAME_BYTES_MAX)
            .await
            .unwrap();
        assert_eq!(pong, Received::Pong(Bytes::from_static(b"hb")));

        ws.close(None).await.unwrap();
        let end = frame::recv::<_, Reply>(&mut ws, CLIENT_FRAME_BYTES_MAX).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
        server.stop().await;
        assert!(errors.try_recv().is_err(), "the server saw no frame error");
    })
    .await;
}

#[tokio::test]
async fn process_oversized_frames_are_refused() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let (server, mut errors) = mtls_server(&pki, ServeLimits::default()).await;
        let url = format!("wss://localhost:{}/ws", server.port());
        let big = Wire::V1 {
            seq: 1,
            payload: vec![0; SERVER_FRAME_BYTES_MAX * 2],
        };

        // The sender refuses before writing anything.
        let mut ws = connect_ws(&url, controller_client(&pki), 512, 5_000)
            .await
            .unwrap();
        let err = frame::send(&mut ws, &big, 512).await.unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    frame_bytes_max: 512,
                    ..
                }
            ),
            "{err}"
        );
        ws.close(None).await.unwrap();

        // The receiver refuses a message above its limit, and the session ends.
        let mut ws = connect_ws(&url, controller_client(&pki), CLIENT_FRAME_BYTES_MAX, 5_000)
            .await
            .unwrap();
        frame::send(&mut ws, &big, CLIENT_FRAME_BYTES_MAX)
            .await
            .unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(5), errors.recv())
            .await
            .expect("server reports the oversized frame")
            .expect("error");
        assert!(
            matches!(
                seen,
                FrameError::TooLarge {
                    frame_bytes_max: SERVER_FRAME_BYTES_MAX,
                    ..
                }
            ),
            "{seen}"
        );
        let after = frame::recv::<_, Reply>(&mut ws, CLIENT_FRAME_BYTES_MAX).await;
        assert!(!matches!(after, Ok(Some(_))), "{after:?}");
        drop(ws);

        // A client with a small limit refuses a large reply.
        let mut ws = connect_ws(&url, controller_client(&pki), 4, 5_000)
            .await
            .unwrap();
        let small = Wire::V1 {
            seq: 300,
            payload: vec![],
        };
        frame::send(&mut ws, &small, 4).await.unwrap();
        let err = frame::recv::<_, Reply>(&mut ws, 4).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        // Upgraded WebSockets are the application's to close; the server then stops at once.
        drop(ws);
        let started = std::time::Instant::now();
        server.stop().await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn process_https_json_client_against_serve_tls() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let (server, _) = mtls_server(&pki, ServeLimits::default()).await;
        let base = format!("https://localhost:{}", server.port());
        let client = https(quick(), controller_client(&pki));

        let echoed: serde_json::Value = client
            .post_json(
                &format!("{base}/echo"),
                &serde_json::json!({"a": [1, 2, 3]}),
            )
            .await
            .unwrap();
        assert_eq!(echoed, serde_json::json!({"a": [1, 2, 3]}));

        let big: String = client.get_json(&format!("{base}/big")).await.unwrap();
        assert_eq!(big.len(), 4096);

        let limited = https(
            HttpsClientOptions {
                body_bytes_max: 1000,
                ..quick()
            },
            controller_client(&pki),
        );
        let err = limited
            .get_json::<String>(&format!("{base}/big"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::BodyTooLarge {
                    body_bytes_max: 1000,
                    ..
                }
            ),
            "{err}"
        );

        let err = client
            .get_json::<String>(&format!("{base}/missing"))
            .await
            .unwrap_err();
        match err {
            ClientError::Status { status, .. } => assert_eq!(status.as_u16(), 404),
            other => panic!("expected a status error, got {other}"),
        }

        let err = client
            .get_json::<String>(&format!("http://localhost:{}/big", server.port()))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Url { .. }), "{err}");

        // Many requests share pooled connections.
        for _ in 0..20 {
            let _: WhoAmI = client.get_json(&format!("{base}/whoami")).await.unwrap();
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_connection_limit_counts_upgraded_websockets() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let limits = ServeLimits {
            handshake_timeout_ms: 2_000,
            connections_max: 1,
            unauthenticated_connections_max: 1,
            ..ServeLimits::default()
        };
        let (server, _) = mtls_server(&pki, limits).await;
        let url = format!("wss://localhost:{}/ws", server.port());
        let mut ws = connect_ws(&url, controller_client(&pki), CLIENT_FRAME_BYTES_MAX, 5_000)
            .await
            .unwrap();
        let msg = Wire::V1 {
            seq: 1,
            payload: vec![],
        };
        frame::send(&mut ws, &msg, CLIENT_FRAME_BYTES_MAX)
            .await
            .unwrap();
        let _: Reply = frame::recv(&mut ws, CLIENT_FRAME_BYTES_MAX)
            .await
            .unwrap()
            .unwrap();

        let short = https(
            HttpsClientOptions {
                request_timeout_ms: 500,
                ..quick()
            },
            controller_client(&pki),
        );
        let whoami = format!("https://localhost:{}/whoami", server.port());
        let err = short.get_json::<WhoAmI>(&whoami).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");

        ws.close(None).await.unwrap();
        let end = frame::recv::<_, Reply>(&mut ws, CLIENT_FRAME_BYTES_MAX).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
        drop(ws);
        let client = https(quick(), controller_client(&pki));
        let who: WhoAmI = client.get_json(&whoami).await.unwrap();
        assert_eq!(who.common_name.as_deref(), Some("ctl-main"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_stalled_handshake_times_out_and_shutdown_stops_listening() {
    bounded(async {
        let pki = TestPki::new("main").unwrap();
        let limits = ServeLimits {
            handshake_timeout_ms: 300,
            connections_max: 4,
            unauthenticated_connections_max: 4,
            ..ServeLimits::default()
        };
        let (server, _) = mtls_server(&pki, limits).await;
        let addr = server.addr;
        // A client that connects and says nothing is dropped after the handshake timeout.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("the server drops a silent client")
            .unwrap_or(0);
        assert_eq!(n, 0);

        server.stop().await;
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    })
    .await;
}

#[tokio::test]
async fn process_certificate_files_serve_mtls() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = certs::init_ca(dir.path(), "main").unwrap();
        let agent =
            certs::issue(dir.path(), "agent-a1", &IssueSpec::local(["ordo:agent:a1"])).unwrap();
        let mut client_spec = IssueSpec::local(["ordo:controller:main"]);
        client_spec.server = false;
        let ctl = certs::issue(dir.path(), "ctl-main", &client_spec).unwrap();

        let bundle = CaBundle::from_pem_file(&ca.cert_path).unwrap();
        let server_material =
            TlsMaterial::from_pem_files(&agent.cert_path, &agent.key_path).unwrap();
        let tls = server_config(&server_material, ClientAuth::Required(bundle.clone())).unwrap();
        let (router, _) = app();
        let server = start_tls(tls, router, ServeLimits::default()).await;
        let client_material = TlsMaterial::from_pem_files(&ctl.cert_path, &ctl.key_path).unwrap();
        let client = https(
            quick(),
            client_config(&bundle, Some(&client_material)).unwrap(),
        );
        let who: WhoAmI = client
            .get_json(&format!("https://127.0.0.1:{}/whoami", server.port()))
            .await
            .unwrap();
        assert_eq!(who.uri_sans, vec!["ordo:controller:main".to_owned()]);

        // A client-only certificate cannot serve.
        let client_only = server_config(&client_material, ClientAuth::None).unwrap();
        let (router, _) = app();
        let wrong = start_tls(client_only, router, ServeLimits::default()).await;
        let err = client
            .get_json::<WhoAmI>(&format!("https://127.0.0.1:{}/whoami", wrong.port()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        wrong.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_plain_http_for_development() {
    bounded(async {
        let (router, _) = app();
        let server = start_plain(router, ServeLimits::default()).await;
        let pki = TestPki::new("main").unwrap();
        let tls = client_config(&pki.ca_bundle().unwrap(), None).unwrap();
        let client = https(
            HttpsClientOptions {
                allow_plain_http: true,
                ..quick()
            },
            tls,
        );
        let who: WhoAmI = client
            .get_json(&format!("http://127.0.0.1:{}/whoami", server.port()))
            .await
            .unwrap();
        assert!(who.uri_sans.is_empty());
        assert_eq!(who.remote_ip, "127.0.0.1");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn process_invalid_limits_are_refused() {
    bounded(async {
        for limits in [
            ServeLimits {
                connections_max: 0,
                ..ServeLimits::default()
            },
            ServeLimits {
                handshake_timeout_ms: 0,
                ..ServeLimits::default()
            },
            ServeLimits {
                idle_timeout_ms: 0,
                ..ServeLimits::default()
            },
            ServeLimits {
                unauthenticated_connections_max: 0,
                ..ServeLimits::default()
            },
            ServeLimits {
                connections_max: 8,
                unauthenticated_connections_max: 9,
                ..ServeLimits::default()
            },
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (router, _) = app();
            let err =
                ordo_net::serve::serve_plain(listener, router, std::future::pending(), limits)
                    .await
                    .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        }
    })
    .await;
}
