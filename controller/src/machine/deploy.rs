//! A deployment of files: checked together with what is deployed (the model's
//! `check_against_deployed`, the check `ordo check --cluster` runs), measured with the model's
//! `deploy::diff`, refused when it would strand orders (unless forced) or remove what something
//! needs, answered with the diff alone on a dry run, and journaled otherwise. Subagents that
//! registered themselves stay in their agent unless `removed: { subagents: [agent/subagent] }`
//! takes them out ([`Machine::keep_registered`]).

use super::{DeployRefused, DeployReply, DeployRequest, Machine, Refused, Reply, Token};
use crate::record::Body;
use crate::state::State;
use ordo_api::join::JoinEvent;
use ordo_model::deploy::{self, Diff};
use ordo_model::inventory::Inventory;
use ordo_model::time::TimeMs;
use ordo_model::yaml::{self, CheckOptions, Deployed, Limits, Severity};

/// What the controller holds as an inventory: the world's objects and the plan's schedules
/// and calendars.
pub fn deployed_inventory(state: &State) -> Inventory {
    let mut inv = deploy::deployed_inventory(&state.world);
    inv.schedules = state
        .plan
        .schedules
        .values()
        .map(|p| p.schedule.clone())
        .collect();
    inv.calendars = state.plan.calendars.clone();
    inv
}

fn conflict(message: String, diff: Diff) -> Refused {
    Refused::Deploy(Box::new(DeployRefused::Conflict {
        message,
        diff: Box::new(diff),
    }))
}

impl Machine {
    /// A deployment of files with removals; answered with [`Reply::Deploy`]: at once for a
    /// refusal or a dry run, once committed otherwise.
    pub fn deploy_files(&mut self, token: Token, request: &DeployRequest, now: TimeMs) {
        self.now = now;
        if let Some(refused) = self.refuse_writes() {
            self.reply(token, Reply::Deploy(Err(refused)));
            return;
        }
        let deployed = deployed_inventory(&self.state);
        let checked = yaml::check_against_deployed(
            &request.files,
            &Deployed {
                inventory: &deployed,
                removed: &request.removed,
            },
            &Limits::default(),
            &CheckOptions::default(),
        );
        let Some(mut inventory) = checked.inventory else {
            let refused = Refused::Deploy(Box::new(DeployRefused::Invalid(checked.diagnostics)));
            self.reply(token, Reply::Deploy(Err(refused)));
            return;
        };
        let unregistered = match self.keep_registered(&mut inventory, &request.removed) {
            Ok(u) => u,
            Err(e) => {
                self.reply(token, Reply::Deploy(Err(Refused::Agents(e))));
                return;
            }
        };
        let warnings = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| d.to_string())
            .collect();
        let mut removals = request.removed.clone();
        removals.extend(inventory.removed.deployed_only(&deployed));
        let diff = deploy::diff(&self.state.world, &deployed, &inventory, &removals);
        if !diff.refused.is_empty() {
            let message = format!("refused: {}", diff.refused.join("; "));
            self.reply(token, Reply::Deploy(Err(conflict(message, diff))));
            return;
        }
        let stranded: Vec<String> = diff
            .stranded()
            .map(|o| format!("{} ({} {})", o.order, o.workflow, o.version))
            .collect();
        if !stranded.is_empty() && !request.force && !request.dry_run {
            let message = format!(
                "the deployment would strand {} order(s): {}; deploy with force to let them run on their version",
                stranded.len(),
                stranded.join(", ")
            );
            self.reply(token, Reply::Deploy(Err(conflict(message, diff))));
            return;
        }
        let mut reply = DeployReply {
            changes: Vec::new(),
            last_event_id: self.state.last_event_id,
            diff: Some(Box::new(diff)),
            dry_run: request.dry_run,
            warnings,
        };
        if request.dry_run {
            self.reply(token, Reply::Deploy(Ok(reply)));
            return;
        }
        reply.last_event_id = 0;
        self.commit_deploy(token, &inventory, &removals, reply, now, unregistered);
    }

    /// Subagents that registered themselves stay in their agent's object when a deployment
    /// leaves them out, unless `removed: { subagents: [agent/subagent] }` names them: then the
    /// agent is deployed without them (its deployed object when the files do not hold it).
    /// Returns the journal records of the registered subagents removed.
    fn keep_registered(
        &self,
        inventory: &mut Inventory,
        removed: &ordo_model::deploy::Removals,
    ) -> Result<Vec<Body>, super::AgentsRefused> {
        let mut unregistered = Vec::new();
        let mut gone = Vec::new();
        for text in removed.subagents.iter().chain(&inventory.removed.subagents) {
            let (agent, subagent) =
                deploy::subagent_ref(text).map_err(super::AgentsRefused::Invalid)?;
            if !gone.contains(&(agent.clone(), subagent.clone())) {
                gone.push((agent, subagent));
            }
        }
        let world = &self.state.world;
        for (agent, subagent) in &gone {
            if !inventory.agents.iter().any(|a| a.id == *agent)
                && let Some(without) = self.without_subagent(agent, subagent)
            {
                inventory.agents.extend(without.agents);
                inventory.agent_settings.extend(without.agent_settings);
                inventory.backup_directors.extend(without.backup_directors);
                inventory
                    .subagent_priorities
                    .extend(without.subagent_priorities);
            }
            if let Some(a) = inventory.agents.iter_mut().find(|a| a.id == *agent) {
                a.subagents.retain(|s| s.id != *subagent);
            }
            if let Some(settings) = inventory.agent_settings.get_mut(agent) {
                settings.process_limits.remove(subagent);
            }
            if let Some(priorities) = inventory.subagent_priorities.get_mut(agent) {
                priorities.remove(subagent);
                if priorities.is_empty() {
                    inventory.subagent_priorities.remove(agent);
                }
            }
            if self.state.joins.is_registered(agent, subagent) {
                unregistered.push(Body::Join(JoinEvent::Unregistered {
                    agent: agent.clone(),
                    subagent: subagent.clone(),
                }));
            }
        }
        for agent in &mut inventory.agents {
            let (Some(registered), Some(deployed)) = (
                self.state.joins.registered.get(&agent.id),
                world.agents.get(&agent.id),
            ) else {
                continue;
            };
            for s in &deployed.subagents {
                let listed = agent.subagents.iter().any(|x| x.id == s.id);
                let removed = gone.iter().any(|(a, x)| *a == agent.id && *x == s.id);
                if registered.contains(&s.id) && !listed && !removed {
                    agent.subagents.push(s.clone());
                    let limit = world
                        .cluster_settings(&agent.id)
                        .process_limits
                        .get(&s.id)
                        .copied();
                    if let Some(limit) = limit {
                        inventory
                            .agent_settings
                            .entry(agent.id.clone())
                            .or_default()
                            .process_limits
                            .insert(s.id.clone(), limit);
                    }
                    let priority = world.extras.priorities.get(&agent.id);
                    if let Some(expr) = priority.and_then(|p| p.get(&s.id)) {
                        inventory
                            .subagent_priorities
                            .entry(agent.id.clone())
                            .or_default()
                            .insert(s.id.clone(), expr.clone());
                    }
                }
            }
        }
        Ok(unregistered)
    }
}
