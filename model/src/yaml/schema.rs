//! The JSON Schema (draft-07) of an inventory YAML document, generated from the vocabulary
//! in `spec` so that editors complete and check what the validator accepts.
//!
//! The schema checks shapes (fields, types, patterns, ranges); what needs the whole inventory
//! (references, duplicates, unreachable steps) and the syntax of expressions and templates
//! are left to `ordo check`.

use super::spec::{self, Field, Obj, Ty};
use serde_json::{Map, Value, json};

const UNICODE_OK: &str = crate::ids::UNICODE_OK_CLASS;

/// The schema as a JSON value; `deploy/schema/ordo-inventory.schema.json` holds it.
pub fn json_schema() -> Value {
    let mut defs = Map::new();
    let mut objs: Vec<&'static Obj> = Vec::new();
    for o in spec::OBJECTS.iter().chain(spec::INSTRUCTIONS.iter()) {
        collect(o, &mut objs);
    }
    for o in &objs {
        defs.insert(o.id.to_owned(), object(o));
    }
    // Any step may carry a label (`yaml::labels`), read apart from the instruction's fields.
    for o in spec::INSTRUCTIONS.iter() {
        if let Some(props) = defs
            .get_mut(o.id)
            .and_then(|d| d.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            props.insert(
                super::labels::LABEL.to_owned(),
                json!({
                    "description": "The step's label, unique in its workflow; `variable(key, label=…)` reads what the step returned.",
                    "type": "string",
                    "pattern": "^[A-Za-z][A-Za-z0-9._-]*$",
                    "maxLength": crate::ids::NAME_BYTES_MAX,
                }),
            );
        }
    }
    defs.insert(
        "object".into(),
        json!({
            "description": "An inventory object, recognised by its first key.",
            "oneOf": spec::OBJECTS.iter().map(|o| reference(o.id)).collect::<Vec<_>>(),
        }),
    );
    let mut steps: Vec<Value> = vec![json!({
        "description": "An instruction written as a bare word.",
        "enum": spec::BARE_INSTRUCTIONS,
    })];
    steps.extend(spec::INSTRUCTIONS.iter().map(|o| reference(o.id)));
    defs.insert(
        "step".into(),
        json!({ "description": "One instruction of a workflow.", "oneOf": steps }),
    );
    defs.insert(
        "block".into(),
        json!({
            "description": "A list of steps, run in order.",
            "type": "array",
            "items": reference("step"),
        }),
    );
    defs.insert(
        "name".into(),
        json!({
            "description": "A name: letters, digits, '-', '_' and '.', starting with a letter or digit.",
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$",
            "minLength": 1,
            "maxLength": crate::ids::NAME_BYTES_MAX,
        }),
    );
    defs.insert(
        "branchName".into(),
        json!({
            "description": "A fork branch name: a name, or any character beyond ASCII but control characters, white space and marks that reorder text.",
            "type": "string",
            "pattern": format!("^(?:[A-Za-z0-9]|{UNICODE_OK})(?:[A-Za-z0-9._-]|{UNICODE_OK})*$"),
            "minLength": 1,
            "maxLength": crate::ids::NAME_BYTES_MAX,
        }),
    );
    defs.insert(
        "varName".into(),
        json!({
            "description": "A variable name: letters, digits and '_', not starting with a digit.",
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
        }),
    );
    defs.insert(
        "duration".into(),
        json!({
            "description": "A duration: 90s, 10m, 1h30m, 500ms, 2d, or a number of seconds.",
            "type": ["string", "integer"],
            "pattern": "^\\s*([0-9]+|([0-9]+(ms|s|m|h|d))+)\\s*$",
            "minimum": 0,
        }),
    );
    defs.insert(
        "template".into(),
        json!({
            "description": "A template: text with $name, ${expression} and $$ (a literal $).",
            "type": ["string", "number", "boolean"],
        }),
    );
    defs.insert(
        "expression".into(),
        json!({
            "description": "An expression, e.g. $returnCode == 3 && matches($host, \"^db\").",
            "type": ["string", "number", "boolean"],
        }),
    );
    defs.insert(
        "date".into(),
        json!({
            "description": "A date: YYYY-MM-DD.",
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        }),
    );
    defs.insert(
        "timeOfDay".into(),
        json!({
            "description": "A time of day: HH:MM or HH:MM:SS, 00:00 to 23:59:59.",
            "type": "string",
            "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
        }),
    );
    defs.insert(
        "url".into(),
        json!({
            "description": "wss://host:port",
            "type": "string",
            "pattern": "^wss://([^/\\[\\]:]+|\\[[^\\]]*\\]):[0-9]+(/.*)?$",
        }),
    );
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://ordo.invalid/schema/ordo-inventory.schema.json",
        "title": "Ordo inventory",
        "description": "One YAML document of an Ordo inventory: a workflow, agent, lock, board, schedule or calendar, or a list of them.",
        "oneOf": [
            reference("object"),
            { "type": "array", "items": reference("object") },
        ],
        "definitions": Value::Object(defs),
    })
}

fn reference(id: &str) -> Value {
    json!({ "$ref": format!("#/definitions/{id}") })
}

/// Every mapping type reachable from `o`, each once, in a stable order.
fn collect(o: &'static Obj, out: &mut Vec<&'static Obj>) {
    if out.iter().any(|x| std::ptr::eq(*x, o)) {
        return;
    }
    out.push(o);
    for f in o.fields {
        collect_ty(f.ty, out);
    }
}

fn collect_ty(ty: Ty, out: &mut Vec<&'static Obj>) {
    match ty {
        Ty::Obj(o) | Ty::NullOr(o) | Ty::ExprOr(o) => collect(o, out),
        Ty::List(t) | Ty::OneOrList(t) => collect_ty(*t, out),
        Ty::Jobs => collect(&spec::JOB, out),
        Ty::Params => collect(&spec::PARAMETER, out),
        Ty::Branches => collect(&spec::FORK_BRANCH, out),
        _ => {}
    }
}

fn object(o: &Obj) -> Value {
    let mut props = Map::new();
    for f in o.fields {
        props.insert(f.name.to_owned(), field(f));
    }
    let required: Vec<&str> = o
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut v = json!({
        "description": o.doc,
        "type": "object",
        "properties": props,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        v["required"] = json!(required);
    }
    v
}

fn field(f: &Field) -> Value {
    let mut v = ty(f.ty);
    if let Value::Object(m) = &mut v {
        if m.contains_key("$ref") {
            // Draft-07 ignores the siblings of `$ref`; keep the description visible to editors.
            return json!({ "description": f.doc, "allOf": [v] });
        }
        m.insert("description".into(), json!(f.doc));
    }
    v
}

fn ty(t: Ty) -> Value {
    match t {
        Ty::Name => reference("name"),
        Ty::VarName => reference("varName"),
        Ty::Str => json!({ "type": ["string", "number", "boolean"] }),
        Ty::Url => reference("url"),
        Ty::Template => reference("template"),
        Ty::Expr => reference("expression"),
        Ty::Duration => reference("duration"),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Int { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Ty::IntOrExpr { min, max } => json!({ "anyOf": [
            { "type": "integer", "minimum": min, "maximum": max },
            { "type": "string" },
        ] }),
        Ty::Enum(words) => json!({ "enum": words }),
        Ty::List(item) => json!({ "type": "array", "items": ty(*item) }),
        Ty::Vars => json!({
            "type": "object",
            "propertyNames": reference("varName"),
            "additionalProperties": reference("template"),
        }),
        Ty::Env => json!({
            "type": "object",
            "propertyNames": reference("varName"),
            "patternProperties": {
                crate::env::protected_pattern(): {
                    "description": "A name that changes how a process loads or starts (LD_*, PATH, ...): a constant only, never from variables.",
                    "anyOf": [
                        { "type": ["number", "boolean"] },
                        { "type": "string", "pattern": "^(?:[^$]|\\$\\$)*$" },
                    ],
                },
            },
            "additionalProperties": reference("template"),
        }),
        Ty::Block => reference("block"),
        Ty::Branches => json!({
            "type": "object",
            "propertyNames": reference("branchName"),
            "additionalProperties": {
                "oneOf": [ reference("block"), reference(spec::FORK_BRANCH.id) ],
            },
            "minProperties": 1,
        }),
        Ty::Jobs => json!({
            "type": "object",
            "propertyNames": reference("name"),
            "additionalProperties": reference(spec::JOB.id),
        }),
        Ty::Params => json!({
            "type": "object",
            "propertyNames": reference("varName"),
            "additionalProperties": {
                "oneOf": [ { "type": "null" }, reference(spec::PARAMETER.id) ],
            },
        }),
        Ty::Obj(o) => reference(o.id),
        Ty::NullOr(o) => json!({ "oneOf": [ { "type": "null" }, reference(o.id) ] }),
        Ty::ExprOr(o) => json!({ "oneOf": [ reference("expression"), reference(o.id) ] }),
        Ty::OneOrList(item) => json!({
            "oneOf": [ ty(*item), { "type": "array", "items": ty(*item), "minItems": 1 } ],
        }),
        Ty::Date => reference("date"),
        Ty::TimeOfDay => reference("timeOfDay"),
        Ty::TimeZone => json!({
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9_+/-]*$",
            "examples": ["UTC", "Europe/Berlin", "America/New_York"],
        }),
        Ty::Cron => json!({
            "type": "string",
            "pattern": "^\\s*(@[a-z]+|\\S+(\\s+\\S+){4,5})\\s*$",
        }),
        Ty::Weekdays => json!({
            "type": "string",
            "pattern": "^[A-Za-z]{3}(-[A-Za-z]{3})?$",
            "examples": ["MON", "MON-FRI"],
        }),
        Ty::NoticeExpr => json!({
            "oneOf": [
                { "type": "array", "items": reference("name"), "minItems": 1 },
                { "type": "string", "description": "A notice expression: board names with `&&`, `||` and parentheses." }
            ]
        }),
        Ty::MonthDay => json!({
            "type": "integer",
            "minimum": -31,
            "maximum": 31,
            "not": { "const": 0 },
        }),
    }
}
