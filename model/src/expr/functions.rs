//! The functions of expressions: what each takes and gives.

use super::{EvalError, Expr, Func, Scope, compile_regex, eval, eval_err, eval_set, not_set};
use crate::value::Value;

impl Func {
    /// Every function, in the order error messages list them.
    pub const ALL: [Func; 12] = [
        Func::ToNumber,
        Func::ToString,
        Func::ToBoolean,
        Func::Matches,
        Func::Length,
        Func::Size,
        Func::Contains,
        Func::Default,
        Func::Substring,
        Func::ReplaceAll,
        Func::Min,
        Func::Max,
    ];

    /// The function's name as written in an expression.
    pub fn name(self) -> &'static str {
        match self {
            Func::ToNumber => "toNumber",
            Func::ToString => "toString",
            Func::ToBoolean => "toBoolean",
            Func::Matches => "matches",
            Func::Length => "length",
            Func::Contains => "contains",
            Func::Default => "default",
            Func::Substring => "substring",
            Func::ReplaceAll => "replaceAll",
            Func::Size => "size",
            Func::Min => "min",
            Func::Max => "max",
        }
    }

    /// The function called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The fewest and the most arguments the function takes.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::ToNumber | Func::ToString | Func::ToBoolean | Func::Length | Func::Size => (1, 1),
            Func::Matches | Func::Contains | Func::Default => (2, 2),
            Func::Substring => (2, 3),
            Func::ReplaceAll => (3, 3),
            // One list, or two or more numbers (or strings).
            Func::Min | Func::Max => (1, MIN_MAX_ARGS_MAX),
        }
    }
}

/// The most arguments `min` and `max` take (a longer series is a list).
pub const MIN_MAX_ARGS_MAX: usize = 16;

/// The text of `expr`, or the error `needs` (what needs a string) with what it got.
fn text(expr: &Expr, scope: &dyn Scope, needs: &str) -> Result<String, EvalError> {
    match eval_set(expr, scope)? {
        Value::String(s) => Ok(s),
        v => Err(eval_err(format!(
            "{needs}, got {} (use toString)",
            v.type_name()
        ))),
    }
}

/// A character index of `substring`: a whole number from 0.
fn char_index(expr: &Expr, scope: &dyn Scope, what: &str) -> Result<usize, EvalError> {
    match eval_set(expr, scope)? {
        Value::Number(n) if n.fract() == 0.0 && n >= 0.0 && n <= u32::MAX as f64 => Ok(n as usize),
        v => Err(eval_err(format!(
            "substring needs a whole number from 0 as its {what}, got {}",
            super::shown(&v)
        ))),
    }
}

pub(super) fn eval_call(func: Func, args: &[Expr], scope: &dyn Scope) -> Result<Value, EvalError> {
    let name = func.name();
    let [first, rest @ ..] = args else {
        return Err(eval_err(format!("{name} called without arguments")));
    };
    let arg = |i: usize| {
        rest.get(i - 1).ok_or_else(|| {
            eval_err(format!(
                "{name} takes {} arguments, got {}",
                func.arity().0,
                args.len()
            ))
        })
    };
    match func {
        Func::Default => match eval(first, scope)? {
            Value::Missing => eval(arg(1)?, scope),
            v => Ok(v),
        },
        Func::ToNumber => match eval_set(first, scope)? {
            Value::Number(n) => Ok(Value::Number(n)),
            Value::Bool(b) => Ok(Value::Number(if b { 1.0 } else { 0.0 })),
            Value::String(s) => match parse_number_text(&s) {
                Some(n) => Ok(Value::Number(n)),
                None => Err(eval_err(format!("toNumber: {s:?} is not a number"))),
            },
            v => Err(eval_err(format!(
                "toNumber needs a string, number or boolean, got {}",
                v.type_name()
            ))),
        },
        Func::ToString => Ok(Value::String(eval_set(first, scope)?.to_string())),
        Func::ToBoolean => match eval_set(first, scope)? {
            Value::Bool(b) => Ok(Value::Bool(b)),
            Value::String(s) if s.trim() == "true" => Ok(Value::Bool(true)),
            Value::String(s) if s.trim() == "false" => Ok(Value::Bool(false)),
            Value::String(s) => Err(eval_err(format!(
                "toBoolean: {s:?} is neither \"true\" nor \"false\""
            ))),
            v => Err(eval_err(format!(
                "toBoolean needs a string or boolean, got {}",
                v.type_name()
            ))),
        },
        Func::Length | Func::Size => match eval_set(first, scope)? {
            Value::String(s) => Ok(Value::Number(s.chars().count() as f64)),
            Value::List(items) => Ok(Value::Number(items.len() as f64)),
            Value::Map(entries) => Ok(Value::Number(entries.len() as f64)),
            v => Err(eval_err(format!(
                "{name} needs a string, list or map, got {}",
                v.type_name()
            ))),
        },
        Func::Matches => {
            let text = text(first, scope, "matches needs a string to search")?;
            let pattern = match eval_set(arg(1)?, scope)? {
                Value::String(s) => s,
                v => {
                    return Err(eval_err(format!(
                        "matches needs a string as its regular expression, got {}",
                        v.type_name()
                    )));
                }
            };
            Ok(Value::Bool(compile_regex(&pattern)?.is_match(&text)))
        }
        Func::Contains => {
            let haystack = eval_set(first, scope)?;
            let needle = eval_set(arg(1)?, scope)?;
            match (&haystack, &needle) {
                (Value::List(items), _) => Ok(Value::Bool(items.contains(&needle))),
                (Value::Map(entries), Value::String(key)) => {
                    Ok(Value::Bool(entries.contains_key(key)))
                }
                (Value::String(s), Value::String(n)) => Ok(Value::Bool(s.contains(n.as_str()))),
                (Value::String(_), Value::Missing) => Err(not_set(&args[1], scope)),
                (Value::String(_) | Value::Map(_), other) => Err(eval_err(format!(
                    "contains on a {} needs a string to look for, got {}",
                    haystack.type_name(),
                    other.type_name()
                ))),
                (other, _) => Err(eval_err(format!(
                    "contains needs a list, map or string, got {}",
                    other.type_name()
                ))),
            }
        }
        Func::Substring => {
            let s = text(first, scope, "substring needs a string")?;
            let chars = s.chars().count();
            let begin = char_index(arg(1)?, scope, "begin")?;
            let end = match rest.get(1) {
                Some(e) => char_index(e, scope, "end")?,
                None => chars,
            };
            if begin > end || end > chars {
                return Err(eval_err(format!(
                    "substring({begin}, {end}) is outside the {chars} characters of {:?}",
                    super::shorten(&s)
                )));
            }
            Ok(Value::String(
                s.chars().skip(begin).take(end - begin).collect(),
            ))
        }
        Func::ReplaceAll => {
            let s = text(first, scope, "replaceAll needs a string")?;
            let pattern = text(
                arg(1)?,
                scope,
                "replaceAll needs a string as its regular expression",
            )?;
            let replacement = text(
                arg(2)?,
                scope,
                "replaceAll needs a string as its replacement",
            )?;
            let re = compile_regex(&pattern)?;
            Ok(Value::String(
                re.replace_all(&s, replacement.as_str()).into_owned(),
            ))
        }
        Func::Min | Func::Max => {
            let values = if rest.is_empty() {
                match eval_set(first, scope)? {
                    Value::List(items) => items,
                    v => {
                        return Err(eval_err(format!(
                            "{name} of one argument needs a list, got {}",
                            v.type_name()
                        )));
                    }
                }
            } else {
                args.iter()
                    .map(|a| eval_set(a, scope))
                    .collect::<Result<Vec<_>, _>>()?
            };
            extreme(name, func == Func::Max, values)
        }
    }
}

/// The least (or greatest) of numbers, or of strings by code point.
fn extreme(name: &str, greatest: bool, values: Vec<Value>) -> Result<Value, EvalError> {
    let mut best: Option<Value> = None;
    for v in values {
        let better = match (&best, &v) {
            (None, Value::Number(_) | Value::String(_)) => true,
            (Some(Value::Number(b)), Value::Number(x)) => {
                if greatest {
                    x > b
                } else {
                    x < b
                }
            }
            (Some(Value::String(b)), Value::String(x)) => {
                if greatest {
                    x > b
                } else {
                    x < b
                }
            }
            (_, other) => {
                return Err(eval_err(format!(
                    "{name} compares numbers or strings, all of one type; got {}{}",
                    other.type_name(),
                    best.as_ref()
                        .map(|b| format!(" with {}", b.type_name()))
                        .unwrap_or_default()
                )));
            }
        };
        if better {
            best = Some(v);
        }
    }
    best.ok_or_else(|| eval_err(format!("{name} of an empty list has no value")))
}

/// Reads a decimal number from text (surrounding spaces allowed), refusing infinities and NaN.
pub(super) fn parse_number_text(s: &str) -> Option<f64> {
    let t = s.trim();
    // Rust also reads "inf" and "NaN", which are not numbers here.
    if t.bytes()
        .any(|c| c.is_ascii_alphabetic() && c != b'e' && c != b'E')
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}
