//! The replicated pair: the raft thread ([`raft`]), the data of an entry ([`batch`]), the
//! transport between the nodes ([`transport`]) and how a node starts ([`start`]).

pub mod batch;
pub mod raft;
pub mod start;
pub mod transport;
