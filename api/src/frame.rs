//! Event frames and state snapshots: what the controller's event stream and `GET /api/v1/state`
//! carry, written by the controller and read by the cockpit (and anyone else) with these types.
//!
//! An event frame is one WebSocket text frame or one NDJSON line:
//!
//! ```json
//! {"formatVersion": 1, "eventId": 65536, "term": 1, "ts": 1700000000000, "key": "o1",
//!  "type": "Added", "text": "added …", "event": {"type": "event", "event": {…}}}
//! ```
//!
//! `key`, `type` and `text` are for people and filters ([`crate::view::describe`]); `event` is
//! the journaled [`Body`] in the form of [`crate::json`], so `(eventId, Stored { term, ts,
//! body: event })` folds through [`crate::state::State::apply`] exactly as the controller
//! folds its journal. A stream ends with an error frame `{"error": "…"}`.
//!
//! A state snapshot: `{"formatVersion": 1, "eventId": N, "state": {…}}`, the whole
//! [`State`] at event `N` in the form of [`crate::json`]; the events after `N` follow it.
//!
//! Versions: both carry [`FORMAT_VERSION`], raised whenever a reader of the previous version
//! would misread them. A reader refuses a frame or snapshot of a newer format than its own
//! with a message that names both versions ([`FormatError::Newer`]), never guesses at it.

use crate::FORMAT_VERSION;
use crate::record::{Body, Stored};
use crate::state::State;
use ordo_model::time::TimeMs;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{self, Write};

/// Why a frame or snapshot is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Written by a newer build: this reader would misread it.
    #[error(
        "the {what} has format version {found}, newer than version {FORMAT_VERSION} that this build reads; upgrade it"
    )]
    Newer { what: &'static str, found: u32 },
    /// No format version: not written by a controller of this API.
    #[error(
        "the {what} has no formatVersion (this build reads version {FORMAT_VERSION}): {reason}"
    )]
    Unversioned { what: &'static str, reason: String },
    /// It does not parse.
    #[error("the {what} (format version {FORMAT_VERSION}) does not parse: {reason}")]
    Bad { what: &'static str, reason: String },
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFrame<'a> {
    pub format_version: u32,
    pub event_id: u64,
    /// The raft term of the event's batch.
    pub term: u64,
    /// When the controller made (or received) the event, ms since the epoch.
    pub ts: TimeMs,
    /// The order id, `board:<name>`, `agent:<id>` or `inventory`.
    pub key: Cow<'a, str>,
    /// The event's kind, e.g. `Added`, `Processed`, `Stdout`.
    #[serde(rename = "type")]
    pub kind: Cow<'a, str>,
    /// One line for people.
    pub text: Cow<'a, str>,
    /// The journaled event.
    #[serde(with = "crate::json")]
    pub event: Cow<'a, Body>,
}

impl<'a> EventFrame<'a> {
    /// The frame of a journaled event.
    pub fn of(event_id: u64, stored: &'a Stored) -> EventFrame<'a> {
        let (key, kind, text) = crate::view::describe(&stored.body);
        EventFrame {
            format_version: FORMAT_VERSION,
            event_id,
            term: stored.term,
            ts: stored.ts,
            key: Cow::Owned(key),
            kind: Cow::Borrowed(kind),
            text: Cow::Owned(text),
            event: Cow::Borrowed(&stored.body),
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The event id and the journaled event, as the controller folds them.
    pub fn into_stored(self) -> (u64, Stored) {
        (
            self.event_id,
            Stored {
                term: self.term,
                ts: self.ts,
                body: self.event.into_owned(),
            },
        )
    }
}

/// The frame that ends a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub error: String,
}

impl ErrorFrame {
    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": self.error }).to_string()
    }
}

/// What one message of the stream holds.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMessage {
    Event(Box<EventFrame<'static>>),
    /// The controller ended the stream with this reason.
    Error(String),
}

/// What a reader first looks at: the version, or an error.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    format_version: Option<u32>,
    error: Option<String>,
}

fn check_version(what: &'static str, found: u32) -> Result<(), FormatError> {
    if found > FORMAT_VERSION {
        Err(FormatError::Newer { what, found })
    } else {
        Ok(())
    }
}

/// Explains why a frame or snapshot did not parse: its version if it has a newer one, else
/// the parse error.
fn explain(what: &'static str, bytes: &[u8], error: serde_json::Error) -> FormatError {
    match serde_json::from_slice::<Head>(bytes) {
        Ok(Head {
            format_version: Some(found),
            ..
        }) if found > FORMAT_VERSION => FormatError::Newer { what, found },
        Ok(Head {
            format_version: None,
            ..
        }) => FormatError::Unversioned {
            what,
            reason: error.to_string(),
        },
        _ => FormatError::Bad {
            what,
            reason: error.to_string(),
        },
    }
}

/// Parses one message of the event stream (a text frame or an NDJSON line).
pub fn parse_message(text: &str) -> Result<StreamMessage, FormatError> {
    const WHAT: &str = "event frame";
    match serde_json::from_str::<EventFrame<'static>>(text) {
        Ok(frame) => {
            check_version(WHAT, frame.format_version)?;
            Ok(StreamMessage::Event(Box::new(frame)))
        }
        Err(e) => match serde_json::from_str::<Head>(text) {
            Ok(Head {
                error: Some(error),
                format_version: None,
            }) => Ok(StreamMessage::Error(error)),
            _ => Err(explain(WHAT, text.as_bytes(), e)),
        },
    }
}

/// The state at an event id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateSnapshot {
    pub format_version: u32,
    pub event_id: u64,
    #[serde(with = "crate::json")]
    pub state: State,
}

impl StateSnapshot {
    /// Reads a snapshot (the body of `GET /api/v1/state`).
    pub fn from_slice(bytes: &[u8]) -> Result<StateSnapshot, FormatError> {
        const WHAT: &str = "state snapshot";
        let snapshot: StateSnapshot =
            serde_json::from_slice(bytes).map_err(|e| explain(WHAT, bytes, e))?;
        check_version(WHAT, snapshot.format_version)?;
        Ok(snapshot)
    }
}

/// Writes the snapshot of `state` at `event_id` (the body of `GET /api/v1/state`) as it is
/// read by [`StateSnapshot::from_slice`], without a copy of its text.
pub fn write_state_snapshot<W: Write>(mut w: W, event_id: u64, state: &State) -> io::Result<()> {
    write!(
        w,
        "{{\"formatVersion\":{FORMAT_VERSION},\"eventId\":{event_id},\"state\":"
    )?;
    crate::json::to_writer(&mut w, state).map_err(io::Error::from)?;
    w.write_all(b"}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::ids::AgentId;

    fn stored() -> Stored {
        Stored {
            term: 3,
            ts: TimeMs(5),
            body: Body::AgentRunChanged {
                agent: AgentId::new("a").unwrap(),
                old: None,
                new: 7,
            },
        }
    }

    #[test]
    fn frames_round_trip_with_their_term() {
        let s = stored();
        let text = EventFrame::of(65536, &s).to_json().unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["formatVersion"], FORMAT_VERSION);
        assert_eq!(json["type"], "AgentRunChanged");
        assert_eq!(json["event"]["type"], "agentRunChanged");
        assert_eq!(json["event"]["new"], format!("{:032x}", 7));
        assert!(
            json["event"].get("old").is_none(),
            "unset fields are left out"
        );
        match parse_message(&text).unwrap() {
            StreamMessage::Event(f) => assert_eq!(f.into_stored(), (65536, s)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_message(
                &ErrorFrame {
                    error: "reload the snapshot".into()
                }
                .to_json()
            )
            .unwrap(),
            StreamMessage::Error("reload the snapshot".into())
        );
        assert!(matches!(
            parse_message("{}"),
            Err(FormatError::Unversioned { .. })
        ));
    }

    #[test]
    fn a_newer_format_is_refused_naming_both_versions() {
        let s = stored();
        let mut json: serde_json::Value =
            serde_json::from_str(&EventFrame::of(1, &s).to_json().unwrap()).unwrap();
        let newer = FORMAT_VERSION + 1;
        json["formatVersion"] = newer.into();
        let e = parse_message(&json.to_string()).unwrap_err();
        assert_eq!(
            e,
            FormatError::Newer {
                what: "event frame",
                found: newer
            }
        );
        let text = e.to_string();
        assert!(text.contains(&format!("version {newer}")), "{text}");
        assert!(
            text.contains(&format!("version {FORMAT_VERSION}")),
            "{text}"
        );
        // Also when the newer frame no longer parses as this build's.
        json["event"] = serde_json::json!({"type": "somethingNew"});
        assert!(matches!(
            parse_message(&json.to_string()),
            Err(FormatError::Newer { .. })
        ));

        let mut bytes = Vec::new();
        write_state_snapshot(&mut bytes, 9, &State::new()).unwrap();
        let back = StateSnapshot::from_slice(&bytes).unwrap();
        assert_eq!((back.event_id, back.state), (9, State::new()));
        let newer_state = String::from_utf8(bytes).unwrap().replace(
            &format!("\"formatVersion\":{FORMAT_VERSION}"),
            &format!("\"formatVersion\":{newer}"),
        );
        let e = StateSnapshot::from_slice(newer_state.as_bytes()).unwrap_err();
        assert!(
            matches!(
                e,
                FormatError::Newer {
                    what: "state snapshot",
                    ..
                }
            ),
            "{e}"
        );
    }
}
