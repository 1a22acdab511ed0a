//! The records of the agent's journal.
//!
//! # Format
//!
//! The agent's journal is an `ordo-journal` directory (`<data_dir>/journal`). The data of each
//! journal record is the postcard encoding of one [`Record`]; the journal id of the record is
//! its id. [`Record`] is **append-only**: new variants go at the end, no variant is reordered,
//! removed or given new fields, so every journal written by an older version keeps loading.
//! (A record is the whole of its bytes, so a field may be added at the very end of the last
//! variant's fields when it is read with [`ordo_model::order::trailing_or_default`] and left out while it holds
//! its default: `AgentObject`'s `priorities`.)
//! The `format` of [`Record::Created`] says which version wrote the run: format 2 journals a
//! job's start (`ProcessingStarted`, pgid 0) before its spawn and may hold
//! `ProcessingWithdrawn`; format 1 journaled `ProcessingStarted` with the pgid after the spawn.
//!
//! | record | when | meaning in the fold |
//! |---|---|---|
//! | `Created { format, agent_id, run_id }` | first record; again after a reset | a new run: everything before is forgotten; `run_id` is random |
//! | `Dedicated { cluster_id }` | first accepted `Couple` | the agent belongs to this controller cluster |
//! | `Term { term }` | a `Couple` or command with a higher term, before it is accepted | the highest term seen (fencing) |
//! | `Command { seq, command }` | a controller command, in the same batch as its events, before its `Ack` | nothing (kept for the record) |
//! | `Event { ts, body }` | every event the agent reports; a job's `ProcessingStarted` is durable before its process is spawned | the outbox: the journal id **is** the agent event id; order events change the agent's world |
//! | `Process { order_id, attempt, pgid, start_time_ticks }` | a job was spawned (after its `ProcessingStarted`) | what a restart needs to kill a surviving process group |
//! | `Released { until }` | the controller's `Release` | events with ids up to `until` may be deleted |
//! | `Leased { taken_until }` | a director renews its subagents' lease horizon | the highest horizon: a restarted director takes their jobs for lost only after it |
//! | `SubagentJoined { subagent }` | a director's session with a subagent is up (it joins the ring at its listed place) | nothing (kept for the record) |
//! | `SubagentLeft { subagent, reason }` | a director's live session with a subagent ended (the ring skips it) | nothing (kept for the record) |
//! | `AgentObject { agent, settings, priorities }` | a director of a director pair got its inventory object (and its subagents' priority expressions, when it has some) from the controller | nothing; a passive node of the pair keeps it in `<data_dir>/cluster`, so that it directs the same subagents when it takes over |

use ordo_model::ids::{AgentId, OrderId};
use ordo_model::order::AgentCommand;
use ordo_model::time::TimeMs;
use ordo_model::wire::AgentEventBody;
use serde::{Deserialize, Serialize};

/// The format of the records this build writes (carried by [`Record::Created`]).
pub const RECORD_FORMAT: u32 = 2;

/// One record of the agent's journal. Append-only (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Created {
        format: u32,
        agent_id: AgentId,
        run_id: u128,
    },
    Dedicated {
        cluster_id: String,
    },
    Term {
        term: u64,
    },
    Command {
        seq: u64,
        command: AgentCommand,
    },
    Event {
        ts: TimeMs,
        body: AgentEventBody,
    },
    Process {
        order_id: OrderId,
        attempt: u32,
        pgid: u32,
        start_time_ticks: u64,
    },
    Released {
        until: u64,
    },
    /// A director's lease horizon: no subagent holds a job of this agent beyond `taken_until`
    /// (so a restarted director waits until then before it takes them for lost).
    Leased {
        taken_until: TimeMs,
    },
    /// A director's subagent became live: it takes jobs again (in the ring, at its place).
    SubagentJoined {
        subagent: AgentId,
    },
    /// A director's live subagent is gone (its session ended): no job goes to it.
    SubagentLeft {
        subagent: AgentId,
        reason: String,
    },
    /// A director of a director pair got its inventory object (`ToAgent::Cluster`): the
    /// passive nodes keep it for a takeover.
    AgentObject {
        agent: Box<ordo_model::inventory::Agent>,
        settings: ordo_model::inventory::ClusterSettings,
        /// Its subagents' priority expressions (`ToAgent::ClusterWithPriorities`). Added
        /// later: written only when there are some (so the record keeps its bytes without),
        /// read as none from a record that ends before it.
        #[serde(
            default,
            deserialize_with = "ordo_model::order::trailing_or_default",
            skip_serializing_if = "std::collections::BTreeMap::is_empty"
        )]
        priorities: ordo_model::priority::Priorities,
    },
}

impl Record {
    /// The postcard bytes of the record.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Reads a record; the bytes must hold exactly one.
    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        let (record, rest) =
            postcard::take_from_bytes::<Record>(bytes).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the record", rest.len()));
        }
        Ok(record)
    }

    /// The record's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Record::Created { .. } => "Created",
            Record::Dedicated { .. } => "Dedicated",
            Record::Term { .. } => "Term",
            Record::Command { .. } => "Command",
            Record::Event { .. } => "Event",
            Record::Process { .. } => "Process",
            Record::Released { .. } => "Released",
            Record::Leased { .. } => "Leased",
            Record::SubagentJoined { .. } => "SubagentJoined",
            Record::SubagentLeft { .. } => "SubagentLeft",
            Record::AgentObject { .. } => "AgentObject",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::order::{KeyedEvent, OrderEvent};
    use ordo_model::wire::Stream;

    #[test]
    fn records_round_trip() {
        let order = OrderId::new("o1").unwrap();
        let records = vec![
            Record::Created {
                format: RECORD_FORMAT,
                agent_id: AgentId::new("a1").unwrap(),
                run_id: u128::MAX - 7,
            },
            Record::Dedicated {
                cluster_id: "main".into(),
            },
            Record::Term { term: 3 },
            Record::Event {
                ts: TimeMs(5),
                body: AgentEventBody::Order(KeyedEvent::order(
                    &order,
                    OrderEvent::ProcessingStarted {
                        at: TimeMs(5),
                        pgid: 77,
                    },
                )),
            },
            Record::Event {
                ts: TimeMs(6),
                body: AgentEventBody::Output {
                    order_id: order.clone(),
                    stream: Stream::Stderr,
                    chunk: b"x".to_vec(),
                },
            },
            Record::Process {
                order_id: order,
                attempt: 2,
                pgid: 77,
                start_time_ticks: 123,
            },
            Record::Released { until: 9 },
            Record::Leased {
                taken_until: TimeMs(12),
            },
            Record::SubagentJoined {
                subagent: AgentId::new("s1").unwrap(),
            },
            Record::SubagentLeft {
                subagent: AgentId::new("s1").unwrap(),
                reason: "closed".into(),
            },
            Record::AgentObject {
                agent: Box::new(ordo_model::inventory::Agent {
                    id: AgentId::new("a1").unwrap(),
                    url: "wss://a:1".into(),
                    certificate_name: None,
                    subagents: vec![ordo_model::inventory::Subagent {
                        id: AgentId::new("s1").unwrap(),
                        url: "wss://s1:1".into(),
                        priority: 2,
                    }],
                    selection: ordo_model::inventory::Selection::Ring,
                }),
                settings: ordo_model::inventory::ClusterSettings::default(),
                priorities: Default::default(),
            },
            Record::AgentObject {
                agent: Box::new(ordo_model::inventory::Agent {
                    id: AgentId::new("a1").unwrap(),
                    url: "wss://a:1".into(),
                    certificate_name: None,
                    subagents: Vec::new(),
                    selection: ordo_model::inventory::Selection::Priority,
                }),
                settings: ordo_model::inventory::ClusterSettings::default(),
                priorities: [(
                    AgentId::new("s1").unwrap(),
                    ordo_model::expr::parse("10 - $processes").unwrap(),
                )]
                .into(),
            },
        ];
        for r in records {
            let bytes = r.encode().unwrap();
            assert_eq!(Record::decode(&bytes).unwrap(), r);
        }
    }

    /// An `AgentObject` without priority expressions has the bytes it had before they
    /// existed, and one written then reads with none.
    #[test]
    fn an_agent_object_without_priorities_keeps_its_bytes() {
        #[derive(Serialize)]
        enum Before {
            _0,
            _1,
            _2,
            _3,
            _4,
            _5,
            _6,
            _7,
            _8,
            _9,
            AgentObject {
                agent: Box<ordo_model::inventory::Agent>,
                settings: ordo_model::inventory::ClusterSettings,
            },
        }
        let agent = Box::new(ordo_model::inventory::Agent {
            id: AgentId::new("a1").unwrap(),
            url: "wss://a:1".into(),
            certificate_name: None,
            subagents: Vec::new(),
            selection: ordo_model::inventory::Selection::Priority,
        });
        let settings = ordo_model::inventory::ClusterSettings::default();
        let old = postcard::to_allocvec(&Before::AgentObject {
            agent: agent.clone(),
            settings: settings.clone(),
        })
        .unwrap();
        let now = Record::AgentObject {
            agent,
            settings,
            priorities: Default::default(),
        };
        assert_eq!(now.encode().unwrap(), old);
        assert_eq!(Record::decode(&old).unwrap(), now);
    }

    #[test]
    fn variant_tags_are_fixed() {
        // The first byte is the variant index: it must never change.
        let tag = |r: Record| r.encode().unwrap()[0];
        assert_eq!(tag(Record::Term { term: 1 }), 2);
        assert_eq!(tag(Record::Released { until: 1 }), 6);
        let s1 = AgentId::new("s1").unwrap();
        assert_eq!(tag(Record::SubagentJoined { subagent: s1 }), 8);
        let mut bytes = Record::Term { term: 1 }.encode().unwrap();
        bytes.push(0);
        assert!(
            Record::decode(&bytes)
                .unwrap_err()
                .contains("after the record")
        );
        assert!(Record::decode(&[200]).is_err());
    }
}
