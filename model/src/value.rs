//! Order variables and expression values.
//!
//! Serde: in binary formats (postcard: journals, agent frames) a [`Value`] is the derived
//! enum encoding, append-only like every persisted enum; in human-readable formats (JSON) it
//! is the plain value: `null` (missing), `true`, a number (integral ones without a fraction),
//! a string, an array, or an object (a map). Numbers that are not finite have no JSON form and are written as
//! `null` (expressions never make them).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// A variable's value. Numbers are `f64` but integers print without a fraction.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The value of a variable that is not set.
    Missing,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Value>),
    /// Named values (JS7's `Object`), keys in order: an order argument given as a JSON
    /// object, or a map parameter's default; read with `$x.key` (see [`crate::expr`]).
    /// Added last (append-only).
    Map(BTreeMap<String, Value>),
}

/// An order's named values.
pub type Vars = BTreeMap<String, Value>;

/// The binary encoding of [`Value`]: the derived one, unchanged.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Value")]
enum Binary {
    Missing,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

/// The largest integer a JSON number carries exactly (2^53).
const JSON_INTEGER_MAX: f64 = 9_007_199_254_740_992.0;

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return Binary::serialize(self, s);
        }
        match self {
            Value::Missing => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n)
                if n.fract() == 0.0
                    && n.abs() <= JSON_INTEGER_MAX
                    && !(*n == 0.0 && n.is_sign_negative()) =>
            {
                s.serialize_i64(*n as i64)
            }
            Value::Number(n) => s.serialize_f64(*n),
            Value::String(text) => s.serialize_str(text),
            Value::List(items) => s.collect_seq(items),
            Value::Map(entries) => s.collect_map(entries),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(PlainVisitor)
        } else {
            Binary::deserialize(d)
        }
    }
}

/// Reads a plain JSON value.
struct PlainVisitor;

impl<'de> serde::de::Visitor<'de> for PlainVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null, a boolean, a number, a string, or an array or object of those")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Missing)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Missing)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Number(n))
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            entries.insert(key, value);
        }
        Ok(Value::Map(entries))
    }
}

/// Whether `name` is a valid variable name: ASCII letters, digits and `_`, not starting with a
/// digit. The one rule for workflow variable names (parameters, `args`, `env`, `as`) and for
/// the names of variables an order is given (see [`crate::order::input`]); lengths are
/// limited separately.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Value {
    /// The name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Missing => "missing",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

impl fmt::Display for Value {
    /// The value as a job sees it in an environment variable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Missing => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => f.write_str(s),
            Value::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
            // `key=value` pairs joined by `,`, keys in order.
            Value::Map(entries) => {
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Value::Number(n)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Number(n as f64)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;

    fn all() -> Vec<Value> {
        vec![
            Value::Missing,
            Value::Bool(false),
            Value::Number(3.0),
            Value::Number(-0.0),
            Value::Number(1.5e-300),
            Value::Number(9_007_199_254_740_993.0),
            Value::Number(-1.7976931348623157e308),
            Value::String("x \"y\"".into()),
            Value::List(vec![Value::List(vec![]), Value::Missing, Value::from(2)]),
            Value::Map(BTreeMap::from([
                ("a".to_owned(), Value::from(1)),
                ("b".to_owned(), Value::List(vec![Value::from("x")])),
            ])),
        ]
    }

    #[test]
    fn json_is_the_plain_value_and_reads_back_exactly() {
        assert_eq!(serde_json::to_string(&Value::Missing).unwrap(), "null");
        assert_eq!(serde_json::to_string(&Value::from(3)).unwrap(), "3");
        assert_eq!(serde_json::to_string(&Value::from(1.5)).unwrap(), "1.5");
        assert_eq!(serde_json::to_string(&Value::from("x")).unwrap(), "\"x\"");
        assert_eq!(
            serde_json::to_string(&Value::List(vec![Value::Bool(true), Value::Missing])).unwrap(),
            "[true,null]"
        );
        for v in all() {
            let text = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, v, "{text}");
            if let (Value::Number(a), Value::Number(b)) = (&v, &back) {
                assert_eq!(a.to_bits(), b.to_bits(), "{text}");
            }
        }
        let map: Value = serde_json::from_str("{\"b\": [1], \"a\": {\"c\": \"x\"}}").unwrap();
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            "{\"a\":{\"c\":\"x\"},\"b\":[1]}"
        );
        assert_eq!(map.to_string(), "a=c=x,b=1");
    }

    #[test]
    fn binary_is_the_derived_enum_encoding() {
        // Variant index, then the content (postcard).
        assert_eq!(postcard::to_allocvec(&Value::Missing).unwrap(), [0]);
        assert_eq!(postcard::to_allocvec(&Value::Bool(true)).unwrap(), [1, 1]);
        assert_eq!(
            postcard::to_allocvec(&Value::from("ab")).unwrap(),
            [3, 2, b'a', b'b']
        );
        for v in all() {
            let bytes = postcard::to_allocvec(&v).unwrap();
            assert_eq!(postcard::from_bytes::<Value>(&bytes).unwrap(), v);
        }
    }
}
