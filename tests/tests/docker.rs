//! The compose cluster (`deploy/compose`) in a real Docker engine: built from this build's
//! `ordo` on the local Debian base, brought up, the inventory deployed and orders added through
//! the cockpit while the active controller is killed, cut off the network and frozen, an agent
//! restarted, both controllers upgraded in turn to a second image with a switchover between
//! (a rolling upgrade), and everything stopped and started again; then the voters' journals are
//! read out of their containers and checked (0 lost, 0 unexpected, identical where they
//! overlap). The failover times across containers are printed (`docker failover:`).
//!
//! Without a Docker engine the test says loudly that it did not run; under `CI=true` that is a
//! failure. The base image is made once per machine and kept by its tag.

use ordo_tests::docker::{self, CONTROLLERS, Compose};
use std::time::{Duration, Instant};

/// Jobs per order of the workflow the load adds (`relay`: one on each agent).
const JOBS: u32 = 2;
/// Orders the load adds at most.
const ORDERS_MAX: usize = 2_000;
/// Time for every acknowledged order to end.
const END_WITHIN: Duration = Duration::from_secs(180);

fn other(service: &str) -> &'static str {
    if service == CONTROLLERS[0] {
        CONTROLLERS[1]
    } else {
        CONTROLLERS[0]
    }
}

/// The runtime stage of both Dockerfiles is the same text, so the image the tests build is
/// the one users get but for where the binary comes from.
#[test]
fn dockerfiles_share_the_runtime_stage() {
    let stage = |file: &str| -> String {
        let text = std::fs::read_to_string(docker::repo().join("deploy/docker").join(file))
            .expect("reading a Dockerfile");
        let start = text
            .find("# --- runtime (identical")
            .expect("runtime stage start");
        let end = text
            .find("# --- end of the shared runtime stage ---")
            .expect("runtime stage end");
        text[start..end]
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(stage("Dockerfile"), stage("Dockerfile.local"));
    let tail = |file: &str| -> String {
        let text = std::fs::read_to_string(docker::repo().join("deploy/docker").join(file))
            .expect("reading a Dockerfile");
        let end = text
            .find("# --- end of the shared runtime stage ---")
            .expect("runtime stage end");
        // After the stage: the binary's COPY differs, the rest is the same.
        text[end..]
            .lines()
            .filter(|l| !l.starts_with("COPY"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(tail("Dockerfile"), tail("Dockerfile.local"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_docker_compose_cluster_survives_faults() -> anyhow::Result<()> {
    if !docker::engine_or_skip("process_docker_compose_cluster_survives_faults") {
        return Ok(());
    }
    let started = Instant::now();
    docker::ensure_base_image()?;
    let image = format!("ordotest{}:image", std::process::id());
    docker::build_image(&image)?;
    eprintln!("image {image} built at {:?}", started.elapsed());
    let mut compose = Compose::up(&image).await?;
    eprintln!("cluster up at {:?}", started.elapsed());

    let inventory = std::fs::read_to_string(docker::repo().join("deploy/compose/inventory.yaml"))?;
    compose.deploy("inventory.yaml", &inventory).await?;
    let orderer = compose.orderer();
    orderer.add("first", "relay").await?;
    compose
        .wait_ended(&["first".to_owned()], Duration::from_secs(60))
        .await?;

    let mut load = docker::Load::start(&orderer, "relay", "d", ORDERS_MAX);
    load.wait_more(5).await?;
    let mut figures = Vec::new();

    // docker kill: the active controller's process is gone at once.
    let active = compose.active().await.expect("an active controller");
    let t = Instant::now();
    compose.docker_on("kill", &active, &[])?;
    let raft = compose.wait_node_active(other(&active), t).await?;
    let (now, took) = compose.wait_active_other(&active, t).await?;
    figures.push(format!(
        "kill: {} ms (cockpit {} ms)",
        raft.as_millis(),
        took.as_millis()
    ));
    load.wait_more(5).await?;
    compose.docker_on("start", &active, &[])?;
    compose.wait_passive(&active).await?;

    // A partition: the active controller is cut off the cluster's network.
    let t = Instant::now();
    compose.disconnect(&now)?;
    let raft = compose.wait_node_active(other(&now), t).await?;
    let (next, took) = compose.wait_active_other(&now, t).await?;
    figures.push(format!(
        "partition: {} ms (cockpit {} ms)",
        raft.as_millis(),
        took.as_millis()
    ));
    load.wait_more(5).await?;
    compose.connect(&now)?;
    compose.wait_passive(&now).await?;

    // A frozen process: the active controller is paused.
    let t = Instant::now();
    compose.docker_on("pause", &next, &[])?;
    let raft = compose.wait_node_active(other(&next), t).await?;
    let (_, took) = compose.wait_active_other(&next, t).await?;
    figures.push(format!(
        "pause: {} ms (cockpit {} ms)",
        raft.as_millis(),
        took.as_millis()
    ));
    load.wait_more(5).await?;
    compose.docker_on("unpause", &next, &[])?;
    compose.wait_passive(&next).await?;

    // An agent restarted while jobs run on it.
    compose.docker_on("restart", "agent-2", &["-t", "2"])?;
    load.wait_more(5).await?;

    // A rolling upgrade while orders are added and run: the passive controller's container
    // replaced by one of the next image (same volumes, network and alias), caught up, a
    // switchover to it, then the other controller replaced the same way.
    let next_image = docker::next_image_of(&image);
    docker::build_next_image(&image, &next_image, "next")?;
    let old = compose.active().await.expect("an active controller");
    let first = other(&old);
    compose.replace(first, &next_image)?;
    compose.wait_passive(first).await?;
    load.wait_more(3).await?;
    let t = Instant::now();
    compose.switchover().await?;
    let raft = compose.wait_node_active(first, t).await?;
    let (now, took) = compose.wait_active_other(&old, t).await?;
    assert_eq!(
        now, first,
        "the switchover handed over to the upgraded controller"
    );
    figures.push(format!(
        "switchover: {} ms (cockpit {} ms)",
        raft.as_millis(),
        took.as_millis()
    ));
    load.wait_more(3).await?;
    compose.replace(&old, &next_image)?;
    compose.wait_passive(&old).await?;
    for service in CONTROLLERS {
        assert_eq!(compose.image_of(service)?, next_image, "{service} upgraded");
    }
    eprintln!("rolling upgrade done at {:?}", started.elapsed());
    load.wait_more(5).await?;
    let added = load.stop().await?;
    let ledger = orderer.ledger();
    let acknowledged: Vec<String> = ledger.acknowledged().into_iter().collect();
    compose.wait_ended(&acknowledged, END_WITHIN).await?;

    // Everything stopped and started again: the same cluster, the same orders.
    compose.compose(&["stop", "-t", "5"])?;
    compose.compose(&["start"])?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while compose.active().await.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no active controller after the restart\n{}",
            compose.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    orderer.add("after-restart", "relay").await?;
    let acknowledged: Vec<String> = orderer.ledger().acknowledged().into_iter().collect();
    compose.wait_ended(&acknowledged, END_WITHIN).await?;

    // The end: the passive voters stop first so that the leader's last commits reach them.
    let leader = compose.active().await.expect("an active controller");
    let committed = compose.committed().await?;
    compose.wait_passive(other(&leader)).await?;
    for service in [other(&leader), "watch"] {
        compose.compose(&["stop", "-t", "5", service])?;
    }
    compose.compose(&["stop", "-t", "5", &leader])?;
    let mut journals = Vec::new();
    for (service, controller) in [("ctl-a", true), ("ctl-b", true), ("watch", false)] {
        match compose.journal(service)? {
            Some(j) => journals.push((service.to_owned(), controller, j)),
            None if controller => anyhow::bail!("{service} has no journal"),
            None => {}
        }
    }
    let ledger = orderer.ledger();
    let (verdict, _) = docker::check_journals(&journals, committed, &ledger, JOBS)?;
    eprintln!(
        "checker: {verdict}; {added} orders of the load; journals: {}",
        journals
            .iter()
            .map(|(s, _, j)| format!("{s} {} events", j.records.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!(
        "docker failover: {} (until the other controller's own /health says active, read by docker exec; in brackets until the cockpit's cluster view names it, polled every 50 ms)",
        figures.join(", ")
    );
    eprintln!("whole test {:?}", started.elapsed());
    assert!(verdict.lost.is_empty(), "lost orders: {verdict}");
    assert!(
        verdict.unexpected.is_empty(),
        "unexpected orders: {verdict}"
    );
    assert!(verdict.is_clean(), "{verdict}");
    assert_eq!(verdict.acknowledged, ledger.orders.len(), "{verdict}");
    compose.remove();
    Ok(())
}
