//! The size of an event as the event stream sends it, and the limit that keeps every event
//! readable.
//!
//! Readers of the stream (the cockpit's follower, `ordo watch`, the cockpit's proxies) take one
//! event per WebSocket text frame or NDJSON line, [`ordo_api::frame::EventFrame`], and
//! refuse frames above their own limit. `limits.event_bytes_max` is the largest frame the
//! controller streams; readers size their limits by it (the cockpit's `frame_bytes_max` and the
//! CLI default to [`EVENT_BYTES_MAX_DEFAULT`], and the controller's `GET /health` tells its
//! value as `eventBytesMax`). What keeps events within it:
//!
//! - a command or deployment whose events would be larger is refused (413) before anything is
//!   journaled ([`oversize`]);
//! - an agent's output chunk holds at most [`OUTPUT_CHUNK_BYTES_MAX`] bytes (the agent refuses a
//!   larger `log_chunk_bytes_max`), so its event is at most
//!   `OUTPUT_JSON_BYTES_PER_BYTE × OUTPUT_CHUNK_BYTES_MAX + JSON_OVERHEAD_BYTES`, which is
//!   below [`EVENT_BYTES_MIN`], the smallest `event_bytes_max` the configuration accepts;
//! - an event the controller makes by itself (stepping orders, agent events) that is larger
//!   anyway is logged as an error when it is journaled; a reader that cannot take it reports
//!   it (the cockpit's `/health` turns `stuck` and names the event).
//!
//! Measuring an event's JSON costs an encoding, so it is measured only when its postcard size
//! times [`JSON_BYTES_PER_POSTCARD_BYTE`] plus [`JSON_OVERHEAD_BYTES`] could pass the limit.
//! That factor is the largest expansion of any shape an event can hold (a list of numbers far
//! from 1: nine postcard bytes each, and in the event's text each is written out in full,
//! `-0.000…00012345678901234567`, over 300 bytes); the tests hold it for the worst shapes.

use crate::record::Stored;
use ordo_api::frame::EventFrame;
pub use ordo_api::limits::{EVENT_BYTES_MAX_DEFAULT, EVENT_BYTES_MIN};
pub use ordo_model::wire::OUTPUT_CHUNK_BYTES_MAX;

/// At most this many bytes of JSON per byte of postcard, for any event.
pub const JSON_BYTES_PER_POSTCARD_BYTE: usize = 48;

/// At most this many bytes of JSON per byte of job output (`255,` in the chunk and `\u0001`
/// in the text).
pub const OUTPUT_JSON_BYTES_PER_BYTE: usize = 10;

/// JSON bytes of an event beyond what its contents account for (field names, ids, time,
/// key, type, the short texts around values).
pub const JSON_OVERHEAD_BYTES: usize = 64 << 10;

const _: () = assert!(
    OUTPUT_CHUNK_BYTES_MAX * OUTPUT_JSON_BYTES_PER_BYTE + JSON_OVERHEAD_BYTES <= EVENT_BYTES_MIN
);
const _: () = assert!(EVENT_BYTES_MIN <= EVENT_BYTES_MAX_DEFAULT);

/// The bytes of the text frame (NDJSON line without its newline) of an event.
pub fn frame_bytes(event_id: u64, stored: &Stored) -> usize {
    EventFrame::of(event_id, stored)
        .to_json()
        .map_or(usize::MAX, |text| text.len())
}

/// Whether an event of `postcard_bytes` may be larger than `event_bytes_max` as JSON.
pub fn may_exceed(postcard_bytes: usize, event_bytes_max: usize) -> bool {
    postcard_bytes
        .saturating_mul(JSON_BYTES_PER_POSTCARD_BYTE)
        .saturating_add(JSON_OVERHEAD_BYTES)
        > event_bytes_max
}

/// The frame size of `stored` when it is larger than `event_bytes_max`; `None` when it fits.
/// Measured with the largest event id, so the answer holds whatever id it gets.
pub fn oversize(stored: &Stored, event_bytes_max: usize) -> Option<usize> {
    let postcard = postcard::experimental::serialized_size(stored).unwrap_or(usize::MAX);
    if !may_exceed(postcard, event_bytes_max) {
        return None;
    }
    let bytes = frame_bytes(u64::MAX, stored);
    (bytes > event_bytes_max).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Body;
    use ordo_model::ids::{AgentId, OrderId, VersionId, WorkflowName};
    use ordo_model::order::{KeyedEvent, OrderEvent};
    use ordo_model::time::TimeMs;
    use ordo_model::value::{Value, Vars};
    use ordo_model::wire::{AgentEventBody, Stream};

    fn added(vars: Vars) -> Stored {
        Stored {
            term: 1,
            ts: TimeMs(i64::MIN),
            body: Body::Event(KeyedEvent::order(
                &OrderId::new("o").unwrap(),
                OrderEvent::Added {
                    workflow: WorkflowName::new("w").unwrap(),
                    version: VersionId(1),
                    vars,
                    scheduled_for: None,
                    added_by: None,
                },
            )),
        }
    }

    fn output(chunk: Vec<u8>) -> Stored {
        Stored {
            term: 1,
            ts: TimeMs(i64::MIN),
            body: Body::Agent {
                agent: AgentId::new("a").unwrap(),
                run_id: u128::MAX,
                agent_event_id: u64::MAX,
                body: AgentEventBody::Output {
                    order_id: OrderId::new("o").unwrap(),
                    stream: Stream::Stderr,
                    chunk,
                },
            },
        }
    }

    fn postcard(s: &Stored) -> usize {
        postcard::experimental::serialized_size(s).unwrap()
    }

    /// The shapes that grow most from postcard to JSON.
    fn worst_events(n: usize) -> Vec<Stored> {
        let var = |v: Value| Vars::from([("v".to_owned(), v)]);
        vec![
            added(var(Value::List(vec![Value::Missing; n]))),
            added(var(Value::List(vec![Value::Bool(false); n]))),
            added(var(Value::List(vec![
                Value::Number(
                    -1.2345678901234567e-300
                );
                n
            ]))),
            added(var(Value::List(vec![
                Value::Number(1.7976931348623157e308);
                n
            ]))),
            added(var(Value::String("\u{1}".repeat(n)))),
            added(var(Value::String("\"".repeat(n)))),
            added(var(Value::List(vec![Value::List(Vec::new()); n]))),
            added(var(Value::List(vec![Value::String(String::new()); n]))),
            added((0..n).map(|i| (format!("{i}"), Value::Missing)).collect()),
            output(vec![0x01; n]),
            output(vec![0x1f; n]),
            output(vec![0xff; n]),
        ]
    }

    #[test]
    fn the_json_of_every_shape_stays_within_the_factor() {
        for n in [0, 1, 1000, 100_000] {
            for e in worst_events(n) {
                let (p, j) = (postcard(&e), frame_bytes(u64::MAX, &e));
                assert!(
                    j <= p * JSON_BYTES_PER_POSTCARD_BYTE + JSON_OVERHEAD_BYTES,
                    "{j} JSON bytes from {p} postcard bytes: {:?}",
                    ordo_api::view::describe(&e.body).1
                );
            }
        }
    }

    #[test]
    fn output_events_stay_within_their_factor() {
        for byte in 0..=255u8 {
            let n = 10_000;
            let e = output(vec![byte; n]);
            assert!(
                frame_bytes(u64::MAX, &e) <= n * OUTPUT_JSON_BYTES_PER_BYTE + JSON_OVERHEAD_BYTES,
                "byte {byte:#x}"
            );
        }
        let largest = output(vec![0x01; OUTPUT_CHUNK_BYTES_MAX]);
        assert_eq!(oversize(&largest, EVENT_BYTES_MIN), None);
    }

    #[test]
    fn only_large_events_are_measured_and_oversized_ones_are_found() {
        let small = added(Vars::from([("v".to_owned(), Value::from("x"))]));
        assert!(!may_exceed(postcard(&small), EVENT_BYTES_MIN));
        assert_eq!(oversize(&small, EVENT_BYTES_MIN), None);
        let big = added(Vars::from([(
            "v".to_owned(),
            Value::List(vec![Value::Number(-1.2345678901234567e-300); 100_000]),
        )]));
        let bytes = oversize(&big, EVENT_BYTES_MIN).expect("about 35 MiB of JSON");
        assert_eq!(bytes, frame_bytes(u64::MAX, &big));
        assert!(bytes > EVENT_BYTES_MIN);
        assert_eq!(oversize(&big, EVENT_BYTES_MAX_DEFAULT), None);
    }
}
