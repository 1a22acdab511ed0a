//! Starting a node of the pair: the raft log, the transport, the raft thread.
//!
//! The event journal (committed events only) was folded into `state` already. The raft log is
//! opened (a new node founds the cluster with the configured voters, or, with
//! `[cluster].join`, waits for the leader's snapshot); a raft snapshot ahead of the journal
//! (the journal lost what the log had compacted) is installed first. A journal ahead of the
//! raft log (a raft directory removed, or a journal written by a controller that ran alone) is
//! refused: the node must not start on a log that disagrees with its own committed events.
//! A node whose raft directory is new grants no vote for two election timeouts: if it was
//! wiped, it may have voted in the current term before, and must not vote twice in it.

use crate::ControllerError;
use crate::api::cluster::ClusterInfo;
use crate::cluster::raft::{self, FromRaft, RaftSettings};
use crate::cluster::transport::{Transport, TransportConfig};
use crate::config::{ClusterConfig, Config, Voter};
use crate::core::{NodeView, Replicated};
use crate::record::index_of;
use crate::state::State;
use ordo_journal::Journal;
use ordo_replica::{Membership, Node, NodeConfig, PairTiming};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A node started: what the core and the API take.
pub struct Started {
    pub replicated: Replicated,
    pub info: ClusterInfo,
    /// Kept alive while the controller runs.
    pub transport: Arc<Transport>,
}

/// Opens the raft log and starts the transport and the raft thread.
pub async fn start(
    config: &Config,
    cluster: &ClusterConfig,
    journal: &Journal,
    state: &State,
) -> Result<Started, ControllerError> {
    let me = cluster.me().clone();
    let watch = me.voter == Voter::Watch;
    let mut nc = NodeConfig::for_pair(
        cluster.node_id,
        cluster.nodes.iter().map(|n| n.id),
        PairTiming {
            election_ticks: cluster.election_ticks,
            heartbeat_ticks: cluster.heartbeat_ticks,
            message_bytes_max: cluster.message_bytes_max,
            segment_bytes_max: config.limits.segment_bytes_max,
            fsync: config.limits.journal_fsync,
            watch,
        },
    );
    if cluster.join {
        nc.bootstrap = Membership::default();
    }
    let dir = config.data_dir.join("raft");
    std::fs::create_dir_all(&dir).map_err(|source| ControllerError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let fresh = !dir.join(ordo_replica::LOG_DIR_NAME).exists();
    let abstain_ms = nc.abstain_ms(fresh, cluster.tick_ms);
    let (node, restored) = Node::open(&dir, nc).map_err(|e| {
        ControllerError::Recovery(format!("the raft log in {}: {e}", dir.display()))
    })?;
    let journal_index = index_of(journal.last_id());
    if journal_index > restored.last_index {
        return Err(ControllerError::Recovery(format!(
            "the event journal holds entry {journal_index}, beyond the end of the raft log in {} \
             (entry {}): the raft log was removed or the journal was written by a controller \
             running alone; a node of a pair starts from an empty data directory or its own",
            dir.display(),
            restored.last_index
        )));
    }

    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut applied = journal_index;
    if let Some(s) = restored.snapshot.filter(|s| !s.data.is_empty())
        && s.index > journal_index
    {
        // The core installs it before anything else.
        applied = journal_index;
        let _ = out_tx.send(FromRaft::Snapshot {
            index: s.index,
            data: s.data,
        });
    }
    let status = Arc::new(Mutex::new(node.status()));
    let view = Arc::new(Mutex::new(NodeView {
        applied,
        committed_event_id: state.last_event_id,
        ..NodeView::default()
    }));

    let (inbound_tx, inbound_rx) = tokio::sync::mpsc::unbounded_channel();
    let peers: BTreeMap<u64, String> = cluster
        .nodes
        .iter()
        .filter(|n| n.id != cluster.node_id)
        .map(|n| (n.id, n.raft_address.clone()))
        .collect();
    let transport = Transport::start(
        TransportConfig {
            node_id: cluster.node_id,
            cluster_id: config.cluster_id.clone(),
            peer_uri: ordo_net::identity::controller_uri(&config.cluster_id),
            listen: cluster.raft_listen,
            peers,
            shared_settings: cluster.shared_settings(&config.cluster_id),
            message_bytes_max: cluster.message_bytes_max,
            connect_timeout_ms: 1000,
            queue_messages_max: 4096,
        },
        crate::cluster::tls_from_config(&config.tls)
            .map_err(|e| ControllerError::Core(format!("the raft transport's TLS: {e}")))?,
        inbound_tx,
    )
    .await
    .map_err(|e| ControllerError::Core(format!("the raft transport: {e}")))?;
    let transport = Arc::new(transport);

    let (to_raft, raft_rx) = std::sync::mpsc::channel();
    // The transport's reports go to the raft thread; a refusal stops the controller.
    ordo_replica::driver::forward_inbound(
        inbound_rx,
        to_raft.clone(),
        out_tx.clone(),
        status.clone(),
    );
    let sender = transport.clone();
    raft::start(
        node,
        RaftSettings {
            tick_ms: cluster.tick_ms,
            watch,
            controllers: cluster
                .nodes
                .iter()
                .filter(|n| n.voter == Voter::Controller)
                .map(|n| n.id)
                .collect(),
            abstain_ms,
        },
        raft_rx,
        out_tx,
        status.clone(),
        Box::new(move |m| sender.send(m)),
    )
    .map_err(|e| ControllerError::Core(format!("cannot start the raft thread: {e}")))?;

    let api_urls = cluster
        .nodes
        .iter()
        .map(|n| (n.id, n.api_url.clone()))
        .collect();
    tracing::info!(
        node = cluster.node_id,
        voter = ?me.voter,
        raft = %cluster.raft_listen,
        "node of the pair started; it follows until raft makes it the active one"
    );
    Ok(Started {
        replicated: Replicated {
            node_id: cluster.node_id,
            watch,
            api_urls,
            to_raft,
            from_raft: out_rx,
            raft_status: status.clone(),
            view: view.clone(),
            applied,
            written: journal.last_id(),
            snapshot: None,
            membership: Vec::new(),
        },
        info: ClusterInfo {
            config: cluster.clone(),
            raft: status,
            view,
        },
        transport,
    })
}
