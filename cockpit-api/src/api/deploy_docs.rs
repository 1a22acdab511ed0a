//! The shapes of a deployment's diff (`POST /api/v1/deploy?dryRun=true`, and the `details`
//! of a 409), for the OpenAPI document: the cockpit passes the controller's JSON through as
//! it is (`ordo_model::deploy::Diff`).

use serde::Serialize;
use utoipa::ToSchema;

/// Objects a deployment removes, by kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removals {
    #[schema(required = false)]
    pub workflows: Vec<String>,
    #[schema(required = false)]
    pub agents: Vec<String>,
    #[schema(required = false)]
    pub locks: Vec<String>,
    #[schema(required = false)]
    pub boards: Vec<String>,
    /// Their planned orders that have not started are cancelled.
    #[schema(required = false)]
    pub schedules: Vec<String>,
    #[schema(required = false)]
    pub calendars: Vec<String>,
    /// `agent/subagent`: taken out of the agent (its director drains it).
    #[schema(required = false)]
    pub subagents: Vec<String>,
}

/// What a deployment adds, changes and removes, and the live orders of the workflows it
/// changes or removes.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployDiff {
    pub added: Vec<ItemChange>,
    pub changed: Vec<ItemChange>,
    pub removed: Vec<ItemChange>,
    pub affected: Vec<AffectedOrder>,
    /// Why the deployment cannot be made, forced or not.
    pub refused: Vec<String>,
}

/// One object added, changed or removed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemChange {
    /// `workflow`, `agent`, `lock`, `board`, `schedule` or `calendar`.
    pub kind: String,
    pub name: String,
    /// A workflow's version before (`fromVersion`) and after (`version`).
    #[schema(required = false)]
    pub from_version: Option<u64>,
    #[schema(required = false)]
    pub version: Option<u64>,
    /// What changed, when it is one value (`limit 2 → 1`).
    #[schema(required = false)]
    pub detail: Option<String>,
}

/// A live order of a changed or removed workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct AffectedOrder {
    pub order: String,
    pub workflow: String,
    /// The version it runs on and keeps running on.
    pub version: u64,
    /// Where it stands (`2/try/0`).
    pub position: String,
    pub state: String,
    /// Why the deployment would strand it: its position is gone from the new version or
    /// holds another kind of instruction.
    #[schema(required = false)]
    pub stranded: Option<String>,
}
