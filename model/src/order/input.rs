//! The door for order input: the rules and limits every order passes where it enters.
//!
//! One rule book, used wherever an order or its variables come from outside the workflow:
//! [`command()`](super::command()) for `Add` (the controller's API), `Resume` and `Answer`
//! (their variables), and the `addOrder` instruction (the new order's arguments, in
//! [`step_with`](super::step_with)). The model has no configuration: the caller passes
//! [`OrderLimits`] (the controller from its `[limits]`).
//!
//! # Rules
//!
//! | what | rule | refused as |
//! |---|---|---|
//! | order id | at most `order_id_bytes_max` bytes (and the syntax of [`OrderId`]) | too long |
//! | all variables together | at most `order_args_bytes_max` encoded bytes | too large |
//! | a variable's name | at most `arg_name_bytes_max` bytes | too long |
//! | a variable's name | letters, digits and `_`, not starting with a digit ([`is_var_name`], the rule of workflow variable names) | bad name |
//! | a variable's name | not a protected environment name ([`crate::env::protected`]: `LD_*`, `PATH`, ...) | protected |
//! | a variable's value | at most `arg_value_bytes_max` encoded bytes | too large |
//! | `scheduledFor` | from [`SCHEDULED_FOR_MS_MIN`] (1970-01-01T00:00:00Z) to [`SCHEDULED_FOR_MS_MAX`] (9999-12-31T23:59:59.999Z) | bad instant |
//!
//! The checks run in this order: id, total size, then each variable in name order (name,
//! then value), then the instant; the first failure is the answer.
//!
//! # Encoded bytes
//!
//! The bytes the variables take in the journal's encoding (postcard), computed without
//! encoding: a value is a 1-byte tag, then nothing (missing), 1 byte (boolean), 8 bytes
//! (number), a varint length and the UTF-8 bytes (string), or a varint count and the
//! elements (list); variables are a varint count, then per variable a varint length, the
//! name's bytes and the value. [`vars_encoded_bytes`] is exactly `postcard::to_allocvec(vars).len()`.

use crate::env::{ARG_ENV_PREFIX, protected};
use crate::ids::{ORDER_ID_BYTES_MAX, OrderId};
use crate::time::TimeMs;
use crate::value::{Value, Vars, is_var_name};
use serde::{Deserialize, Serialize};

/// Default of [`OrderLimits::order_args_bytes_max`]: 64 KiB.
pub const ORDER_ARGS_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Default of [`OrderLimits::arg_name_bytes_max`]: the longest workflow variable name.
pub const ARG_NAME_BYTES_MAX_DEFAULT: usize = crate::ids::NAME_BYTES_MAX;
/// Default of [`OrderLimits::arg_value_bytes_max`]: 32 KiB, well below the 128 KiB Linux
/// allows for one environment string.
pub const ARG_VALUE_BYTES_MAX_DEFAULT: usize = 32 * 1024;
/// Default of [`OrderLimits::order_id_bytes_max`]: the longest [`OrderId`].
pub const ORDER_ID_BYTES_MAX_DEFAULT: usize = ORDER_ID_BYTES_MAX;

/// The earliest `scheduledFor`: 1970-01-01T00:00:00Z.
pub const SCHEDULED_FOR_MS_MIN: i64 = 0;
/// The latest `scheduledFor`: 9999-12-31T23:59:59.999Z (the last instant RFC 3339 can write).
pub const SCHEDULED_FOR_MS_MAX: i64 = 253_402_300_799_999;

/// Limits on what an order brings in. Every field is greater than 0, and
/// `order_id_bytes_max` is at most [`ORDER_ID_BYTES_MAX`] (the caller checks its config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLimits {
    /// All of an order's variables together, in encoded bytes.
    pub order_args_bytes_max: usize,
    /// One variable's name, in bytes.
    pub arg_name_bytes_max: usize,
    /// One variable's value, in encoded bytes.
    pub arg_value_bytes_max: usize,
    /// An order id given from outside, in bytes.
    pub order_id_bytes_max: usize,
}

impl Default for OrderLimits {
    fn default() -> OrderLimits {
        OrderLimits {
            order_args_bytes_max: ORDER_ARGS_BYTES_MAX_DEFAULT,
            arg_name_bytes_max: ARG_NAME_BYTES_MAX_DEFAULT,
            arg_value_bytes_max: ARG_VALUE_BYTES_MAX_DEFAULT,
            order_id_bytes_max: ORDER_ID_BYTES_MAX_DEFAULT,
        }
    }
}

/// Why order input is refused. [`InputError::TooLarge`] is "too large" (HTTP 413): content
/// over a size limit; the others are bad input (HTTP 400), [`InputError::TooLong`] among
/// them: an identifier (order id, variable name) longer than its limit is a bad identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{what} is {bytes} bytes; at most {max} bytes are allowed (limit {limit} = {max})")]
    TooLarge {
        /// What is too large, e.g. `the variables` or `the value of variable "x"`.
        what: String,
        bytes: usize,
        /// The limit's name, as in the controller's `[limits]`.
        limit: &'static str,
        max: usize,
    },
    #[error(
        "{what} is {bytes} bytes long; at most {max} bytes are allowed (limit {limit} = {max})"
    )]
    TooLong {
        /// What is too long, e.g. `order id "abc..."`.
        what: String,
        bytes: usize,
        /// The limit's name, as in the controller's `[limits]`.
        limit: &'static str,
        max: usize,
    },
    #[error(
        "variable name {name:?} is not valid: use letters, digits and '_', not starting with a digit"
    )]
    BadName { name: String },
    #[error(
        "variable {name} may not be given to an order: {name} {why}, so it never comes from order input; a job gets order variables only through its workflow's `env:` and as {ARG_ENV_PREFIX}<name>"
    )]
    Protected { name: String, why: &'static str },
    #[error(
        "scheduledFor {ms} is not between {SCHEDULED_FOR_MS_MIN} (1970-01-01T00:00:00Z) and {SCHEDULED_FOR_MS_MAX} (9999-12-31T23:59:59.999Z) milliseconds since the epoch"
    )]
    BadInstant { ms: i64 },
}

impl InputError {
    /// The limit that was exceeded and its value, for a "too large" or "too long" error.
    pub fn limit(&self) -> Option<(&'static str, usize)> {
        match self {
            InputError::TooLarge { limit, max, .. } | InputError::TooLong { limit, max, .. } => {
                Some((limit, *max))
            }
            _ => None,
        }
    }
}

/// At most this many characters of a refused name are shown.
const SHOWN_CHARS_MAX: usize = 40;

fn shown(name: &str) -> String {
    if name.chars().count() > SHOWN_CHARS_MAX {
        let cut: String = name.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{cut:?}...")
    } else {
        format!("{name:?}")
    }
}

impl OrderLimits {
    /// An order id given from outside (its syntax is [`OrderId`]'s).
    pub fn check_id(&self, id: &str) -> Result<(), InputError> {
        if id.len() > self.order_id_bytes_max {
            return Err(InputError::TooLong {
                what: format!("order id {}", shown(id)),
                bytes: id.len(),
                limit: "order_id_bytes_max",
                max: self.order_id_bytes_max,
            });
        }
        Ok(())
    }

    /// Variables given to an order (its arguments, or `resume`/`answer` variables).
    pub fn check_vars(&self, vars: &Vars) -> Result<(), InputError> {
        let total = vars_encoded_bytes(vars);
        if total > self.order_args_bytes_max {
            return Err(InputError::TooLarge {
                what: format!("the {} variables together", vars.len()),
                bytes: total,
                limit: "order_args_bytes_max",
                max: self.order_args_bytes_max,
            });
        }
        for (name, value) in vars {
            if name.len() > self.arg_name_bytes_max {
                return Err(InputError::TooLong {
                    what: format!("variable name {}", shown(name)),
                    bytes: name.len(),
                    limit: "arg_name_bytes_max",
                    max: self.arg_name_bytes_max,
                });
            }
            if !is_var_name(name) {
                return Err(InputError::BadName { name: name.clone() });
            }
            if let Some(why) = protected(name) {
                return Err(InputError::Protected {
                    name: name.clone(),
                    why,
                });
            }
            let bytes = encoded_bytes(value);
            if bytes > self.arg_value_bytes_max {
                return Err(InputError::TooLarge {
                    what: format!("the value of variable {name}"),
                    bytes,
                    limit: "arg_value_bytes_max",
                    max: self.arg_value_bytes_max,
                });
            }
        }
        Ok(())
    }

    /// Everything an added order brings in: id, variables, instant.
    pub fn check_add(
        &self,
        id: &OrderId,
        vars: &Vars,
        scheduled_for: Option<TimeMs>,
    ) -> Result<(), InputError> {
        self.check_id(id.as_str())?;
        self.check_vars(vars)?;
        if let Some(t) = scheduled_for {
            check_instant(t)?;
        }
        Ok(())
    }
}

/// A `scheduledFor` instant.
pub fn check_instant(t: TimeMs) -> Result<(), InputError> {
    if (SCHEDULED_FOR_MS_MIN..=SCHEDULED_FOR_MS_MAX).contains(&t.0) {
        Ok(())
    } else {
        Err(InputError::BadInstant { ms: t.0 })
    }
}

/// Bytes of a postcard varint holding `n`.
fn varint_bytes(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits as usize).div_ceil(7).max(1)
}

/// The bytes `value` takes in the journal's encoding (see the module doc).
pub fn encoded_bytes(value: &Value) -> usize {
    // Iterative: a value nested deeper than the stack allows is still measured.
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(1);
        let own = match v {
            Value::Missing => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 8,
            Value::String(s) => varint_bytes(s.len()).saturating_add(s.len()),
            Value::List(items) => {
                stack.extend(items.iter());
                varint_bytes(items.len())
            }
            Value::Map(entries) => {
                stack.extend(entries.values());
                entries.keys().fold(varint_bytes(entries.len()), |sum, k| {
                    sum.saturating_add(varint_bytes(k.len()))
                        .saturating_add(k.len())
                })
            }
        };
        total = total.saturating_add(own);
    }
    total
}

/// The bytes `vars` take in the journal's encoding (see the module doc).
pub fn vars_encoded_bytes(vars: &Vars) -> usize {
    vars.iter().fold(varint_bytes(vars.len()), |sum, (k, v)| {
        sum.saturating_add(varint_bytes(k.len()))
            .saturating_add(k.len())
            .saturating_add(encoded_bytes(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(items: &[(&str, Value)]) -> Vars {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn encoded_bytes_are_the_postcard_size() {
        let samples = [
            Value::Missing,
            Value::Bool(true),
            Value::Number(-1.5),
            Value::String(String::new()),
            Value::String("x".repeat(127)),
            Value::String("x".repeat(128)),
            Value::String("é".repeat(70_000)),
            Value::List(vec![]),
            Value::List(vec![
                Value::from("a"),
                Value::List(vec![Value::from(1), Value::Missing]),
                Value::Bool(false),
            ]),
            Value::List((0..200).map(|i| Value::from(i64::from(i))).collect()),
            Value::Map(std::collections::BTreeMap::from([
                ("k".to_owned(), Value::from("v")),
                ("nested".to_owned(), Value::List(vec![Value::Bool(true)])),
            ])),
        ];
        for v in &samples {
            assert_eq!(
                encoded_bytes(v),
                postcard::to_allocvec(v).unwrap().len(),
                "{v:?}"
            );
        }
        let all: Vars = samples
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("v{i}"), v.clone()))
            .collect();
        assert_eq!(
            vars_encoded_bytes(&all),
            postcard::to_allocvec(&all).unwrap().len()
        );
        assert_eq!(vars_encoded_bytes(&Vars::new()), 1);
    }

    #[test]
    fn a_deep_list_is_measured_without_recursion() {
        let mut v = Value::Missing;
        for _ in 0..100_000 {
            v = Value::List(vec![v]);
        }
        assert_eq!(encoded_bytes(&v), 100_000 * 2 + 1);
        // Dropping such a value recurses; leak it rather than overflow the test's stack.
        std::mem::forget(v);
    }

    #[test]
    fn sizes_over_each_limit_are_too_large_and_name_the_limit() {
        let limits = OrderLimits::default();
        let big = Value::String("x".repeat(ARG_VALUE_BYTES_MAX_DEFAULT));
        let e = limits.check_vars(&vars(&[("a", big)])).unwrap_err();
        assert_eq!(
            e.limit(),
            Some(("arg_value_bytes_max", ARG_VALUE_BYTES_MAX_DEFAULT))
        );
        assert!(e.to_string().contains("variable a"), "{e}");
        let just = Value::String("x".repeat(ARG_VALUE_BYTES_MAX_DEFAULT - 4));
        assert_eq!(limits.check_vars(&vars(&[("a", just.clone())])), Ok(()));
        // Three values that each fit are too many together.
        let three = vars(&[("a", just.clone()), ("b", just.clone()), ("c", just)]);
        let e = limits.check_vars(&three).unwrap_err();
        assert_eq!(
            e.limit(),
            Some(("order_args_bytes_max", ORDER_ARGS_BYTES_MAX_DEFAULT))
        );
        assert!(
            e.to_string().contains("order_args_bytes_max = 65536"),
            "{e}"
        );
        let long = "n".repeat(ARG_NAME_BYTES_MAX_DEFAULT + 1);
        let e = limits
            .check_vars(&vars(&[(long.as_str(), Value::Bool(true))]))
            .unwrap_err();
        assert_eq!(e.limit().map(|l| l.0), Some("arg_name_bytes_max"));
        let small = OrderLimits {
            order_id_bytes_max: 3,
            ..OrderLimits::default()
        };
        let e = small
            .check_add(&OrderId::new("abcd").unwrap(), &Vars::new(), None)
            .unwrap_err();
        assert_eq!(e.limit(), Some(("order_id_bytes_max", 3)));
        assert_eq!(
            small.check_add(&OrderId::new("abc").unwrap(), &Vars::new(), None),
            Ok(())
        );
    }

    #[test]
    fn names_must_be_identifiers_and_not_protected() {
        let limits = OrderLimits::default();
        for bad in ["", "9bad", "a-b", "a b", "ä", "x.y"] {
            assert_eq!(
                limits.check_vars(&vars(&[(bad, Value::Bool(true))])),
                Err(InputError::BadName {
                    name: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
        for name in ["LD_PRELOAD", "PATH", "BASH_ENV", "PYTHONPATH"] {
            let e = limits
                .check_vars(&vars(&[(name, Value::from("x"))]))
                .unwrap_err();
            assert!(
                matches!(&e, InputError::Protected { name: n, .. } if n == name),
                "{e:?}"
            );
            assert!(e.to_string().contains(name), "{e}");
            assert_eq!(e.limit(), None);
        }
        assert_eq!(
            limits.check_vars(&vars(&[
                ("FOO", Value::from("x")),
                ("_x1", Value::from(1)),
                ("path", Value::from("/bin"))
            ])),
            Ok(())
        );
    }

    #[test]
    fn instants_must_lie_between_1970_and_9999() {
        let limits = OrderLimits::default();
        let id = OrderId::new("o").unwrap();
        for ms in [
            SCHEDULED_FOR_MS_MIN,
            1_700_000_000_000,
            SCHEDULED_FOR_MS_MAX,
        ] {
            assert_eq!(
                limits.check_add(&id, &Vars::new(), Some(TimeMs(ms))),
                Ok(())
            );
        }
        for ms in [i64::MIN, -1, SCHEDULED_FOR_MS_MAX + 1, i64::MAX] {
            assert_eq!(
                limits.check_add(&id, &Vars::new(), Some(TimeMs(ms))),
                Err(InputError::BadInstant { ms })
            );
        }
    }
}
