//! Job resources (`jobResource:`): environment variables and arguments declared once and
//! named by many jobs (`jobResources: [name]`), JS7's JobResources.
//!
//! They are resolved when the inventory is read: each job takes a resource's `env` and
//! `args` where it sets no value of that name itself (of two resources, the earlier in its
//! list wins). So the deployed workflow, and with it the agent that runs the job, carries
//! the values; a changed job resource reaches a job with the next deployment of the
//! workflows that use it. The rules of a job's own `env` hold for a resource's `env` (a
//! protected name takes only a constant).

use super::diag::{Diags, Pos, Severity};
use super::read::{Cx, Fields};
use super::workflow::{VarsOf, vars};
use crate::expr::Template;
use crate::ids::JobName;
use crate::inventory::Inventory;
use std::collections::BTreeMap;

/// A job resource as read.
struct Def {
    env: BTreeMap<String, Template>,
    args: BTreeMap<String, Template>,
    file: String,
    pos: Pos,
}

/// A job naming job resources.
struct Use {
    workflow: String,
    job: String,
    names: Vec<(String, String, Pos)>,
}

/// The job resources of every file read, and the jobs that name them.
#[derive(Default)]
pub(crate) struct JobResources {
    defs: BTreeMap<String, Def>,
    uses: Vec<Use>,
}

impl JobResources {
    /// Reads a `jobResource:` object (its fields known to be those of the spec).
    pub(crate) fn read(&mut self, cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<()> {
        let node = f.get("jobResource")?;
        let name = cx.name(node, "`jobResource`", JobName::new);
        let env = match f.get("env") {
            Some(n) => vars(cx, n, "env", VarsOf::Env),
            None => Some(BTreeMap::new()),
        };
        let args = match f.get("args") {
            Some(n) => vars(cx, n, "args", VarsOf::Args),
            None => Some(BTreeMap::new()),
        };
        let name = name?.to_string();
        if let Some(first) = self.defs.get(&name) {
            cx.err(
                node.pos,
                format!(
                    "job resource `{name}` is defined twice; first at {}:{}",
                    first.file, first.pos
                ),
            );
            return None;
        }
        self.defs.insert(
            name,
            Def {
                env: env?,
                args: args?,
                file: cx.file.to_owned(),
                pos: node.pos,
            },
        );
        Some(())
    }

    /// Records the `jobResources` list of job `job` of workflow `workflow`.
    pub(crate) fn uses(
        &mut self,
        cx: &mut Cx<'_>,
        workflow: &str,
        job: &str,
        node: &super::node::Node,
    ) -> Option<()> {
        let items = cx.list(node, "`jobResources`", "a list of job resource names")?;
        let mut names: Vec<(String, String, Pos)> = Vec::new();
        let mut ok = true;
        for item in items {
            match cx.name(item, "job resource name", JobName::new) {
                Some(n) if names.iter().any(|(m, _, _)| m == n.as_str()) => {
                    cx.err(item.pos, format!("job resource `{n}` is listed twice"));
                    ok = false;
                }
                Some(n) => names.push((n.to_string(), cx.file.to_owned(), item.pos)),
                None => ok = false,
            }
        }
        self.uses.push(Use {
            workflow: workflow.to_owned(),
            job: job.to_owned(),
            names,
        });
        ok.then_some(())
    }

    /// Gives each job that names job resources their values, and reports a name no job
    /// resource has where it is written.
    pub(crate) fn apply(&self, inventory: &mut Inventory, diags: &mut Diags) {
        for u in &self.uses {
            let mut job = inventory
                .workflows
                .iter_mut()
                .filter(|w| w.name.as_str() == u.workflow)
                .find_map(|w| w.jobs.iter_mut().find(|(n, _)| n.as_str() == u.job))
                .map(|(_, j)| j);
            for (name, file, pos) in &u.names {
                let Some(def) = self.defs.get(name) else {
                    let known: Vec<&str> = self.defs.keys().map(String::as_str).collect();
                    diags.push(
                        file,
                        *pos,
                        Severity::Error,
                        format!(
                            "job resource `{name}` is not defined{}",
                            if known.is_empty() {
                                String::new()
                            } else {
                                format!(" (job resources: {})", known.join(", "))
                            }
                        ),
                    );
                    continue;
                };
                if let Some(job) = job.as_deref_mut() {
                    for (k, v) in &def.env {
                        job.env.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    for (k, v) in &def.args {
                        job.args.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
    }
}
