//! Reading inside lists and maps (`$x.key`, `$x[0]`, `$x.a[1].b`), and the variables of
//! `variable(...)` and `argument(...)`.
//!
//! A key a map does not have, or an index past a list's end, gives no value: an error
//! ("$x has no key \"a\"") wherever a value is needed, and the fallback of `default(...)` or
//! of `variable(..., default=...)`. Reading a key of a value that is no map, or indexing a
//! value that is no list or map, is an error at once.

use super::{EvalError, Expr, Scope, eval, eval_err, shown};
use crate::position::Position;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `variable(key, label=…, job=…, default=…)` or `argument(key, default=…)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VarRef {
    pub key: String,
    pub from: VarFrom,
    /// The value when there is none.
    pub default: Option<Expr>,
}

/// Where `variable(...)` and `argument(...)` look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VarFrom {
    /// `variable(key)`: the order variable, as `$key`.
    Order,
    /// `argument(key)`: the order's argument as it was given when the order was added.
    Argument,
    /// `variable(key, label=L)`: what the last outcome at the step labelled `L` carried.
    /// `positions` is filled when the workflow is read (empty in a parsed expression alone).
    Label {
        label: String,
        positions: Vec<Position>,
    },
    /// `variable(key, job=J)`: what the last outcome of a step running job `J` carried;
    /// `positions` are that job's steps, filled when the workflow is read.
    Job {
        job: String,
        positions: Vec<Position>,
    },
}

/// The value of `$name`: the variable itself, or, for a dotted name no variable has
/// (`$x.a.b`), the keys read inside the variable `x`.
pub(super) fn var(scope: &dyn Scope, name: &str) -> Result<Value, EvalError> {
    if let Some(v) = scope.get(name) {
        return Ok(v);
    }
    let mut segments = name.split('.');
    let Some(root) = segments.next() else {
        return Ok(Value::Missing);
    };
    if root.len() == name.len() {
        return Ok(Value::Missing);
    }
    let Some(mut value) = scope.get(root) else {
        return Ok(Value::Missing);
    };
    let mut path = format!("${root}");
    for key in segments {
        value = field(value, key, &path)?;
        if value == Value::Missing {
            return Ok(Value::Missing);
        }
        path.push('.');
        path.push_str(key);
    }
    Ok(value)
}

/// The entry `key` of a map (or element `key` of a list, when `key` is digits), `Missing`
/// when there is none.
pub(super) fn field(value: Value, key: &str, path: &str) -> Result<Value, EvalError> {
    match value {
        Value::Map(mut entries) => Ok(entries.remove(key).unwrap_or(Value::Missing)),
        Value::List(items) if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) => Ok(key
            .parse::<usize>()
            .ok()
            .and_then(|i| items.into_iter().nth(i))
            .unwrap_or(Value::Missing)),
        other => Err(eval_err(format!(
            "{path}.{key}: {path} is {}, not a map",
            shown(&other)
        ))),
    }
}

/// The element at `index` of a list or the entry of a map, `Missing` when there is none.
pub(super) fn index(
    value: Value,
    index: Value,
    path: &dyn fmt::Display,
) -> Result<Value, EvalError> {
    match (value, index) {
        (Value::List(items), Value::Number(n)) => {
            if n.fract() != 0.0 {
                return Err(eval_err(format!(
                    "{path}[{}]: a list's index is a whole number",
                    Value::Number(n)
                )));
            }
            // A negative index counts from the end, as in JS7 (`$list[-1]` is the last).
            let i = if n < 0.0 { items.len() as f64 + n } else { n };
            if i < 0.0 || i >= items.len() as f64 {
                return Ok(Value::Missing);
            }
            Ok(items.into_iter().nth(i as usize).unwrap_or(Value::Missing))
        }
        (Value::Map(mut entries), Value::String(key)) => {
            Ok(entries.remove(&key).unwrap_or(Value::Missing))
        }
        (v @ (Value::List(_) | Value::Map(_)), i) => Err(eval_err(format!(
            "{path}[...]: a {} is indexed by a {}, got {}",
            v.type_name(),
            if matches!(v, Value::List(_)) {
                "number"
            } else {
                "string"
            },
            shown(&i)
        ))),
        (v, _) => Err(eval_err(format!(
            "{path}[...]: {path} is {}, not a list or map",
            shown(&v)
        ))),
    }
}

/// Why `expr`, a read inside a list or map or a dotted variable, has no value.
pub(super) fn missing(expr: &Expr, scope: &dyn Scope) -> Option<String> {
    match expr {
        Expr::Var(name) if name.contains('.') && scope.get(name).is_none() => {
            let mut segments = name.split('.');
            let root = segments.next()?;
            let mut value = scope.get(root)?;
            let mut path = format!("${root}");
            for key in segments {
                let next = field(value.clone(), key, &path).ok()?;
                if next == Value::Missing {
                    return Some(absent(&value, key, &path));
                }
                value = next;
                path.push('.');
                path.push_str(key);
            }
            None
        }
        Expr::Field(base, key) => {
            let value = eval(base, scope).ok()?;
            Some(absent(&value, key, &base.to_string()))
        }
        Expr::Index(base, i) => {
            let value = eval(base, scope).ok()?;
            match (eval(i, scope).ok()?, &value) {
                (Value::String(key), _) => Some(absent(&value, &key, &base.to_string())),
                (Value::Number(n), Value::List(items)) => Some(format!(
                    "{base}[{}]: index {} is out of range of {} elements",
                    Value::Number(n),
                    Value::Number(n),
                    items.len()
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

fn absent(value: &Value, key: &str, path: &str) -> String {
    match value {
        Value::Map(entries) => {
            const KEYS_SHOWN_MAX: usize = 10;
            let keys: Vec<&str> = entries
                .keys()
                .take(KEYS_SHOWN_MAX)
                .map(|k| k.as_str())
                .collect();
            let more = if entries.len() > KEYS_SHOWN_MAX {
                ", ..."
            } else {
                ""
            };
            format!(
                "{path} has no key {key:?} (its keys: {}{more})",
                keys.join(", ")
            )
        }
        Value::List(items) => format!(
            "{path}.{key}: index {key} is out of range of {} elements",
            items.len()
        ),
        other => format!("{path} has no key {key:?}: it is {}", shown(other)),
    }
}

/// The value `variable(...)` or `argument(...)` reads, before its default.
pub(super) fn lookup(var: &VarRef, scope: &dyn Scope) -> Value {
    let found = match &var.from {
        VarFrom::Order => scope.get(&var.key),
        VarFrom::Argument => scope.argument(&var.key),
        VarFrom::Label { positions, .. } | VarFrom::Job { positions, .. } => {
            scope.returned(&var.key, positions)
        }
    };
    found.unwrap_or(Value::Missing)
}

/// The error for a `variable(...)` or `argument(...)` without value and default.
pub(super) fn var_not_set(var: &VarRef) -> String {
    match &var.from {
        VarFrom::Order => format!("variable ${} is not set", var.key),
        VarFrom::Argument => format!(
            "argument({:?}): the order was not given the argument {}, or a step replaced it",
            var.key, var.key
        ),
        VarFrom::Label { label, .. } => format!(
            "variable({:?}, label={label}): no outcome kept at the step labelled {label} has {}",
            var.key, var.key
        ),
        VarFrom::Job { job, .. } => format!(
            "variable({:?}, job={job}): no outcome kept of job {job} has {}",
            var.key, var.key
        ),
    }
}

/// Whether `name` may be written bare after `label=` or `job=`, and is a valid step label:
/// letters, digits, `-`, `_` and `.`, starting with a letter.
pub fn is_bare_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphabetic()
}

impl fmt::Display for VarRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = if self.from == VarFrom::Argument {
            "argument"
        } else {
            "variable"
        };
        write!(f, "{word}(")?;
        super::write_string(f, &self.key)?;
        let named = |f: &mut fmt::Formatter<'_>, what: &str, name: &str| {
            write!(f, ", {what}=")?;
            if is_bare_name(name) {
                f.write_str(name)
            } else {
                super::write_string(f, name)
            }
        };
        match &self.from {
            VarFrom::Order | VarFrom::Argument => {}
            VarFrom::Label { label, .. } => named(f, "label", label)?,
            VarFrom::Job { job, .. } => named(f, "job", job)?,
        }
        if let Some(d) = &self.default {
            write!(f, ", default={d}")?;
        }
        f.write_str(")")
    }
}
