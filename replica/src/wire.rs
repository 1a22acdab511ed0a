//! Raft messages between nodes: our own postcard format, so that no protobuf is ever parsed
//! from a peer (raft-rs 0.7's protobuf 2 carries RUSTSEC-2024-0437).
//!
//! A message is the postcard encoding of
//!
//! ```text
//! enum Envelope { V1(MessageV1) }
//! struct MessageV1 {
//!     kind: Kind, to: u64, from: u64, term: u64, log_term: u64, index: u64,
//!     entries: [EntryV1], commit: u64, commit_term: u64,
//!     snapshot: Option<bytes>,          the snapshot's bytes (crate::snapshot), metadata inside
//!     request_snapshot: u64, reject: bool, reject_hint: u64, context: bytes,
//!     deprecated_priority: u64, priority: i64,
//! }
//! struct EntryV1 { kind: EntryKind, term: u64, index: u64, data: bytes, context: bytes }
//! enum Kind { Append, AppendResponse, RequestVote, RequestVoteResponse, Snapshot, Heartbeat,
//!             HeartbeatResponse, TransferLeader, TimeoutNow, ReadIndex, ReadIndexResponse,
//!             RequestPreVote, RequestPreVoteResponse }
//! ```
//!
//! The fields are raft's `eraftpb::Message` fields of the same names. Raft's node-local
//! message types (and proposals, which only the leader makes here) have no `Kind` and never
//! travel. Enums are append-only; an envelope variant beyond `V1` was written by a newer
//! version and is refused as such. The transport bounds a message's bytes; on top of that a
//! message is refused when an entry is larger than the log takes (`entry_bytes_max`) or its
//! snapshot is larger than `snapshot_bytes_max`, of a newer format, damaged, or its bytes
//! disagree with its metadata.

use raft::eraftpb;
use serde::{Deserialize, Serialize};

use crate::{
    codec::{ByteBuf, SealError, variant_tag},
    error::{ReplicaError, Result},
    record::EntryKind,
    snapshot,
};

/// Format version of the messages this build sends.
pub const MESSAGE_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    Append,
    AppendResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    Heartbeat,
    HeartbeatResponse,
    TransferLeader,
    TimeoutNow,
    ReadIndex,
    ReadIndexResponse,
    RequestPreVote,
    RequestPreVoteResponse,
}

impl Kind {
    fn from_raft(t: eraftpb::MessageType) -> Option<Kind> {
        use eraftpb::MessageType as T;
        Some(match t {
            T::MsgAppend => Kind::Append,
            T::MsgAppendResponse => Kind::AppendResponse,
            T::MsgRequestVote => Kind::RequestVote,
            T::MsgRequestVoteResponse => Kind::RequestVoteResponse,
            T::MsgSnapshot => Kind::Snapshot,
            T::MsgHeartbeat => Kind::Heartbeat,
            T::MsgHeartbeatResponse => Kind::HeartbeatResponse,
            T::MsgTransferLeader => Kind::TransferLeader,
            T::MsgTimeoutNow => Kind::TimeoutNow,
            T::MsgReadIndex => Kind::ReadIndex,
            T::MsgReadIndexResp => Kind::ReadIndexResponse,
            T::MsgRequestPreVote => Kind::RequestPreVote,
            T::MsgRequestPreVoteResponse => Kind::RequestPreVoteResponse,
            T::MsgHup
            | T::MsgBeat
            | T::MsgPropose
            | T::MsgUnreachable
            | T::MsgSnapStatus
            | T::MsgCheckQuorum => return None,
        })
    }

    fn to_raft(self) -> eraftpb::MessageType {
        use eraftpb::MessageType as T;
        match self {
            Kind::Append => T::MsgAppend,
            Kind::AppendResponse => T::MsgAppendResponse,
            Kind::RequestVote => T::MsgRequestVote,
            Kind::RequestVoteResponse => T::MsgRequestVoteResponse,
            Kind::Snapshot => T::MsgSnapshot,
            Kind::Heartbeat => T::MsgHeartbeat,
            Kind::HeartbeatResponse => T::MsgHeartbeatResponse,
            Kind::TransferLeader => T::MsgTransferLeader,
            Kind::TimeoutNow => T::MsgTimeoutNow,
            Kind::ReadIndex => T::MsgReadIndex,
            Kind::ReadIndexResponse => T::MsgReadIndexResp,
            Kind::RequestPreVote => T::MsgRequestPreVote,
            Kind::RequestPreVoteResponse => T::MsgRequestPreVoteResponse,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EntryV1 {
    kind: EntryKind,
    term: u64,
    index: u64,
    data: ByteBuf,
    context: ByteBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MessageV1 {
    kind: Kind,
    to: u64,
    from: u64,
    term: u64,
    log_term: u64,
    index: u64,
    entries: Vec<EntryV1>,
    commit: u64,
    commit_term: u64,
    snapshot: Option<ByteBuf>,
    request_snapshot: u64,
    reject: bool,
    reject_hint: u64,
    context: ByteBuf,
    deprecated_priority: u64,
    priority: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Envelope {
    V1(MessageV1),
}

/// A raft message between two nodes, in our own format (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message(MessageV1);

/// What a node accepts in a message from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Largest entry (data plus context), in bytes.
    pub entry_bytes_max: u32,
    /// Largest snapshot, in bytes.
    pub snapshot_bytes_max: u64,
}

impl Message {
    /// The node the message is for.
    pub fn to(&self) -> u64 {
        self.0.to
    }

    /// The node that sent it.
    pub fn from(&self) -> u64 {
        self.0.from
    }

    /// The sender's term.
    pub fn term(&self) -> u64 {
        self.0.term
    }

    /// Whether it carries a snapshot (its delivery, or failure, is reported back to the
    /// sending node with `Node::report_snapshot`).
    pub fn is_snapshot(&self) -> bool {
        self.0.kind == Kind::Snapshot
    }

    /// Entries it carries.
    pub fn entry_count(&self) -> usize {
        self.0.entries.len()
    }

    /// Whether it asks for a vote (a pre-vote or a vote).
    pub fn is_vote_request(&self) -> bool {
        matches!(self.0.kind, Kind::RequestVote | Kind::RequestPreVote)
    }

    /// Raft's name of its type, for logs.
    pub fn kind_name(&self) -> &'static str {
        match self.0.kind {
            Kind::Append => "MsgAppend",
            Kind::AppendResponse => "MsgAppendResponse",
            Kind::RequestVote => "MsgRequestVote",
            Kind::RequestVoteResponse => "MsgRequestVoteResponse",
            Kind::Snapshot => "MsgSnapshot",
            Kind::Heartbeat => "MsgHeartbeat",
            Kind::HeartbeatResponse => "MsgHeartbeatResponse",
            Kind::TransferLeader => "MsgTransferLeader",
            Kind::TimeoutNow => "MsgTimeoutNow",
            Kind::ReadIndex => "MsgReadIndex",
            Kind::ReadIndexResponse => "MsgReadIndexResp",
            Kind::RequestPreVote => "MsgRequestPreVote",
            Kind::RequestPreVoteResponse => "MsgRequestPreVoteResponse",
        }
    }

    /// The message's bytes for the transport.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(&Envelope::V1(self.0.clone())).expect("encoding to a Vec cannot fail")
    }

    /// A message from the transport's bytes (the transport bounds their length). Its
    /// contents are checked when the node steps it.
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        match postcard::from_bytes::<Envelope>(bytes) {
            Ok(Envelope::V1(m)) => Ok(Message(m)),
            Err(e) => match variant_tag(bytes) {
                Some(tag) if tag >= MESSAGE_FORMAT_VERSION => {
                    Err(ReplicaError::UnsupportedVersion {
                        what: "raft message".to_string(),
                        found: tag + 1,
                        supported: MESSAGE_FORMAT_VERSION,
                    })
                }
                _ => Err(ReplicaError::BadMessage(format!(
                    "{} bytes do not decode as a raft message: {e}",
                    bytes.len()
                ))),
            },
        }
    }

    /// Raft's message for one it wants to send. Raft sends only the kinds that have a wire
    /// form; anything else is a bug, refused here.
    pub(crate) fn from_raft(m: eraftpb::Message) -> Result<Message> {
        let Some(kind) = Kind::from_raft(m.get_msg_type()) else {
            return Err(ReplicaError::Invalid(format!(
                "raft wants to send a {:?} to node {}, which never leaves a node",
                m.get_msg_type(),
                m.to
            )));
        };
        let entries = m
            .entries
            .iter()
            .map(|e| EntryV1 {
                kind: e.get_entry_type().into(),
                term: e.term,
                index: e.index,
                data: ByteBuf(e.data.to_vec()),
                context: ByteBuf(e.context.to_vec()),
            })
            .collect();
        let snapshot = m
            .snapshot
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| ByteBuf(s.data.to_vec()));
        Ok(Message(MessageV1 {
            kind,
            to: m.to,
            from: m.from,
            term: m.term,
            log_term: m.log_term,
            index: m.index,
            entries,
            commit: m.commit,
            commit_term: m.commit_term,
            snapshot,
            request_snapshot: m.request_snapshot,
            reject: m.reject,
            reject_hint: m.reject_hint,
            context: ByteBuf(m.context.to_vec()),
            deprecated_priority: m.deprecated_priority,
            priority: m.priority,
        }))
    }

    /// Raft's message for one received, after checking it against `limits`.
    pub(crate) fn into_raft(self, limits: &MessageLimits) -> Result<eraftpb::Message> {
        let m = self.0;
        let from = m.from;
        let bad = |reason: String| {
            ReplicaError::BadMessage(format!("{:?} from node {from}: {reason}", m.kind))
        };
        for e in &m.entries {
            let bytes = (e.data.0.len() + e.context.0.len()) as u64;
            if bytes > u64::from(limits.entry_bytes_max) {
                return Err(bad(format!(
                    "the entry at index {} has {bytes} bytes, more than entry_bytes_max = {}",
                    e.index, limits.entry_bytes_max
                )));
            }
        }
        let mut out = eraftpb::Message::default();
        if let Some(bytes) = m.snapshot {
            if bytes.0.len() as u64 > limits.snapshot_bytes_max {
                return Err(bad(format!(
                    "the snapshot has {} bytes, more than snapshot_bytes_max = {}",
                    bytes.0.len(),
                    limits.snapshot_bytes_max
                )));
            }
            let snapshot = snapshot::to_raft(bytes.0).map_err(|e| match e {
                SealError::Newer { found, supported } => ReplicaError::UnsupportedVersion {
                    what: format!("the snapshot from node {from}"),
                    found,
                    supported,
                },
                SealError::Damaged(reason) => bad(format!("its snapshot: {reason}")),
            })?;
            out.set_snapshot(snapshot);
        } else if m.kind == Kind::Snapshot {
            return Err(bad("it carries no snapshot".to_string()));
        }
        out.set_msg_type(m.kind.to_raft());
        out.to = m.to;
        out.from = m.from;
        out.term = m.term;
        out.log_term = m.log_term;
        out.index = m.index;
        out.set_entries(
            m.entries
                .into_iter()
                .map(|e| {
                    let mut entry = eraftpb::Entry::default();
                    entry.set_entry_type(e.kind.into());
                    entry.term = e.term;
                    entry.index = e.index;
                    entry.data = e.data.0.into();
                    entry.context = e.context.0.into();
                    entry
                })
                .collect(),
        );
        out.commit = m.commit;
        out.commit_term = m.commit_term;
        out.request_snapshot = m.request_snapshot;
        out.reject = m.reject;
        out.reject_hint = m.reject_hint;
        out.context = m.context.0.into();
        out.deprecated_priority = m.deprecated_priority;
        out.priority = m.priority;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Membership;

    const LIMITS: MessageLimits = MessageLimits {
        entry_bytes_max: 16,
        snapshot_bytes_max: 1 << 20,
    };

    fn append() -> eraftpb::Message {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(eraftpb::MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = 3;
        m.log_term = 2;
        m.index = 10;
        m.commit = 9;
        let mut e = eraftpb::Entry::default();
        e.term = 3;
        e.index = 11;
        e.data = b"batch".to_vec().into();
        m.set_entries(vec![e].into());
        m
    }

    #[test]
    fn a_message_survives_the_wire() {
        let m = append();
        let wire = Message::from_raft(m.clone()).unwrap();
        let bytes = wire.encode();
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back, wire);
        assert_eq!((back.to(), back.from(), back.term()), (2, 1, 3));
        assert_eq!(back.into_raft(&LIMITS).unwrap(), m);
    }

    #[test]
    fn golden_bytes_of_a_heartbeat() {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(eraftpb::MessageType::MsgHeartbeat);
        m.to = 2;
        m.from = 1;
        m.term = 4;
        m.commit = 7;
        let bytes = Message::from_raft(m).unwrap().encode();
        assert_eq!(bytes, [0, 5, 2, 1, 4, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_snapshot_travels_with_its_metadata_and_newer_ones_are_refused() {
        let bytes = snapshot::encode(20, 3, &Membership::voters([1, 2, 3]), b"state");
        let mut m = eraftpb::Message::default();
        m.set_msg_type(eraftpb::MessageType::MsgSnapshot);
        m.to = 3;
        m.from = 1;
        m.set_snapshot(snapshot::to_raft(bytes.clone()).unwrap());
        let wire = Message::from_raft(m.clone()).unwrap();
        assert!(wire.is_snapshot());
        assert_eq!(
            Message::decode(&wire.encode())
                .unwrap()
                .into_raft(&LIMITS)
                .unwrap(),
            m
        );

        let mut newer = bytes;
        newer[8] = 2;
        let mut m = wire.clone();
        m.0.snapshot = Some(ByteBuf(newer));
        let e = m.into_raft(&LIMITS).unwrap_err();
        assert!(
            matches!(
                e,
                ReplicaError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("version 2") && e.to_string().contains("version 1"));
    }

    #[test]
    fn oversized_entries_and_unknown_envelopes_are_refused() {
        let mut m = append();
        m.mut_entries()[0].data = vec![0u8; 17].into();
        let e = Message::from_raft(m)
            .unwrap()
            .into_raft(&LIMITS)
            .unwrap_err();
        assert!(e.to_string().contains("entry_bytes_max = 16"), "{e}");

        let mut bytes = Message::from_raft(append()).unwrap().encode();
        bytes[0] = 1;
        assert!(matches!(
            Message::decode(&bytes),
            Err(ReplicaError::UnsupportedVersion { found: 2, .. })
        ));
        assert!(matches!(
            Message::decode(&[0, 99]),
            Err(ReplicaError::BadMessage(_))
        ));
    }

    #[test]
    fn local_messages_have_no_wire_form() {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(eraftpb::MessageType::MsgPropose);
        assert!(Message::from_raft(m).is_err());
    }
}
