//! The controller session: coupling and resuming, fencing and dedication, refusals of bad
//! frames, plaintext and foreign certificates, and `GET /meta`.

mod common;

use common::{Agent, Ctl, FRAME_BYTES_MAX, Setup, connect, couple_msg, couple_raw, recv_frame};
use futures_util::SinkExt;
use ordo_model::ids::AgentId;
use ordo_model::order::{AgentCommand, OrderState};
use ordo_model::value::Vars;
use ordo_model::wire::{AgentEvent, Couple, FromAgent, PROTOCOL_VERSION, ToAgent};
use ordo_net::certs::IssueSpec;
use ordo_net::frame;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const TICKER: &str = r#"
workflow: ticker
jobs:
  tick:
    agent: a1
    script: |
      i=0
      while [ $i -lt 20 ]; do echo "tick $i"; i=$((i+1)); sleep 0.05; done
steps:
  - run: tick
  - run: tick
"#;

/// Every event of the agent's current run, read by a controller that knows nothing.
async fn all_events(setup: &Setup, addr: std::net::SocketAddr, term: u64) -> Vec<AgentEvent> {
    let mut ws = connect(addr, setup.controller_tls()).await;
    let FromAgent::Coupled(c) = couple_raw(&mut ws, &couple_msg(term, None, 0)).await else {
        panic!("not coupled");
    };
    let mut events: Vec<AgentEvent> = Vec::new();
    while events.last().map_or(0, |e| e.id) < c.last_event_id {
        match recv_frame(&mut ws, 5_000).await {
            Some(FromAgent::Events(batch)) => events.extend(batch),
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_couple_and_resume_without_loss_or_duplicates() {
    let setup = Setup::new("");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), TICKER);
    ctl.couple().await;
    ctl.add_order("t", "ticker", Vars::new(), None).await;
    ctl.until(5_000, "some output", |c| {
        c.names("t").iter().filter(|n| *n == "Output").count() >= 5
    })
    .await;
    // Drop the session in the middle of the job, twice, and resume where we were.
    for _ in 0..2 {
        ctl.disconnect().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = ctl.last_id();
        let coupled = ctl.couple().await.clone();
        assert!(
            coupled.last_event_id > before,
            "the agent went on meanwhile"
        );
        assert_eq!(coupled.attached_orders.len(), 1);
        ctl.until(5_000, "more events", |c| c.last_id() > before)
            .await;
    }
    ctl.until(10_000, "t finished", |c| {
        c.state("t") == Some(OrderState::Finished)
    })
    .await;
    let output = String::from_utf8(ctl.output("t")).unwrap();
    let expected: String = (0..2)
        .flat_map(|_| (0..20).map(|i| format!("tick {i}\n")))
        .collect();
    assert_eq!(output, expected, "no output lost or repeated");
    // A controller that knows nothing gets the whole run: the same events, ids and all.
    let all = all_events(&setup, agent.addr, ctl.term).await;
    assert_eq!(all, ctl.events);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_fencing_and_dedication() {
    let setup = Setup::new("");
    let config = setup.config();
    let agent = Agent::start(config.clone()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), TICKER);
    ctl.term = 5;
    ctl.couple().await;

    // An older term is refused (fencing).
    let mut old = Ctl::new(agent.addr, setup.controller_tls(), TICKER);
    old.term = 4;
    let reason = old.try_couple().await.unwrap_err();
    assert!(reason.contains("term 4 is older than term 5"), "{reason}");
    // So is a command with an older term on the session.
    let seq = 77;
    ctl.send(&ToAgent::Command {
        seq,
        term: 3,
        command: AgentCommand::DetachOrder {
            id: ordo_model::ids::OrderId::new("x").unwrap(),
        },
    })
    .await;
    ctl.until(3_000, "an answer", |c| !c.replies.is_empty())
        .await;
    match ctl.replies.pop_front() {
        Some(FromAgent::Rejected { seq: s, message }) => {
            assert_eq!(s, seq);
            assert!(message.contains("term 3 is older"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // Another cluster, with a certificate of the same CA: the agent is dedicated to `main`.
    let other = setup
        .pki
        .issue("other", &IssueSpec::local(["ordo:controller:other"]))
        .unwrap();
    let mut ws = connect(agent.addr, setup.tls_with(&other)).await;
    let mut msg = couple_msg(9, None, 0);
    if let ToAgent::Couple(c) = &mut msg {
        c.cluster_id = "other".into();
    }
    match couple_raw(&mut ws, &msg).await {
        FromAgent::Refused { reason } => {
            assert!(reason.contains("dedicated to cluster main"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        recv_frame(&mut ws, 3_000).await.is_none(),
        "closed after the refusal"
    );
    // The certificate's cluster and the Couple's must agree.
    let mut ws = connect(agent.addr, setup.tls_with(&other)).await;
    match couple_raw(&mut ws, &couple_msg(9, None, 0)).await {
        FromAgent::Refused { reason } => assert!(
            reason.contains("certificate is for cluster other"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // Another agent id, another protocol version.
    for (agent_id, version, expect) in [
        ("a2", PROTOCOL_VERSION, "this is agent a1, not a2"),
        ("a1", 99, "protocol version 99"),
    ] {
        let mut ws = connect(agent.addr, setup.controller_tls()).await;
        let msg = ToAgent::Couple(Couple {
            protocol_version: version,
            cluster_id: "main".into(),
            controller_id: "c1".into(),
            term: 9,
            agent_id: AgentId::new(agent_id).unwrap(),
            agent_run_id: None,
            after: 0,
        });
        match couple_raw(&mut ws, &msg).await {
            FromAgent::Refused { reason } => assert!(reason.contains(expect), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    // A newer term takes over; the older session is closed.
    let mut newer = Ctl::new(agent.addr, setup.controller_tls(), TICKER);
    newer.term = 6;
    newer.couple().await;
    assert!(!ctl.recv(3_000).await, "the replaced session is closed");

    // The highest term survives a restart.
    newer.disconnect().await;
    agent.stop().await;
    let agent = Agent::start(config).await;
    let mut again = Ctl::new(agent.addr, setup.controller_tls(), TICKER);
    again.term = 5;
    let reason = again.try_couple().await.unwrap_err();
    assert!(reason.contains("term 5 is older than term 6"), "{reason}");
    again.term = 6;
    again.couple().await;
    again.disconnect().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_bad_frames_plaintext_and_foreign_certificates_are_refused() {
    let setup = Setup::new("frame_bytes_max = 65536\nlog_chunk_bytes_max = 1024");
    let agent = Agent::start(setup.config()).await;
    let addr = agent.addr;

    // Plaintext HTTP gets no answer: the TLS handshake fails and the connection is dropped.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /meta HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the agent closes a plaintext connection");
        assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
    }
    // A client certificate of a foreign CA fails the handshake.
    let foreign = setup
        .pki
        .issue_foreign("intruder", &IssueSpec::local(["ordo:controller:main"]))
        .unwrap();
    let foreign_tls = ordo_net::tls::client_config(
        &setup.pki.ca_bundle().unwrap(),
        Some(&foreign.to_material().unwrap()),
    )
    .unwrap();
    let refused =
        ordo_net::client::connect_ws(&common::ws_url(addr), foreign_tls, FRAME_BYTES_MAX, 5_000)
            .await;
    assert!(refused.is_err(), "foreign CA accepted");
    // A certificate of the right CA without the controller role may not open a session.
    let agent_cert = setup
        .pki
        .issue("not-a-controller", &IssueSpec::local(["ordo:agent:a9"]))
        .unwrap();
    let refused = ordo_net::client::connect_ws(
        &common::ws_url(addr),
        setup.tls_with(&agent_cert),
        FRAME_BYTES_MAX,
        5_000,
    )
    .await;
    let error = match refused {
        Ok(_) => panic!("a non-controller certificate is accepted"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("403"), "{error}");

    // Garbage as the first frame.
    let mut ws = connect(addr, setup.controller_tls()).await;
    ws.send(Message::Binary(vec![0xff, 0xfe, 0x01].into()))
        .await
        .unwrap();
    match recv_frame(&mut ws, 3_000).await {
        Some(FromAgent::Refused { reason }) => assert!(reason.contains("bad frame"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(recv_frame(&mut ws, 3_000).await.is_none());
    // A frame that is not Couple first.
    let mut ws = connect(addr, setup.controller_tls()).await;
    frame::send(&mut ws, &ToAgent::GetMeta, FRAME_BYTES_MAX)
        .await
        .unwrap();
    match recv_frame(&mut ws, 3_000).await {
        Some(FromAgent::Refused { reason }) => {
            assert!(reason.contains("must be Couple"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Coupled, then a text message; then coupled, then an unknown variant; then too large.
    let bad_messages = [
        (Message::Text("hello".into()), true),
        (Message::Binary(vec![200, 1, 2].into()), true),
        // Too large: the WebSocket layer may end the connection before a refusal goes out.
        (Message::Binary(vec![1u8; 100_000].into()), false),
    ];
    for (bad, must_refuse) in bad_messages {
        let mut ctl = Ctl::new(addr, setup.controller_tls(), "");
        ctl.couple().await;
        let ws = ctl.ws.as_mut().unwrap();
        ws.send(bad).await.unwrap();
        let mut refused = false;
        while let Some(m) = recv_frame(ws, 3_000).await {
            if let FromAgent::Refused { reason } = m {
                assert!(reason.contains("bad frame"), "{reason}");
                refused = true;
            }
        }
        assert!(refused || !must_refuse, "no refusal");
    }

    // Nothing else was disturbed: a controller couples, asks for metadata, runs an order.
    let mut ctl = Ctl::new(
        addr,
        setup.controller_tls(),
        "workflow: w\njobs: { j: { agent: a1, script: 'echo ok' } }\nsteps: [ { run: j } ]",
    );
    ctl.couple().await;
    ctl.send(&ToAgent::GetMeta).await;
    ctl.until(3_000, "meta", |c| {
        c.replies.iter().any(|r| matches!(r, FromAgent::Meta(_)))
    })
    .await;
    ctl.add_order("ok", "w", Vars::new(), None).await;
    ctl.until(10_000, "ok finished", |c| {
        c.state("ok") == Some(OrderState::Finished)
    })
    .await;

    // GET /meta on the same port.
    let client = ordo_net::client::HttpsClient::new(
        setup.controller_tls(),
        ordo_net::client::HttpsClientOptions::default(),
    );
    let meta: serde_json::Value = client
        .get_json(&format!("https://{addr}/meta"))
        .await
        .unwrap();
    assert_eq!(meta["agentId"], "a1");
    let run = meta["agentRunId"].as_str().unwrap();
    assert_eq!(run.len(), 32);
    assert_eq!(u128::from_str_radix(run, 16).unwrap(), ctl.run_id.unwrap());
    assert_eq!(meta["jobs"][0]["job"], "w/j");
    assert_eq!(meta["jobs"][0]["processed"], 1);
    assert!(meta["connectedSinceMs"].is_i64());
    ctl.disconnect().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_reset_forgets_orders_and_dedication_and_begins_a_new_run() {
    let setup = Setup::new("");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(
        agent.addr,
        setup.controller_tls(),
        "workflow: w\njobs: { j: { agent: a1, script: 'sleep 5' } }\nsteps: [ { run: j } ]",
    );
    ctl.couple().await;
    let old_run = ctl.run_id.unwrap();
    ctl.add_order("o", "w", Vars::new(), None).await;
    ctl.until(5_000, "started", |c| c.has("o", "ProcessingStarted"))
        .await;
    let pgid = common::job_pgid(old_run, "o", 1, 5_000)
        .await
        .expect("the job's process");
    ctl.send(&ToAgent::Reset { seq: 99, term: 1 }).await;
    ctl.until(5_000, "the reset's answer", |c| {
        c.replies
            .iter()
            .any(|r| matches!(r, FromAgent::Ack { seq: 99 }))
    })
    .await;
    // The session ends with the old run; the job's process group is killed.
    while ctl.recv(3_000).await {}
    assert!(common::eventually(2_000, || !common::group_alive(pgid)).await);

    // Another cluster may couple now; the agent has a new run and no orders.
    let other = setup
        .pki
        .issue("other", &IssueSpec::local(["ordo:controller:other"]))
        .unwrap();
    let mut ws = connect(agent.addr, setup.tls_with(&other)).await;
    let mut msg = couple_msg(1, Some(old_run), 3);
    if let ToAgent::Couple(c) = &mut msg {
        c.cluster_id = "other".into();
    }
    match couple_raw(&mut ws, &msg).await {
        FromAgent::Coupled(c) => {
            assert_ne!(c.agent_run_id, old_run);
            assert!(c.attached_orders.is_empty());
            assert_eq!(c.last_event_id, 0);
        }
        other => panic!("{other:?}"),
    }
    // Nothing of the old run is streamed.
    assert!(
        common::recv_within(&mut ws, 500).await.is_err(),
        "no events after a reset"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_silent_controller_is_dropped_after_the_heartbeat_timeout() {
    let setup = Setup::new("heartbeat_interval_ms = 200\nheartbeat_timeout_ms = 1000");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), "");
    ctl.couple().await;
    // Not reading means not answering pings: after the timeout the agent closes.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let ws = ctl.ws.as_mut().unwrap();
    assert_eq!(
        common::recv_within(ws, 2_000).await,
        Ok(None),
        "the session is closed"
    );
    // A controller that answers stays.
    ctl.couple().await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ws = ctl.ws.as_mut().unwrap();
        assert!(
            common::recv_within(ws, 200).await.is_err(),
            "the session stays open while pings are answered"
        );
    }
    ctl.disconnect().await;
    agent.stop().await;
}
