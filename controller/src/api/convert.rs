//! JSON views of model types: plain JSON values for variables, order summaries, and events
//! as the stream sends them (`{"eventId","ts","key","event"}`).

use crate::record::{Body, Stored};
use ordo_model::order::{Holder, KeyedEvent, Order};
use ordo_model::value::{Value, Vars};
use ordo_model::wire::{AgentEventBody, Stream};
use serde_json::{Value as Json, json};

/// Longest string or list accepted in a variable, and the deepest nesting.
const VALUE_DEPTH_MAX: usize = 8;

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

fn holder_json(h: &Holder) -> Json {
    match h {
        Holder::Controller => json!({"controller": null}),
        Holder::Attaching(a) => json!({"attaching": a}),
        Holder::Agent(a) => json!({"agent": a}),
        Holder::Detaching(a) => json!({"detaching": a}),
    }
}

/// An event as the stream sends it.
pub fn event_json(event_id: u64, stored: &Stored) -> Json {
    let (key, event) = match &stored.body {
        Body::Event(e) => keyed(e),
        Body::Agent { agent, body, .. } => match body {
            AgentEventBody::Order(e) => {
                let (key, mut event) = keyed(e);
                event["agent"] = json!(agent);
                (key, event)
            }
            AgentEventBody::Output {
                order_id,
                stream,
                chunk,
            } => (
                order_id.to_string(),
                json!({
                    "type": match stream { Stream::Stdout => "Stdout", Stream::Stderr => "Stderr" },
                    "text": String::from_utf8_lossy(chunk),
                    "agent": agent,
                }),
            ),
            AgentEventBody::OutputTruncated {
                order_id,
                cap_bytes,
            } => (
                order_id.to_string(),
                json!({"type": "OutputTruncated", "capBytes": cap_bytes, "agent": agent}),
            ),
        },
        Body::AgentRunChanged { agent, old, new } => (
            format!("agent:{agent}"),
            json!({
                "type": "AgentRunChanged",
                "old": old.map(|r| format!("{r:032x}")),
                "new": format!("{new:032x}"),
            }),
        ),
    };
    json!({ "eventId": event_id, "ts": stored.ts.0, "key": key, "event": event })
}

fn keyed(e: &KeyedEvent) -> (String, Json) {
    let event = match e {
        KeyedEvent::Order { event, .. } => {
            let mut v = serde_json::to_value(event).unwrap_or(Json::Null);
            let detail = event.to_string();
            wrap(&mut v, event.name(), detail);
            v
        }
        KeyedEvent::Board { event, .. } => {
            let mut v = serde_json::to_value(event).unwrap_or(Json::Null);
            wrap(&mut v, "Board", event.to_string());
            v
        }
        KeyedEvent::Item(item) => {
            let mut v = json!({});
            wrap(&mut v, "Item", item.to_string());
            v
        }
    };
    (e.key(), event)
}

/// Turns serde's `{"Variant": {...}}` or `"Variant"` into `{"type": "Variant", ..fields,
/// "text": "<one line>"}`.
fn wrap(v: &mut Json, name: &str, text: String) {
    let fields = match v.take() {
        Json::Object(mut m) if m.len() == 1 => match m.values_mut().next().map(Json::take) {
            Some(Json::Object(inner)) => inner,
            Some(other) => {
                let mut f = serde_json::Map::new();
                f.insert("value".into(), other);
                f
            }
            None => serde_json::Map::new(),
        },
        _ => serde_json::Map::new(),
    };
    let mut out = serde_json::Map::new();
    out.insert("type".into(), json!(name));
    out.extend(fields);
    out.insert("text".into(), json!(text));
    *v = Json::Object(out);
}

#[cfg(test)]
mod tests {
    use super::*;

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
