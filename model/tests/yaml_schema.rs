//! `deploy/schema/ordo-inventory.schema.json` is the schema the code generates.
//! Run with `UPDATE_SCHEMA=1` to rewrite the file after changing the YAML vocabulary.

use std::path::PathBuf;

#[test]
fn committed_schema_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/schema/ordo-inventory.schema.json");
    let generated = serde_json::to_string_pretty(&ordo_model::yaml::json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; run `UPDATE_SCHEMA=1 cargo test -p ordo-model --test yaml_schema`",
        path.display()
    );
}

#[test]
fn schema_describes_every_instruction_and_object() {
    let schema = ordo_model::yaml::json_schema();
    let defs = schema["definitions"].as_object().unwrap();
    for name in [
        "workflow",
        "agent",
        "lock",
        "board",
        "job",
        "run",
        "if",
        "fork",
        "forkList",
        "retry",
        "try",
        "fail",
        "finish",
        "lockStep",
        "prompt",
        "cycle",
        "sleep",
        "addOrder",
        "post",
        "expect",
        "consume",
        "break",
        "block",
        "step",
        "duration",
        "template",
        "expression",
        "schedule",
        "repeat",
        "calendar",
        "exclude",
        "dateRange",
        "date",
        "timeOfDay",
    ] {
        assert!(defs.contains_key(name), "no definition {name}");
    }
    let job = &defs["job"];
    assert_eq!(job["additionalProperties"], false);
    assert_eq!(job["required"], serde_json::json!(["agent"]));
    assert!(job["properties"]["graceTimeout"]["description"].is_string());
    // Every `$ref` points at a definition.
    let text = schema.to_string();
    for part in text.split("\"$ref\":\"#/definitions/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(defs.contains_key(name), "dangling $ref {name}");
    }
}

/// A validator for the part of JSON Schema draft-07 the generated schema uses.
mod mini {
    use serde_json::Value;

    pub fn errors(root: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
        let Some(s) = schema.as_object() else {
            return;
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/definitions/");
            errors(root, &root["definitions"][name], v, path, out);
            return;
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                errors(root, sub, v, path, out);
            }
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let ok = one
                .iter()
                .filter(|sub| {
                    let mut e = Vec::new();
                    errors(root, sub, v, path, &mut e);
                    e.is_empty()
                })
                .count();
            if ok != 1 {
                out.push(format!("{path}: {ok} of the oneOf alternatives match"));
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let actual = match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
            if !ok {
                out.push(format!("{path}: {actual} is not {types:?}"));
                return;
            }
        }
        if let Some(words) = s.get("enum").and_then(Value::as_array)
            && !words.contains(v)
        {
            out.push(format!("{path}: {v} not in {words:?}"));
        }
        if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str())
            && !regex::Regex::new(p).unwrap().is_match(text)
        {
            out.push(format!("{path}: {text:?} does not match {p}"));
        }
        if let Some(n) = v.as_f64() {
            if s.get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n < m)
            {
                out.push(format!("{path}: {n} below the minimum"));
            }
            if s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
            {
                out.push(format!("{path}: {n} above the maximum"));
            }
        }
        if let Some(text) = v.as_str() {
            let len = text.chars().count() as u64;
            if s.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
                || s.get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| len > m)
            {
                out.push(format!("{path}: bad length"));
            }
        }
        if let Some(items) = v.as_array()
            && let Some(item_schema) = s.get("items")
        {
            for (i, item) in items.iter().enumerate() {
                errors(root, item_schema, item, &format!("{path}/{i}"), out);
            }
        }
        if let Some(obj) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for req in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !obj.contains_key(req.as_str().unwrap()) {
                    out.push(format!("{path}: missing {req}"));
                }
            }
            if s.get("minProperties")
                .and_then(Value::as_u64)
                .is_some_and(|m| (obj.len() as u64) < m)
            {
                out.push(format!("{path}: too few properties"));
            }
            for (k, val) in obj {
                let sub = format!("{path}/{k}");
                if let Some(names) = s.get("propertyNames") {
                    errors(root, names, &Value::String(k.clone()), &sub, out);
                }
                match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                    (Some(p), _) => errors(root, p, val, &sub, out),
                    (None, Some(Value::Bool(false))) => out.push(format!("{sub}: not allowed")),
                    (None, Some(extra)) if extra.is_object() => errors(root, extra, val, &sub, out),
                    _ => {}
                }
            }
        }
    }
}

fn schema_errors(path: &std::path::Path) -> Vec<String> {
    let schema = ordo_model::yaml::json_schema();
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        mini::errors(&schema, &schema, doc, &format!("doc{i}"), &mut out);
    }
    out
}

#[test]
fn valid_files_pass_the_schema() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("../deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(root.join("tests/good/every-instruction.yaml"));
    for f in files {
        let errors = schema_errors(&f);
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

#[test]
fn the_schema_rejects_shape_errors_too() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    for name in [
        "unknown-fields",
        "wrong-types",
        "unknown-steps",
        "missing-fields",
        "cycles",
        "calendars",
    ] {
        let errors = schema_errors(&root.join(format!("{name}.yaml")));
        assert!(!errors.is_empty(), "{name}: the schema accepts it");
    }
}
