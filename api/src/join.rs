//! Join tokens: one-time tokens with which an agent or a subagent registers itself.
//!
//! Spec:
//! - An admin asks the controller for a token (`POST /api/v1/agents/join-tokens`); the
//!   controller draws it at random (the driver does, never this fold) and journals only
//!   [`JoinEvent::Issued`]: the token's SHA-256 ([`crate::auth::token_hash`]), the agent it
//!   joins (`None`: a standalone agent that adds an `agent:` object of its own) and its
//!   expiry. The token itself is shown once, to the admin.
//! - A registration presents the token; it is accepted only when [`Joins::check`] finds the
//!   hash issued, not expired at the registration's time and not used. Accepting journals
//!   [`JoinEvent::Used`] in the same batch as the agent object it deploys, so a token works
//!   once, across a restart or a failover of the controller.
//! - The fold keeps at most [`JOIN_TOKENS_MAX`] tokens; those expired before the time of an
//!   `Issued` event are dropped by it (the event's journaled time: replay drops the same).
//! - It also keeps which subagents joined their agent by registration (`Used` with a
//!   subagent), until [`JoinEvent::Unregistered`] (removal through the controller or
//!   `removed:`): a deployment of the agent's object that leaves one out keeps it.
//!
//! Events are journaled (`Body::Join`, postcard): append-only, like every record type.

use ordo_model::ids::AgentId;
use ordo_model::time::TimeMs;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Join tokens the controller keeps at once, at most (issued, not yet expired).
pub const JOIN_TOKENS_MAX: usize = 1_000;

/// The longest a join token lives: 30 days, in milliseconds.
pub const JOIN_TOKEN_TTL_MS_MAX: u64 = 30 * 24 * 3_600_000;

/// A journaled fact about join tokens and registered subagents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinEvent {
    /// A token was made; only its hash is kept.
    Issued {
        hash: String,
        /// The agent (cluster) a subagent joins; `None`: a standalone agent.
        agent: Option<AgentId>,
        expires: TimeMs,
    },
    /// A registration used the token: `agent` was deployed with `subagent` in it (or, without
    /// a subagent, as a standalone agent).
    Used {
        hash: String,
        agent: AgentId,
        subagent: Option<AgentId>,
    },
    /// A registered subagent was removed from its agent.
    Unregistered { agent: AgentId, subagent: AgentId },
}

impl JoinEvent {
    /// A one-line description for the event stream.
    pub fn describe(&self) -> (String, &'static str, String) {
        match self {
            JoinEvent::Issued { agent, expires, .. } => (
                agent
                    .as_ref()
                    .map_or("agents".to_owned(), |a| format!("agent:{a}")),
                "JoinTokenIssued",
                match agent {
                    Some(a) => format!("a join token for a subagent of {a}, until {}", expires.0),
                    None => format!("a join token for a standalone agent, until {}", expires.0),
                },
            ),
            JoinEvent::Used {
                agent, subagent, ..
            } => (
                format!("agent:{agent}"),
                "Registered",
                match subagent {
                    Some(s) => format!("subagent {s} registered with agent {agent}"),
                    None => format!("agent {agent} registered"),
                },
            ),
            JoinEvent::Unregistered { agent, subagent } => (
                format!("agent:{agent}"),
                "Unregistered",
                format!("subagent {subagent} removed from agent {agent}"),
            ),
        }
    }
}

/// One issued token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    pub agent: Option<AgentId>,
    pub expires: TimeMs,
    /// Who used it: the agent and, for a subagent, the subagent.
    pub used_by: Option<(AgentId, Option<AgentId>)>,
}

/// The fold of [`JoinEvent`]s: tokens by hash and registered subagents by agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Joins {
    pub tokens: BTreeMap<String, JoinToken>,
    pub registered: BTreeMap<AgentId, BTreeSet<AgentId>>,
}

/// Why a token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    Unknown,
    Expired { expires: TimeMs },
    Used { by: String },
    TooMany { max: usize },
}

impl std::fmt::Display for JoinRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinRefused::Unknown => {
                f.write_str("unknown join token (never issued, or expired and forgotten)")
            }
            JoinRefused::Expired { expires } => {
                write!(
                    f,
                    "the join token expired at {} ms since the epoch",
                    expires.0
                )
            }
            JoinRefused::Used { by } => write!(f, "the join token was already used (by {by})"),
            JoinRefused::TooMany { max } => write!(
                f,
                "{max} join tokens are outstanding already; use or let some expire first"
            ),
        }
    }
}

impl std::error::Error for JoinRefused {}

impl JoinRefused {
    /// Whether asking again with the same token can never succeed.
    pub fn is_final(&self) -> bool {
        !matches!(self, JoinRefused::TooMany { .. })
    }
}

impl Joins {
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.registered.is_empty()
    }

    /// The token with this hash if a registration at `now` may use it.
    pub fn check(&self, hash: &str, now: TimeMs) -> Result<&JoinToken, JoinRefused> {
        let token = self.tokens.get(hash).ok_or(JoinRefused::Unknown)?;
        if let Some((agent, sub)) = &token.used_by {
            return Err(JoinRefused::Used {
                by: match sub {
                    Some(s) => format!("subagent {s} of {agent}"),
                    None => format!("agent {agent}"),
                },
            });
        }
        if now >= token.expires {
            return Err(JoinRefused::Expired {
                expires: token.expires,
            });
        }
        Ok(token)
    }

    /// Whether another token may be issued at `now`.
    pub fn may_issue(&self, now: TimeMs) -> Result<(), JoinRefused> {
        let live = self.tokens.values().filter(|t| t.expires > now).count();
        if live >= JOIN_TOKENS_MAX {
            return Err(JoinRefused::TooMany {
                max: JOIN_TOKENS_MAX,
            });
        }
        Ok(())
    }

    /// Whether `subagent` joined `agent` by registration (and was not removed since).
    pub fn is_registered(&self, agent: &AgentId, subagent: &AgentId) -> bool {
        self.registered
            .get(agent)
            .is_some_and(|s| s.contains(subagent))
    }

    /// Applies a journaled event made at `ts`.
    pub fn apply(&mut self, event: &JoinEvent, ts: TimeMs) -> Result<(), String> {
        match event {
            JoinEvent::Issued {
                hash,
                agent,
                expires,
            } => {
                self.tokens.retain(|_, t| t.expires > ts);
                if self.tokens.contains_key(hash) {
                    return Err("a join token with this hash exists".into());
                }
                self.tokens.insert(
                    hash.clone(),
                    JoinToken {
                        agent: agent.clone(),
                        expires: *expires,
                        used_by: None,
                    },
                );
                Ok(())
            }
            JoinEvent::Used {
                hash,
                agent,
                subagent,
            } => {
                let token = self
                    .tokens
                    .get_mut(hash)
                    .ok_or_else(|| "no such join token".to_owned())?;
                if token.used_by.is_some() {
                    return Err("the join token was used already".into());
                }
                token.used_by = Some((agent.clone(), subagent.clone()));
                if let Some(s) = subagent {
                    self.registered
                        .entry(agent.clone())
                        .or_default()
                        .insert(s.clone());
                }
                Ok(())
            }
            JoinEvent::Unregistered { agent, subagent } => {
                if let Some(set) = self.registered.get_mut(agent) {
                    set.remove(subagent);
                    if set.is_empty() {
                        self.registered.remove(agent);
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AgentId {
        AgentId::new(s).unwrap()
    }

    fn issued(hash: &str, expires: i64) -> JoinEvent {
        JoinEvent::Issued {
            hash: hash.into(),
            agent: Some(id("dir")),
            expires: TimeMs(expires),
        }
    }

    #[test]
    fn a_token_works_once_and_only_before_it_expires() {
        let mut j = Joins::default();
        assert_eq!(j.check("h", TimeMs(0)), Err(JoinRefused::Unknown));
        j.apply(&issued("h", 100), TimeMs(0)).unwrap();
        assert_eq!(j.check("h", TimeMs(99)).unwrap().agent, Some(id("dir")));
        assert_eq!(
            j.check("h", TimeMs(100)),
            Err(JoinRefused::Expired {
                expires: TimeMs(100)
            })
        );
        let used = JoinEvent::Used {
            hash: "h".into(),
            agent: id("dir"),
            subagent: Some(id("s1")),
        };
        j.apply(&used, TimeMs(50)).unwrap();
        assert!(matches!(
            j.check("h", TimeMs(60)),
            Err(JoinRefused::Used { .. })
        ));
        assert!(j.apply(&used, TimeMs(60)).is_err(), "used twice");
        assert!(j.is_registered(&id("dir"), &id("s1")));
        j.apply(
            &JoinEvent::Unregistered {
                agent: id("dir"),
                subagent: id("s1"),
            },
            TimeMs(70),
        )
        .unwrap();
        assert!(!j.is_registered(&id("dir"), &id("s1")));
        assert!(j.registered.is_empty());
    }

    #[test]
    fn expired_tokens_are_forgotten_when_another_is_issued() {
        let mut j = Joins::default();
        j.apply(&issued("old", 10), TimeMs(0)).unwrap();
        j.apply(&issued("new", 100), TimeMs(20)).unwrap();
        assert_eq!(j.check("old", TimeMs(20)), Err(JoinRefused::Unknown));
        assert!(j.check("new", TimeMs(20)).is_ok());
        assert!(j.apply(&issued("new", 200), TimeMs(30)).is_err());
    }

    #[test]
    fn the_number_of_live_tokens_is_bounded() {
        let mut j = Joins::default();
        for i in 0..JOIN_TOKENS_MAX {
            j.apply(&issued(&format!("h{i}"), 100), TimeMs(0)).unwrap();
        }
        assert_eq!(
            j.may_issue(TimeMs(0)),
            Err(JoinRefused::TooMany {
                max: JOIN_TOKENS_MAX
            })
        );
        assert!(j.may_issue(TimeMs(100)).is_ok(), "all expired by then");
        assert!(!JoinRefused::TooMany { max: 1 }.is_final());
        assert!(JoinRefused::Unknown.is_final());
    }
}
