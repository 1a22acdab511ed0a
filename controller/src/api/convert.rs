//! JSON views of model types: plain JSON values for variables, order summaries, and events
//! as the stream sends them (`{"eventId","ts","key","event"}`).

use crate::record::{Body, Stored};
use ordo_model::order::{Holder, KeyedEvent, Order};
use ordo_model::value::{Value, Vars};
use ordo_model::wire::{AgentEventBody, Stream};
use serde_json::{Value as Json, json};

/// The deepest nesting of lists in a variable: a value at this depth may be a list only
/// when it is empty.
pub const VALUE_DEPTH_MAX: usize = 8;

/// Every name [`ordo_model::order::OrderState::name`] gives, in the order the UI shows them;
/// the `state` filters of the controller's and the cockpit's order lists accept these.
pub const STATE_NAMES: [&str; 9] = [
    "fresh",
    "ready",
    "processing",
    "waiting",
    "prompting",
    "suspended",
    "failed",
    "cancelled",
    "finished",
];

/// Checks a `state` filter: one of [`STATE_NAMES`].
pub fn check_state_name(state: &str) -> Result<(), String> {
    if STATE_NAMES.contains(&state) {
        Ok(())
    } else {
        Err(format!(
            "unknown state {state:?}; use one of {}",
            STATE_NAMES.join(", ")
        ))
    }
}

/// A JSON object of variables; numbers, strings, booleans and lists (of those).
pub fn vars_from_json(json: &Json) -> Result<Vars, String> {
    let Json::Object(map) = json else {
        return Err("variables must be a JSON object".into());
    };
    let mut vars = Vars::new();
    for (k, v) in map {
        vars.insert(
            k.clone(),
            value_from_json(v, 0).map_err(|e| format!("variable {k:?}: {e}"))?,
        );
    }
    Ok(vars)
}

fn value_from_json(json: &Json, depth: usize) -> Result<Value, String> {
    if depth > VALUE_DEPTH_MAX {
        return Err(format!("nested deeper than {VALUE_DEPTH_MAX} lists"));
    }
    Ok(match json {
        Json::Null => Value::Missing,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.as_f64().ok_or("number out of range")?),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::List(
            items
                .iter()
                .map(|i| value_from_json(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(_) => {
            return Err("objects are not variable values; use a list or a string".into());
        }
    })
}

pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Missing => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9e15 => json!(*n as i64),
        Value::Number(n) => json!(n),
        Value::String(s) => json!(s),
        Value::List(items) => Json::Array(items.iter().map(value_to_json).collect()),
    }
}

pub fn vars_to_json(vars: &Vars) -> Json {
    Json::Object(
        vars.iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// An order as the API shows it.
pub fn order_json(o: &Order) -> Json {
    json!({
        "id": o.id,
        "workflow": o.workflow,
        "version": o.version.0,
        "state": o.state.name(),
        "stateDetail": o.state.to_string(),
        "position": o.position.to_string(),
        "attempt": o.attempt,
        "vars": vars_to_json(&o.vars),
        "scheduledFor": o.scheduled_for.map(|t| t.0),
        "holder": holder_json(&o.holder),
        "mark": o.mark.as_ref().map(|m| m.to_string()),
        "parent": o.parent,
        "outcomes": o.outcomes.iter().map(|h| json!({
            "position": h.position.to_string(),
            "outcome": h.outcome.to_string(),
        })).collect::<Vec<_>>(),
    })
}

pub fn holder_json(h: &Holder) -> Json {
    match h {
        Holder::Controller => json!({"controller": null}),
        Holder::Attaching(a) => json!({"attaching": a}),
        Holder::Agent(a) => json!({"agent": a}),
        Holder::Detaching(a) => json!({"detaching": a}),
    }
}

/// An event as the stream sends it: `eventId`, `ts`, `key`, a `type` and a one-line `text`
/// for people, and `event`, the lossless JSON of the journaled [`Body`] (a reader that folds
/// it with [`crate::state::State::apply`] gets the controller's state).
pub fn event_json(event_id: u64, stored: &Stored) -> Json {
    let (key, kind, text) = describe(&stored.body);
    json!({
        "eventId": event_id,
        "ts": stored.ts.0,
        "key": key,
        "type": kind,
        "text": text,
        "event": serde_json::to_value(&stored.body).unwrap_or(Json::Null),
    })
}

/// The key, type name and one-line text of an event.
pub fn describe(body: &Body) -> (String, &'static str, String) {
    match body {
        Body::Event(e) => keyed(e),
        Body::Agent { agent, body, .. } => match body {
            AgentEventBody::Order(e) => {
                let (key, kind, text) = keyed(e);
                (key, kind, format!("{text} (agent {agent})"))
            }
            AgentEventBody::Output {
                order_id,
                stream,
                chunk,
            } => (
                order_id.to_string(),
                match stream {
                    Stream::Stdout => "Stdout",
                    Stream::Stderr => "Stderr",
                },
                String::from_utf8_lossy(chunk).into_owned(),
            ),
            AgentEventBody::OutputTruncated {
                order_id,
                cap_bytes,
            } => (
                order_id.to_string(),
                "OutputTruncated",
                format!("output truncated after {cap_bytes} bytes"),
            ),
        },
        Body::AgentRunChanged { agent, old, new } => (
            format!("agent:{agent}"),
            "AgentRunChanged",
            format!(
                "agent {agent} run {} (was {})",
                format_args!("{new:032x}"),
                old.map(|r| format!("{r:032x}"))
                    .unwrap_or_else(|| "none".into())
            ),
        ),
    }
}

fn keyed(e: &KeyedEvent) -> (String, &'static str, String) {
    let kind = match e {
        KeyedEvent::Order { event, .. } => event.name(),
        KeyedEvent::Board { .. } => "Board",
        KeyedEvent::Item(_) => "Item",
    };
    let text = match e {
        KeyedEvent::Order { event, .. } => event.to_string(),
        other => other.to_string(),
    };
    (e.key(), kind, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_name_is_listed() {
        use ordo_model::order::OrderState;
        let states = [
            OrderState::Fresh,
            OrderState::Ready,
            OrderState::Failed,
            OrderState::FailedInFork,
            OrderState::Cancelled,
            OrderState::Finished,
        ];
        for s in &states {
            assert!(check_state_name(s.name()).is_ok(), "{}", s.name());
        }
        let e = check_state_name("bogus").unwrap_err();
        assert!(e.contains("bogus") && e.contains("finished"), "{e}");
    }

    #[test]
    fn variables_convert_both_ways() {
        let j = json!({"n": 3, "s": "x", "b": true, "l": [1, "a"], "m": null});
        let vars = vars_from_json(&j).unwrap();
        assert_eq!(vars["n"], Value::Number(3.0));
        assert_eq!(vars_to_json(&vars), j);
        assert!(
            vars_from_json(&json!({"o": {"x": 1}}))
                .unwrap_err()
                .contains("\"o\"")
        );
        assert!(vars_from_json(&json!([1])).is_err());
    }
}
