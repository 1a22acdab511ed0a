//! Agents that join by themselves and subagents taken out: join tokens, registrations and the
//! removal of a subagent, each journaled through the deployment path (the agent object as
//! YAML would deploy it) together with its [`JoinEvent`].
//!
//! - A join token is issued by the API with its random text; only its hash reaches the
//!   machine and the journal ([`ordo_api::join`]).
//! - A registration whose token [`Joins::check`](ordo_api::join::Joins::check) accepts (the
//!   API has pinged the registering agent back at its `/meta` before) deploys the token's
//!   agent with the subagent added, or a standalone agent, and journals the token's use in
//!   the same batch: a token works once, also across a restart or a failover.
//! - A removal deploys the agent without the subagent (and without its process limit); the
//!   director drains it: no new job, its running jobs end, then its session. With `kill`, the
//!   director is told once the deployment is committed to kill its jobs there, which then
//!   count as lost (`Disrupted(ProcessLost)`): a restartable job starts again on another
//!   subagent. A director that does not hear it (not connected then) drains instead.

use super::{DeployReply, Effect, LinkMsg, Machine, Refused, Reply, Token};
use crate::record::Body;
use ordo_api::join::{JoinEvent, JoinRefused};
use ordo_model::ids::AgentId;
use ordo_model::inventory::{
    Agent, ClusterSettings, Inventory, SUBAGENT_PROCESS_LIMIT_DEFAULT, Selection, Subagent,
};
use ordo_model::time::TimeMs;

/// The longest URL a registration may name, in bytes.
pub const REGISTER_URL_BYTES_MAX: usize = 2048;

/// A registration the API checked the agent's `/meta` for.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The SHA-256 of the join token presented.
    pub hash: String,
    /// The registering agent's id (a subagent's, when the token names an agent).
    pub id: AgentId,
    /// Its `wss://` URL.
    pub url: String,
    /// A subagent's priority (for `selection: priority`).
    pub priority: i32,
    /// A subagent's process limit, when not the default.
    pub process_limit: Option<u32>,
}

/// Why a join token, a registration or a removal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentsRefused {
    #[error(transparent)]
    Token(JoinRefused),
    #[error("agent {0} is not deployed")]
    UnknownAgent(AgentId),
    #[error("{subagent} is not a subagent of {agent}")]
    UnknownSubagent { agent: AgentId, subagent: AgentId },
    #[error("{0}")]
    Invalid(String),
}

impl AgentsRefused {
    /// Whether the same request can never succeed (a registration stops retrying).
    pub fn is_final(&self) -> bool {
        match self {
            AgentsRefused::Token(t) => t.is_final(),
            _ => true,
        }
    }
}

fn refused(e: AgentsRefused) -> Refused {
    Refused::Agents(e)
}

/// Whether `url` may be an agent's: `wss://host…`, bounded.
pub fn check_url(url: &str) -> Result<(), AgentsRefused> {
    if url.len() > REGISTER_URL_BYTES_MAX {
        return Err(AgentsRefused::Invalid(format!(
            "the URL is longer than {REGISTER_URL_BYTES_MAX} bytes"
        )));
    }
    match url.strip_prefix("wss://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(AgentsRefused::Invalid(format!(
            "the agent URL {url:?} must be wss://host:port"
        ))),
    }
}

impl Machine {
    /// Journals a join token's hash, valid `ttl_ms` from `now`; answered with [`Reply::Command`] once committed.
    pub fn issue_join_token(
        &mut self,
        token: Token,
        hash: String,
        agent: Option<AgentId>,
        ttl_ms: u64,
        now: TimeMs,
    ) {
        let ttl_ms = ttl_ms.min(ordo_api::join::JOIN_TOKEN_TTL_MS_MAX);
        let expires = TimeMs(
            now.0
                .saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
        );
        self.now = now;
        if let Some(r) = self.refuse_writes() {
            self.reply(token, Reply::Command(Err(r)));
            return;
        }
        let checked = match &agent {
            Some(a) if !self.state.world.agents.contains_key(a) => {
                Err(AgentsRefused::UnknownAgent(a.clone()))
            }
            _ => self
                .state
                .joins
                .may_issue(now)
                .map_err(AgentsRefused::Token),
        };
        if let Err(e) = checked {
            self.reply(token, Reply::Command(Err(refused(e))));
            return;
        }
        let last = self.emit(Body::Join(JoinEvent::Issued {
            hash,
            agent,
            expires,
        }));
        self.after_commit(Effect::Command(
            token,
            super::CommandReply {
                duplicate: false,
                last_event_id: last,
            },
        ));
    }

    /// Deploys a registered agent or subagent and journals its token's use; answered with
    /// [`Reply::Deploy`] once committed.
    pub fn register(&mut self, token: Token, r: &Registration, now: TimeMs) {
        self.now = now;
        if let Some(e) = self.refuse_writes() {
            self.reply(token, Reply::Deploy(Err(e)));
            return;
        }
        let planned = self.registered_object(r, now);
        let (inventory, agent, subagent) = match planned {
            Ok(p) => p,
            Err(e) => {
                self.reply(token, Reply::Deploy(Err(refused(e))));
                return;
            }
        };
        let used = Body::Join(JoinEvent::Used {
            hash: r.hash.clone(),
            agent,
            subagent,
        });
        self.commit_deploy(
            token,
            &inventory,
            &Default::default(),
            reply(),
            now,
            vec![used],
        );
    }

    /// The inventory a registration deploys, with the agent and the subagent it names.
    fn registered_object(
        &self,
        r: &Registration,
        now: TimeMs,
    ) -> Result<(Inventory, AgentId, Option<AgentId>), AgentsRefused> {
        let issued = self
            .state
            .joins
            .check(&r.hash, now)
            .map_err(AgentsRefused::Token)?;
        check_url(&r.url)?;
        let world = &self.state.world;
        let mut inventory = Inventory::default();
        match &issued.agent {
            Some(a) => {
                let mut agent = world
                    .agents
                    .get(a)
                    .cloned()
                    .ok_or_else(|| AgentsRefused::UnknownAgent(a.clone()))?;
                if r.id == *a {
                    return Err(AgentsRefused::Invalid(format!(
                        "a subagent of {a} cannot be {a} itself"
                    )));
                }
                if world.agents.contains_key(&r.id) {
                    return Err(AgentsRefused::Invalid(format!(
                        "{} is a deployed agent; a subagent needs an id of its own",
                        r.id
                    )));
                }
                let spec = Subagent {
                    id: r.id.clone(),
                    url: r.url.clone(),
                    priority: r.priority,
                };
                match agent.subagents.iter_mut().find(|s| s.id == r.id) {
                    Some(s) => *s = spec,
                    None => agent.subagents.push(spec),
                }
                let mut settings = world.cluster_settings(a);
                match r.process_limit {
                    Some(l) if l != SUBAGENT_PROCESS_LIMIT_DEFAULT => {
                        settings.process_limits.insert(r.id.clone(), l);
                    }
                    _ => {
                        settings.process_limits.remove(&r.id);
                    }
                }
                if r.process_limit == Some(0) {
                    return Err(AgentsRefused::Invalid(
                        "processLimit must be at least 1".into(),
                    ));
                }
                inventory.agent_settings.insert(a.clone(), settings);
                inventory.agents.push(agent);
                keep_beside(world, &mut inventory, a, &r.id);
                Ok((inventory, a.clone(), Some(r.id.clone())))
            }
            None => {
                if world.agents.contains_key(&r.id) {
                    return Err(AgentsRefused::Invalid(format!(
                        "agent {} is deployed already",
                        r.id
                    )));
                }
                let agent = Agent {
                    id: r.id.clone(),
                    url: r.url.clone(),
                    certificate_name: None,
                    subagents: Vec::new(),
                    selection: Selection::default(),
                };
                inventory
                    .agent_settings
                    .insert(r.id.clone(), ClusterSettings::default());
                inventory.agents.push(agent);
                Ok((inventory, r.id.clone(), None))
            }
        }
    }

    /// Deploys `agent` without `subagent`; with `kill`, tells the director to kill its jobs
    /// there once committed. Answered with [`Reply::Deploy`].
    pub fn remove_subagent(
        &mut self,
        token: Token,
        agent: &AgentId,
        subagent: &AgentId,
        kill: bool,
        now: TimeMs,
    ) {
        self.now = now;
        if let Some(e) = self.refuse_writes() {
            self.reply(token, Reply::Deploy(Err(e)));
            return;
        }
        let Some(inventory) = self.without_subagent(agent, subagent) else {
            let e = match self.state.world.agents.get(agent) {
                None => AgentsRefused::UnknownAgent(agent.clone()),
                Some(_) => AgentsRefused::UnknownSubagent {
                    agent: agent.clone(),
                    subagent: subagent.clone(),
                },
            };
            self.reply(token, Reply::Deploy(Err(refused(e))));
            return;
        };
        let mut extra = Vec::new();
        if self.state.joins.is_registered(agent, subagent) {
            extra.push(Body::Join(JoinEvent::Unregistered {
                agent: agent.clone(),
                subagent: subagent.clone(),
            }));
        }
        if self.commit_deploy(token, &inventory, &Default::default(), reply(), now, extra) && kill {
            self.after_commit(Effect::Link(
                agent.clone(),
                LinkMsg::SubagentRemoved {
                    subagent: subagent.clone(),
                    kill,
                },
            ));
        }
    }

    /// The inventory of `agent` without `subagent`; `None` when it is not listed.
    pub(super) fn without_subagent(
        &self,
        agent: &AgentId,
        subagent: &AgentId,
    ) -> Option<Inventory> {
        let world = &self.state.world;
        let mut object = world.agents.get(agent)?.clone();
        let before = object.subagents.len();
        object.subagents.retain(|s| s.id != *subagent);
        if object.subagents.len() == before {
            return None;
        }
        let mut settings = world.cluster_settings(agent);
        settings.process_limits.remove(subagent);
        let mut inventory = Inventory::default();
        inventory.agent_settings.insert(agent.clone(), settings);
        inventory.agents.push(object);
        keep_beside(world, &mut inventory, agent, subagent);
        Some(inventory)
    }
}

/// What the world keeps beside `agent`'s object, into an `inventory` that deploys the object
/// alone, so that the deployment keeps it: the backup director and the subagents' priority
/// expressions, but `subagent`'s (taken out, or registered anew with a whole-number priority).
pub(super) fn keep_beside(
    world: &ordo_model::order::World,
    inventory: &mut Inventory,
    agent: &AgentId,
    subagent: &AgentId,
) {
    if let Some(backup) = world.extras.backup_directors.get(agent) {
        inventory
            .backup_directors
            .insert(agent.clone(), backup.clone());
    }
    if let Some(priorities) = world.extras.priorities.get(agent) {
        let mut priorities = priorities.clone();
        priorities.remove(subagent);
        if !priorities.is_empty() {
            inventory
                .subagent_priorities
                .insert(agent.clone(), priorities);
        }
    }
}

fn reply() -> DeployReply {
    DeployReply {
        changes: Vec::new(),
        last_event_id: 0,
        diff: None,
        dry_run: false,
        warnings: Vec::new(),
    }
}
