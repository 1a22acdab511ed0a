//! Agents, locks and notice boards.

use super::node::{Kind, Node, Typed};
use super::read::{Cx, Fields};
use super::refs::Defs;
use super::spec;
use crate::expr::Expr;
use crate::ids::{AgentId, BoardName, LockName};
use crate::inventory::{Agent, Board, ClusterSettings, Lock, Selection, Subagent};
use crate::priority::Priorities;
use crate::time::DurationMs;

/// The shortest `leaseTimeout` accepted, in milliseconds: heartbeats go at a fifth of it.
pub const LEASE_TIMEOUT_MIN_MS: u64 = 500;

/// The largest `processLimit` of a subagent.
pub const PROCESS_LIMIT_MAX: u32 = 100_000;

/// An agent object, its cluster settings, its backup director's URL and its subagents'
/// priority expressions.
pub(crate) fn agent(
    cx: &mut Cx<'_>,
    f: &Fields<'_>,
    defs: &mut Defs,
) -> Option<(Agent, ClusterSettings, Option<String>, Priorities)> {
    let id_node = f.get("agent")?;
    let id = cx.name(id_node, "`agent`", AgentId::new);
    let url = match (f.get("url"), f.get("director")) {
        (Some(n), None) => url(cx, n),
        (None, Some(n)) => url_named(cx, n, "director"),
        (Some(_), Some(n)) => {
            cx.err(
                n.pos,
                "`director` is another name for `url`: give one of the two".to_owned(),
            );
            None
        }
        (None, None) => {
            cx.err(
                f.pos,
                "an agent needs the field `url` (or `director`)".to_owned(),
            );
            None
        }
    };
    let backup = match f.get("backupDirector") {
        None => Some(None),
        Some(n) => url_named(cx, n, "backupDirector").and_then(|backup| {
            if url.as_ref() == Some(&backup) {
                cx.err(
                    n.pos,
                    "`backupDirector` must differ from the director's URL".to_owned(),
                );
                None
            } else {
                Some(Some(backup))
            }
        }),
    };
    let certificate_name = match f.get("certificateName") {
        None => Some(None),
        Some(n) => cx.text(n, "`certificateName`").and_then(|s| {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.err(n.pos, format!("`certificateName` {s:?} is not a host name"));
                None
            } else {
                Some(Some(s))
            }
        }),
    };
    let subagents = match f.get("subagents") {
        None => Some(Default::default()),
        Some(n) => subagents(cx, n, defs),
    };
    let selection = match f.get("selection") {
        None => Some(Selection::default()),
        Some(n) => selection(cx, n),
    };
    let lease_timeout = match f.get("leaseTimeout") {
        None => Some(crate::inventory::LEASE_TIMEOUT_DEFAULT),
        Some(n) => cx.duration(n, "`leaseTimeout`").and_then(|d| {
            if d.0 < LEASE_TIMEOUT_MIN_MS {
                cx.err(
                    n.pos,
                    format!("`leaseTimeout` must be at least {LEASE_TIMEOUT_MIN_MS}ms"),
                );
                None
            } else {
                Some(d)
            }
        }),
    };
    if let Some(id) = &id {
        let cluster = f
            .get("subagents")
            .is_some_and(|n| matches!(&n.kind, Kind::Seq(items) if !items.is_empty()));
        defs.agent(cx.file, id.as_str(), id_node.pos, cluster);
    }
    let (subagents, process_limits, priorities) = subagents?;
    Some((
        Agent {
            id: id?,
            url: url?,
            certificate_name: certificate_name?,
            subagents,
            selection: selection?,
        },
        ClusterSettings {
            lease_timeout: lease_timeout?,
            process_limits,
        },
        backup?,
        priorities,
    ))
}

/// A `selection` word: `round-robin`, `priority` or `ring`.
pub(crate) fn selection(cx: &mut Cx<'_>, n: &Node) -> Option<Selection> {
    match cx.text(n, "`selection`").as_deref() {
        Some("round-robin") => Some(Selection::RoundRobin),
        Some("priority") => Some(Selection::Priority),
        Some("ring") => Some(Selection::Ring),
        Some(other) => {
            cx.err(
                n.pos,
                format!("`selection` must be round-robin, priority or ring, not {other:?}"),
            );
            None
        }
        None => None,
    }
}

/// Subagents, the process limits that differ from the default and the priorities given as
/// expressions.
type Subagents = (
    Vec<Subagent>,
    std::collections::BTreeMap<AgentId, u32>,
    Priorities,
);

/// A subagent's `priority`: a whole number, or an expression over its metrics.
enum Priority {
    Int(i32),
    Expr(Expr),
}

/// Reads a `priority`; `label` names it (and its subagent) in messages.
fn priority(cx: &mut Cx<'_>, node: &Node, label: &str) -> Option<Priority> {
    match node.scalar().map(|s| &s.typed) {
        Some(Typed::Int(_)) => cx
            .int(node, label, PRIORITY_MIN, PRIORITY_MAX)
            .and_then(|v| i32::try_from(v).ok())
            .map(Priority::Int),
        Some(Typed::Str) => {
            let expr = cx.expr(node, label)?;
            match crate::priority::check(&expr) {
                Ok(()) => Some(Priority::Expr(expr)),
                Err(why) => {
                    cx.err(node.pos, format!("{label}: {why}"));
                    None
                }
            }
        }
        _ => {
            cx.type_error(
                node,
                label,
                spec::Ty::IntOrExpr {
                    min: PRIORITY_MIN,
                    max: PRIORITY_MAX,
                },
            );
            None
        }
    }
}

/// The lowest whole-number `priority` of a subagent.
const PRIORITY_MIN: i64 = -1_000_000;
/// The highest whole-number `priority` of a subagent.
const PRIORITY_MAX: i64 = 1_000_000;

fn subagents(cx: &mut Cx<'_>, node: &Node, defs: &mut Defs) -> Option<Subagents> {
    let items = cx.list(node, "`subagents`", "a list of subagents")?;
    let mut out = Vec::new();
    let mut limits = std::collections::BTreeMap::new();
    let mut priorities = Priorities::new();
    let mut ok = true;
    for item in items {
        let Some(sf) = cx.fields(item, &spec::SUBAGENT) else {
            ok = false;
            continue;
        };
        let id = sf.get("id").and_then(|n| {
            let id = cx.name(n, "`id`", AgentId::new)?;
            defs.subagent(cx.file, id.as_str(), n.pos);
            Some(id)
        });
        let url = sf.get("url").and_then(|n| url(cx, n));
        let priority = match sf.get("priority") {
            None => Some(Priority::Int(0)),
            Some(n) => {
                let label = match &id {
                    Some(id) => format!("`priority` of subagent {id}"),
                    None => "`priority`".to_owned(),
                };
                priority(cx, n, &label)
            }
        };
        let process_limit = match sf.get("processLimit") {
            None => Some(crate::inventory::SUBAGENT_PROCESS_LIMIT_DEFAULT),
            Some(n) => cx
                .int(n, "`processLimit`", 1, PROCESS_LIMIT_MAX.into())
                .and_then(|v| u32::try_from(v).ok()),
        };
        match (id, url, priority, process_limit) {
            (Some(id), Some(url), Some(priority), Some(process_limit)) => {
                if process_limit != crate::inventory::SUBAGENT_PROCESS_LIMIT_DEFAULT {
                    limits.insert(id.clone(), process_limit);
                }
                let priority = match priority {
                    Priority::Int(p) => p,
                    Priority::Expr(e) => {
                        priorities.insert(id.clone(), e);
                        0
                    }
                };
                out.push(Subagent { id, url, priority });
            }
            _ => ok = false,
        }
    }
    ok.then_some((out, limits, priorities))
}

/// `wss://host:port`, optionally followed by a path.
fn url(cx: &mut Cx<'_>, node: &Node) -> Option<String> {
    url_named(cx, node, "url")
}

/// [`url`] of the field `name`.
fn url_named(cx: &mut Cx<'_>, node: &Node, name: &str) -> Option<String> {
    let s = cx.text(node, &format!("`{name}`"))?;
    match check_url(&s) {
        Ok(()) => Some(s),
        Err(why) => {
            cx.err(
                node.pos,
                format!("`{name}` {s:?} {why}; write wss://host:port"),
            );
            None
        }
    }
}

fn check_url(s: &str) -> Result<(), &'static str> {
    let rest = s
        .strip_prefix("wss://")
        .ok_or("does not start with wss://")?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("has an unclosed '['")?;
        (host, after.strip_prefix(':').ok_or("has no port")?)
    } else {
        authority.rsplit_once(':').ok_or("has no port")?
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')))
    {
        return Err("has no valid host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("has no valid port"),
    }
}

pub(crate) fn lock(cx: &mut Cx<'_>, f: &Fields<'_>, defs: &mut Defs) -> Option<Lock> {
    let n = f.get("lock")?;
    let name = cx.name(n, "`lock`", LockName::new);
    let limit = match f.get("limit") {
        None => Some(1),
        Some(l) => cx
            .int(l, "`limit`", 1, spec::LOCK_LIMIT_MAX)
            .and_then(|v| u32::try_from(v).ok()),
    };
    if let (Some(name), Some(limit)) = (&name, limit) {
        defs.lock(cx.file, name.as_str(), n.pos, limit);
    }
    Some(Lock {
        name: name?,
        limit: limit?,
    })
}

pub(crate) fn board(cx: &mut Cx<'_>, f: &Fields<'_>, defs: &mut Defs) -> Option<Board> {
    let n = f.get("board")?;
    let name = cx.name(n, "`board`", BoardName::new);
    let lifetime = match f.get("lifetime") {
        None => Some(DurationMs(spec::BOARD_LIFETIME_DEFAULT_MS)),
        Some(l) => cx.duration(l, "`lifetime`").and_then(|d| {
            if d.0 == 0 {
                cx.err(l.pos, "`lifetime` must be longer than 0s");
                None
            } else {
                Some(d)
            }
        }),
    };
    if let Some(name) = &name {
        defs.board(cx.file, name.as_str(), n.pos);
    }
    Some(Board {
        name: name?,
        lifetime: lifetime?,
    })
}

#[cfg(test)]
mod tests {
    use super::check_url;
    use crate::ids::AgentId;

    fn agents(text: &str) -> Result<crate::inventory::Inventory, String> {
        crate::yaml::parse_inventory(
            &[crate::yaml::SourceFile::new("a.yaml", text)],
            &crate::yaml::Limits::default(),
        )
        .map_err(|d| format!("{d:?}"))
    }

    /// A director pair: `director` names the director (as `url` does), `backupDirector` the
    /// backup, kept beside the agent object; contradictions are named.
    #[test]
    fn a_director_pair_names_both_directors() {
        let inv = agents(
            "agent: d\ndirector: wss://127.0.0.1:4444\nbackupDirector: wss://127.0.0.2:4444\n",
        )
        .unwrap();
        assert_eq!(inv.agents[0].url, "wss://127.0.0.1:4444");
        let id = AgentId::new("d").unwrap();
        assert_eq!(
            inv.backup_directors.get(&id).map(String::as_str),
            Some("wss://127.0.0.2:4444")
        );
        let lone = agents("agent: d\nurl: wss://127.0.0.1:4444\n").unwrap();
        assert!(lone.backup_directors.is_empty());
        let both = agents("agent: d\nurl: wss://a:1\ndirector: wss://a:1\n").unwrap_err();
        assert!(both.contains("another name for `url`"), "{both}");
        let same = agents("agent: d\nurl: wss://a:1\nbackupDirector: wss://a:1\n").unwrap_err();
        assert!(same.contains("must differ"), "{same}");
        let bad = agents("agent: d\nurl: wss://a:1\nbackupDirector: https://b:1\n").unwrap_err();
        assert!(bad.contains("`backupDirector`"), "{bad}");
    }

    /// A subagent's priority is a whole number or an expression over its metrics, kept beside
    /// the positional `Subagent` (whose priority is then 0); an unknown variable, an order's
    /// `variable()`, bad syntax and a value of another type are refused naming the subagent.
    #[test]
    fn a_priority_is_a_number_or_an_expression_over_metrics() {
        let cluster = |s1: &str| {
            agents(&format!(
                "agent: c\nurl: wss://a:1\nselection: priority\nsubagents:\n  \
                 - {{ id: s1, url: \"wss://b:1\", priority: {s1} }}\n  \
                 - {{ id: s2, url: \"wss://b:2\", priority: 5 }}\n"
            ))
        };
        let c = AgentId::new("c").unwrap();
        let s1 = AgentId::new("s1").unwrap();
        let inv = cluster("\"10 - 10 * $processes\"").unwrap();
        let subs = &inv.agents[0].subagents;
        assert_eq!((subs[0].priority, subs[1].priority), (0, 5));
        let exprs = &inv.subagent_priorities[&c];
        assert_eq!(exprs.len(), 1);
        assert_eq!(exprs[&s1].to_string(), "10 - 10 * $processes");
        // JS7's names, unquoted YAML text.
        let inv = cluster("100 - $js7CpuLoad * 100 / $cores").unwrap();
        assert!(inv.subagent_priorities[&c].contains_key(&s1));
        // A whole number keeps the positional field and no expression.
        let inv = cluster("7").unwrap();
        assert_eq!(inv.agents[0].subagents[0].priority, 7);
        assert!(inv.subagent_priorities.is_empty());
        let unknown = cluster("\"10 - $jobs\"").unwrap_err();
        assert!(
            unknown.contains("`priority` of subagent s1: $jobs is not a subagent metric"),
            "{unknown}"
        );
        let order = cluster("\"variable('x', default=1)\"").unwrap_err();
        assert!(
            order.contains("`priority` of subagent s1: variable()"),
            "{order}"
        );
        let syntax = cluster("\"10 - * $processes\"").unwrap_err();
        assert!(syntax.contains("`priority` of subagent s1:"), "{syntax}");
        let float = cluster("2.5").unwrap_err();
        assert!(
            float.contains("`priority` of subagent s1 must be a whole number or an expression"),
            "{float}"
        );
        let range = cluster("2000000").unwrap_err();
        assert!(range.contains("between -1000000 and 1000000"), "{range}");
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("wss://127.0.0.1:4444").is_ok());
        assert!(check_url("wss://db.example.com:4443/").is_ok());
        assert!(check_url("wss://[::1]:4444").is_ok());
        assert!(check_url("https://x:1").is_err());
        assert!(check_url("wss://x").is_err());
        assert!(check_url("wss://:1").is_err());
        assert!(check_url("wss://x:0").is_err());
        assert!(check_url("wss://x y:1").is_err());
    }
}
