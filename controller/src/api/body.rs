//! Request bodies: JSON whose fields are checked (names, presence, JSON types) before they
//! are read, so that a mistake is answered with where it is and what was expected
//! (`unknown field "extra" in the body; its fields are orders`, `orders[2].id must be a
//! string, not a number`) and an unknown field is refused everywhere, nested objects included.

use super::ApiError;
use axum::body::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};

/// What a field's JSON value must be (`null` counts as absent for an optional field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Array,
    /// Checked later, with its own message (variables, instants).
    Any,
}

/// One field a body object may have.
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

pub const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

pub const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

/// A body type whose JSON shape is checked before it is deserialised.
pub trait Shape: DeserializeOwned {
    /// Checks `json`, found at `at` ("the body", "orders[2]").
    fn check(json: &Json, at: &str) -> Result<(), String>;
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn path(at: &str, field: &str) -> String {
    if at == "the body" {
        field.to_owned()
    } else {
        format!("{at}.{field}")
    }
}

/// Checks that `json` is an object with only `fields`, each of its kind, the required ones
/// present; returns the object.
pub fn object<'a>(
    json: &'a Json,
    at: &str,
    fields: &[Field],
) -> Result<&'a Map<String, Json>, String> {
    let Json::Object(map) = json else {
        return Err(format!(
            "{at} must be a JSON object, not {}",
            type_name(json)
        ));
    };
    let names = || fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
    if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|f| f.name == *k)) {
        return Err(if fields.is_empty() {
            format!("unknown field {unknown:?} in {at}; it has no fields")
        } else {
            format!(
                "unknown field {unknown:?} in {at}; its fields are {}",
                names()
            )
        });
    }
    for f in fields {
        match map.get(f.name) {
            None | Some(Json::Null) if f.required => {
                return Err(format!("{at} needs the field {:?}", f.name));
            }
            None | Some(Json::Null) => {}
            Some(v) => {
                let fits = match f.kind {
                    Kind::String => v.is_string(),
                    Kind::Array => v.is_array(),
                    Kind::Any => true,
                };
                if !fits {
                    let wanted = match f.kind {
                        Kind::String => "a string",
                        Kind::Array => "an array",
                        Kind::Any => "any value",
                    };
                    return Err(format!(
                        "{} must be {wanted}, not {}",
                        path(at, f.name),
                        type_name(v)
                    ));
                }
            }
        }
    }
    Ok(map)
}

/// Checks each item of the array field `name` of `map` (at `at`) with `check`.
pub fn items(
    map: &Map<String, Json>,
    at: &str,
    name: &str,
    check: impl Fn(&Json, &str) -> Result<(), String>,
) -> Result<(), String> {
    if let Some(Json::Array(list)) = map.get(name) {
        for (i, item) in list.iter().enumerate() {
            check(item, &format!("{}[{i}]", path(at, name)))?;
        }
    }
    Ok(())
}

/// Reads a JSON body of type `T`; an empty body and `null` read as `{}`.
pub fn parse<T: Shape>(body: &Bytes) -> Result<T, ApiError> {
    let json: Json = if body.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?
    };
    let json = if json.is_null() {
        Json::Object(Map::new())
    } else {
        json
    };
    T::check(&json, "the body").map_err(ApiError::bad)?;
    serde_json::from_value(json).map_err(|e| ApiError::bad(format!("bad body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: &[Field] = &[
        required("id", Kind::String),
        optional("list", Kind::Array),
        optional("any", Kind::Any),
    ];

    #[test]
    fn mistakes_are_named_with_their_place() {
        let check = |v: Json| object(&v, "orders[2]", FIELDS).map(|_| ()).unwrap_err();
        assert_eq!(
            check(json!({"id": "a", "extra": 1})),
            "unknown field \"extra\" in orders[2]; its fields are id, list, any"
        );
        assert_eq!(check(json!({})), "orders[2] needs the field \"id\"");
        assert_eq!(
            check(json!({"id": null})),
            "orders[2] needs the field \"id\""
        );
        assert_eq!(
            check(json!({"id": 5})),
            "orders[2].id must be a string, not a number"
        );
        assert_eq!(
            check(json!({"id": "a", "list": {}})),
            "orders[2].list must be an array, not an object"
        );
        assert_eq!(
            check(json!([1])),
            "orders[2] must be a JSON object, not an array"
        );
        assert!(object(&json!({"id": "a", "list": null, "any": {}}), "x", FIELDS).is_ok());
        let e = object(&json!({"x": 1}), "the body", &[]).unwrap_err();
        assert_eq!(e, "unknown field \"x\" in the body; it has no fields");
    }
}
