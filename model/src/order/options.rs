//! What an order and a workflow carry beyond the [`Order`](super::Order) and
//! [`Workflow`](crate::inventory::Workflow) structs: an order's priority and whether it is
//! removed once it has ended (JS7's `priority` and `deleteWhenTerminated`).
//!
//! # Why a side map and not a field
//!
//! `Order` and `Workflow` are postcard-positional inside journaled events (`Attached`,
//! `WorkflowDeployed`), the `AttachOrder` wire command and snapshots: a field cannot be
//! added to them. So these settings travel in events of their own, appended at the end of
//! their enums — [`OrderEvent::OptionsSet`](super::OrderEvent::OptionsSet) right after
//! `Added` (the controller) and after `Attached` (an agent, from the
//! `AttachOrderWithOptions` command), [`ItemEvent::WorkflowSettings`](super::ItemEvent) at
//! deployment — and are folded into [`Extras`], a part of the [`World`](super::World) that
//! its own serde leaves out. The states that snapshot a world (the controller's `State`, the
//! agent's `AgentState`) write it after everything else and only when it is not empty, so a
//! snapshot written before it existed reads as "no extras", and a world without any writes
//! the very bytes it wrote before. Orders and workflows without an entry have the defaults:
//! priority 0, removal as their workflow says, and workflows keep ended orders.

use crate::ids::{AgentId, OrderId, WorkflowName};
use crate::inventory::{ClusterSettings, JobSettingsMap};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An order's options set when it is added. Append-only like the events that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderOptions {
    /// Higher first in lock queues and in the queues of jobs at their `parallelism`; equal
    /// priorities keep their arrival order.
    pub priority: i32,
    /// Remove the order once it has finished or was cancelled; `None`: as its workflow says.
    pub delete_when_terminated: Option<bool>,
}

impl OrderOptions {
    /// Whether these are the options of an order that has none set.
    pub fn is_default(&self) -> bool {
        *self == OrderOptions::default()
    }
}

/// A workflow's settings that are not part of its versioned definition: they apply to the
/// orders added after their deployment. Append-only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WorkflowSettings {
    /// Remove its orders once they have finished or were cancelled (unless an order says
    /// otherwise). JS7's default is to keep them.
    pub delete_when_terminated: bool,
    /// The types and `final` values of its parameters, checked and set when an order is
    /// added (only parameters that have one).
    pub parameters: BTreeMap<String, ParameterRule>,
    /// Let an order pass arguments the workflow does not declare as parameters (JS7's
    /// `allowUndeclared`). Only a workflow with parameters refuses them: one without any
    /// takes every argument.
    pub allow_undeclared: bool,
}

/// What a parameter's value must be, or the expression that sets it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ParameterRule {
    /// The value's type; `None`: any.
    pub kind: Option<ParameterType>,
    /// A `final` parameter: evaluated when the order is added, over the order's other
    /// variables; an order may not pass it.
    pub final_value: Option<crate::expr::Expr>,
}

/// The type of a parameter's value (JS7: `String`, `Number`, `Boolean`, `List`, `Map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParameterType {
    String,
    Number,
    Boolean,
    List,
    Map,
}

impl ParameterType {
    /// The YAML word.
    pub fn word(self) -> &'static str {
        match self {
            ParameterType::String => "string",
            ParameterType::Number => "number",
            ParameterType::Boolean => "boolean",
            ParameterType::List => "list",
            ParameterType::Map => "map",
        }
    }

    /// The type of a YAML word.
    pub fn from_word(word: &str) -> Option<ParameterType> {
        [
            ParameterType::String,
            ParameterType::Number,
            ParameterType::Boolean,
            ParameterType::List,
            ParameterType::Map,
        ]
        .into_iter()
        .find(|t| t.word() == word)
    }

    /// Whether `value` is of this type.
    pub fn holds(self, value: &crate::value::Value) -> bool {
        use crate::value::Value;
        matches!(
            (self, value),
            (ParameterType::String, Value::String(_))
                | (ParameterType::Number, Value::Number(_))
                | (ParameterType::Boolean, Value::Bool(_))
                | (ParameterType::List, Value::List(_))
                | (ParameterType::Map, Value::Map(_))
        )
    }
}

/// The part of a world folded from `OptionsSet` and `WorkflowSettings`. Append-only: it is
/// the last thing in the snapshots that hold it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Extras {
    /// Orders with options set (never the defaults).
    pub orders: BTreeMap<OrderId, OrderOptions>,
    /// Workflows with settings (never the defaults).
    pub workflows: BTreeMap<WorkflowName, WorkflowSettings>,
    /// Agent clusters with settings (never the defaults), from `AgentSettings`. Added after
    /// the fields above: a snapshot written before it ends before it.
    #[serde(default, deserialize_with = "trailing_or_default")]
    pub agents: BTreeMap<AgentId, ClusterSettings>,
    /// The URLs of agents' backup directors, from `AgentBackupDirector` (the controller's
    /// world only). Not part of this struct's encoding: the snapshots that hold extras have
    /// fields after them, so the controller's `State` writes these as a field of its own.
    #[serde(skip)]
    pub backup_directors: BTreeMap<AgentId, String>,
    /// Jobs' settings (never the defaults), by workflow, from `JobSettings`. Not part of this
    /// struct's encoding either: the states that snapshot a world write them as a trailing
    /// field of their own.
    #[serde(skip)]
    pub jobs: BTreeMap<WorkflowName, JobSettingsMap>,
    /// Agent clusters' subagent priorities given as expressions, from `AgentPriorities` (the
    /// controller's world only). Not part of this struct's encoding, like
    /// [`Extras::backup_directors`]: the controller's `State` writes them after those.
    #[serde(skip)]
    pub priorities: BTreeMap<AgentId, crate::priority::Priorities>,
}

impl Extras {
    /// Whether the fields of this struct's own encoding are all empty (the ones written
    /// apart, `backup_directors` and `jobs`, do not count).
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.workflows.is_empty() && self.agents.is_empty()
    }
}

/// Reads a field added at the end of a postcard-encoded value that is the last thing in its
/// bytes (a snapshot's trailing field, a record's last variant field), or its default when
/// the bytes end before it (written by a build that did not have it). Human-readable formats
/// name their fields, so there an error stays an error. Use with
/// `#[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]`.
pub fn trailing_or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let readable = d.is_human_readable();
    match T::deserialize(d) {
        Ok(t) => Ok(t),
        Err(e) if readable => Err(e),
        Err(_) => Ok(T::default()),
    }
}

/// Reads a trailing [`Extras`] of a snapshot, or none when the snapshot ends before it
/// (postcard is positional: a snapshot written without extras has no bytes for them). Use
/// with `#[serde(default, deserialize_with = "extras_or_empty")]` on the last field.
pub fn extras_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Extras, D::Error> {
    let readable = d.is_human_readable();
    match Extras::deserialize(d) {
        Ok(extras) => Ok(extras),
        Err(e) if readable => Err(e),
        Err(_) => Ok(Extras::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Extras` as written before it had `agents`.
    #[derive(Serialize)]
    struct ExtrasBeforeAgents {
        orders: BTreeMap<OrderId, OrderOptions>,
        workflows: BTreeMap<WorkflowName, WorkflowSettings>,
    }

    /// Extras written before cluster settings existed read with none and keep what they had;
    /// extras with cluster settings keep them.
    #[test]
    fn extras_written_before_cluster_settings_read_with_none() {
        let workflow = WorkflowName::new("w").unwrap();
        let settings = WorkflowSettings {
            delete_when_terminated: true,
            ..WorkflowSettings::default()
        };
        let old = ExtrasBeforeAgents {
            orders: BTreeMap::new(),
            workflows: BTreeMap::from([(workflow.clone(), settings.clone())]),
        };
        let bytes = postcard::to_allocvec(&old).unwrap();
        let read: Extras = postcard::from_bytes(&bytes).expect("old extras read");
        assert_eq!(read.workflows.get(&workflow), Some(&settings));
        assert!(read.agents.is_empty());

        let mut new = read.clone();
        let agent = AgentId::new("cluster").unwrap();
        new.agents.insert(
            agent.clone(),
            ClusterSettings {
                lease_timeout: crate::time::DurationMs(2_000),
                process_limits: BTreeMap::from([(AgentId::new("s1").unwrap(), 3)]),
            },
        );
        let bytes = postcard::to_allocvec(&new).unwrap();
        let back: Extras = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, new);
        assert_eq!(
            back.agents[&agent].process_limit(&AgentId::new("s1").unwrap()),
            3
        );
        assert_eq!(
            back.agents[&agent].process_limit(&AgentId::new("s2").unwrap()),
            crate::inventory::SUBAGENT_PROCESS_LIMIT_DEFAULT
        );
    }
}
