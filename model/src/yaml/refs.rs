//! Names defined across all files, and the references to them: duplicates and unknown
//! references are found once every file has been read.

use super::diag::{Diags, Pos, Severity};
use super::read::closest;
use std::collections::BTreeMap;

/// What a reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    Agent,
    /// An agent that must have subagents (`forkList: { subagentsOf: x }`).
    Cluster,
    Lock,
    Board,
    Workflow,
    Calendar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DefKind {
    Workflow,
    /// Agents and subagents share one namespace.
    Agent,
    Lock,
    Board,
    Schedule,
    Calendar,
}

impl DefKind {
    fn word(self) -> &'static str {
        match self {
            DefKind::Workflow => "workflow",
            DefKind::Agent => "agent",
            DefKind::Lock => "lock",
            DefKind::Board => "board",
            DefKind::Schedule => "schedule",
            DefKind::Calendar => "calendar",
        }
    }
}

struct Ref {
    kind: RefKind,
    name: String,
    file: String,
    pos: Pos,
    lock_count: Option<u32>,
    /// For `addOrder`: the variables it passes.
    args: Option<Vec<String>>,
    /// The deployed object (`workflow x`) this reference comes from, when it is not in the
    /// files being checked.
    deployed: Option<String>,
}

/// References met while reading workflows.
#[derive(Default)]
pub(crate) struct Refs {
    list: Vec<Ref>,
    /// Job resources and the jobs that name them, resolved once every file is read.
    pub resources: super::resources::JobResources,
}

impl Refs {
    pub fn add(&mut self, file: &str, kind: RefKind, name: &str, pos: Pos) {
        self.list.push(Ref {
            kind,
            name: name.to_owned(),
            file: file.to_owned(),
            pos,
            lock_count: None,
            args: None,
            deployed: None,
        });
    }

    /// A reference made by a deployed object `by` (`workflow x`): checked only against
    /// the definitions in the files, where a problem is reported.
    pub fn add_deployed(
        &mut self,
        by: &str,
        kind: RefKind,
        name: &str,
        lock_count: Option<u32>,
        args: Option<Vec<String>>,
    ) {
        self.list.push(Ref {
            kind,
            name: name.to_owned(),
            file: DEPLOYED_FILE.to_owned(),
            pos: Pos::START,
            lock_count,
            args,
            deployed: Some(by.to_owned()),
        });
    }

    /// An `addOrder` of `name` passing the variables `args`.
    pub fn add_order(&mut self, file: &str, name: &str, pos: Pos, args: Vec<String>) {
        self.list.push(Ref {
            kind: RefKind::Workflow,
            name: name.to_owned(),
            file: file.to_owned(),
            pos,
            lock_count: None,
            args: Some(args),
            deployed: None,
        });
    }

    pub fn add_lock(&mut self, file: &str, name: &str, pos: Pos, count: Option<u32>) {
        self.list.push(Ref {
            kind: RefKind::Lock,
            name: name.to_owned(),
            file: file.to_owned(),
            pos,
            lock_count: count,
            args: None,
            deployed: None,
        });
    }
}

/// The file name of objects that come from what is deployed, not from a file being checked.
pub(crate) const DEPLOYED_FILE: &str = "(deployed)";

struct Def {
    name: String,
    file: String,
    pos: Pos,
    /// A subagent is in the agent namespace but cannot be referred to by jobs.
    subagent: bool,
    lock_limit: u32,
    has_subagents: bool,
    /// A workflow's parameters without a default.
    required: Vec<String>,
    /// The only arguments a workflow takes: its parameters, when it has some and does not
    /// allow undeclared ones; `None`: any.
    declared: Option<Vec<String>>,
}

impl Def {
    /// Whether the workflow takes the arguments `args` (the model's rule for every order
    /// added, [`crate::order::undeclared_arguments`]).
    fn undeclared(&self, args: &[String]) -> Result<(), String> {
        let Some(declared) = &self.declared else {
            return Ok(());
        };
        crate::order::undeclared_arguments(
            &self.name,
            declared.iter().map(String::as_str),
            false,
            args.iter().map(String::as_str),
        )
    }
}

/// Everything defined, by kind.
#[derive(Default)]
pub(crate) struct Defs {
    by_kind: BTreeMap<DefKind, Vec<Def>>,
}

impl Defs {
    pub fn workflow(
        &mut self,
        file: &str,
        name: &str,
        pos: Pos,
        required: Vec<String>,
        declared: Option<Vec<String>>,
    ) {
        self.push(DefKind::Workflow, file, name, pos, false, 0, false);
        if let Some(d) = self
            .by_kind
            .get_mut(&DefKind::Workflow)
            .and_then(|v| v.last_mut())
        {
            d.required = required;
            d.declared = declared;
        }
    }

    pub fn agent(&mut self, file: &str, name: &str, pos: Pos, has_subagents: bool) {
        self.push(DefKind::Agent, file, name, pos, false, 0, has_subagents);
    }

    pub fn subagent(&mut self, file: &str, name: &str, pos: Pos) {
        self.push(DefKind::Agent, file, name, pos, true, 0, false);
    }

    pub fn lock(&mut self, file: &str, name: &str, pos: Pos, limit: u32) {
        self.push(DefKind::Lock, file, name, pos, false, limit, false);
    }

    pub fn board(&mut self, file: &str, name: &str, pos: Pos) {
        self.push(DefKind::Board, file, name, pos, false, 0, false);
    }

    pub fn schedule(&mut self, file: &str, name: &str, pos: Pos) {
        self.push(DefKind::Schedule, file, name, pos, false, 0, false);
    }

    pub fn calendar(&mut self, file: &str, name: &str, pos: Pos) {
        self.push(DefKind::Calendar, file, name, pos, false, 0, false);
    }

    /// Where the first definition of `name` is: its file and position.
    pub fn position(&self, kind: DefKind, name: &str) -> Option<(&str, Pos)> {
        self.find(kind, name).map(|d| (d.file.as_str(), d.pos))
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: DefKind,
        file: &str,
        name: &str,
        pos: Pos,
        subagent: bool,
        lock_limit: u32,
        has_subagents: bool,
    ) {
        self.by_kind.entry(kind).or_default().push(Def {
            name: name.to_owned(),
            file: file.to_owned(),
            pos,
            subagent,
            lock_limit,
            has_subagents,
            required: Vec::new(),
            declared: None,
        });
    }

    fn find(&self, kind: DefKind, name: &str) -> Option<&Def> {
        self.by_kind
            .get(&kind)?
            .iter()
            .find(|d| d.name == name && !d.subagent)
    }

    fn names(&self, kind: DefKind) -> impl Iterator<Item = &str> {
        self.by_kind
            .get(&kind)
            .into_iter()
            .flatten()
            .filter(|d| !d.subagent)
            .map(|d| d.name.as_str())
    }

    /// Reports every name defined twice, at both places.
    pub fn check_duplicates(&self, diags: &mut Diags) {
        let at = |d: &Def| {
            if d.file == DEPLOYED_FILE {
                "deployed".to_owned()
            } else {
                format!("at {}:{}", d.file, d.pos)
            }
        };
        for (kind, defs) in &self.by_kind {
            let mut first: BTreeMap<&str, &Def> = BTreeMap::new();
            for d in defs {
                match first.get(d.name.as_str()) {
                    None => {
                        first.insert(&d.name, d);
                    }
                    Some(f) => {
                        let word = |d: &Def| if d.subagent { "subagent" } else { kind.word() };
                        for (here, there) in [(d, *f), (*f, d)] {
                            if here.file == DEPLOYED_FILE {
                                continue;
                            }
                            diags.push(
                                &here.file,
                                here.pos,
                                Severity::Error,
                                format!(
                                    "{} `{}` is defined twice: here and as {} {}",
                                    word(here),
                                    here.name,
                                    word(there),
                                    at(there)
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    /// A deployed object's reference, checked against a definition in the files (one that
    /// replaces a deployed object): reported at that definition. A reference to nothing is
    /// the business of the removal that made it so, not of this check.
    fn check_deployed_ref(&self, r: &Ref, by: &str, diags: &mut Diags) {
        let kind = match r.kind {
            RefKind::Agent | RefKind::Cluster => DefKind::Agent,
            RefKind::Lock => DefKind::Lock,
            RefKind::Board => DefKind::Board,
            RefKind::Workflow => DefKind::Workflow,
            RefKind::Calendar => DefKind::Calendar,
        };
        let Some(def) = self.find(kind, &r.name) else {
            return;
        };
        if def.file == DEPLOYED_FILE {
            return;
        }
        if r.kind == RefKind::Cluster && !def.has_subagents {
            diags.push(
                &def.file,
                def.pos,
                Severity::Error,
                format!(
                    "agent `{}` has no subagents, but deployed {by} forks over them",
                    def.name
                ),
            );
        }
        if let Some(args) = &r.args {
            for p in def.required.iter().filter(|p| !args.contains(p)) {
                diags.push(
                    &def.file,
                    def.pos,
                    Severity::Error,
                    format!(
                        "workflow `{}` requires the parameter `{p}`, which deployed {by} does not pass",
                        def.name
                    ),
                );
            }
            if let Err(e) = def.undeclared(args) {
                diags.push(
                    &def.file,
                    def.pos,
                    Severity::Error,
                    format!("deployed {by} would be refused: {e}"),
                );
            }
        }
        if let Some(count) = r.lock_count
            && count > def.lock_limit
        {
            diags.push(
                &def.file,
                def.pos,
                Severity::Error,
                format!(
                    "limit {} of lock `{}` is less than the count {count} deployed {by} takes; that step could never get the lock",
                    def.lock_limit, def.name
                ),
            );
        }
    }

    /// Reports references to names that are not defined (with the nearest name defined),
    /// lock counts above the lock's limit and fork-lists over agents without subagents.
    pub fn check_refs(&self, refs: &Refs, diags: &mut Diags) {
        for r in &refs.list {
            if let Some(by) = &r.deployed {
                self.check_deployed_ref(r, by, diags);
                continue;
            }
            let kind = match r.kind {
                RefKind::Agent | RefKind::Cluster => DefKind::Agent,
                RefKind::Lock => DefKind::Lock,
                RefKind::Board => DefKind::Board,
                RefKind::Workflow => DefKind::Workflow,
                RefKind::Calendar => DefKind::Calendar,
            };
            let Some(def) = self.find(kind, &r.name) else {
                let hint = closest(&r.name, self.names(kind))
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                diags.push(
                    &r.file,
                    r.pos,
                    Severity::Error,
                    format!("unknown {} `{}`{hint}", kind.word(), r.name),
                );
                continue;
            };
            if r.kind == RefKind::Cluster && !def.has_subagents {
                diags.push(
                    &r.file,
                    r.pos,
                    Severity::Error,
                    format!(
                        "agent `{}` has no subagents to fork over (defined at {}:{})",
                        r.name, def.file, def.pos
                    ),
                );
            }
            if let Some(args) = &r.args {
                for p in def.required.iter().filter(|p| !args.contains(p)) {
                    diags.push(
                        &r.file,
                        r.pos,
                        Severity::Error,
                        format!(
                            "workflow `{}` requires the parameter `{p}`; pass it in `args`",
                            r.name
                        ),
                    );
                }
                if let Err(e) = def.undeclared(args) {
                    diags.push(&r.file, r.pos, Severity::Error, e);
                }
            }
            if let Some(count) = r.lock_count
                && count > def.lock_limit
            {
                diags.push(
                    &r.file,
                    r.pos,
                    Severity::Error,
                    format!(
                        "count {count} is more than the limit {} of lock `{}`; the step could never get the lock",
                        def.lock_limit, r.name
                    ),
                );
            }
        }
    }
}
