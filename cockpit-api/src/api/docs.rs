//! The OpenAPI document of the cockpit API (`GET /api/v1/openapi.json`, no token needed).

use super::{agents, bulk, cluster, commands, plan, queues, read, stream};
use axum::response::Response;
use ordo_api::view::{STATE_NAMES, VALUE_DEPTH_MAX};
use ordo_model::env;
use ordo_model::ids;
use ordo_model::order::input::{self, ARG_NAME_BYTES_MAX_DEFAULT};
use serde_json::{Value as Json, json};
use std::sync::LazyLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ordo cockpit API",
        description = "A stateless view of the Ordo controller: reads come from the cockpit's view \
of the controller's event stream, commands are checked against the caller's role and forwarded \
to the controller. Send `Authorization: Bearer <token>` (WebSockets may pass `?access_token=`). \
Roles: viewer reads, operator also acts on orders and notices, admin also deploys and steers the \
controller pair. Errors are `{\"error\": \"...\"}` with 400 (bad body or parameter), 401 (no or \
unknown token), 403 (role), 404, 409, 410 (events no longer kept), 413 (body too large), 502 \
(controller unreachable), 503 (no controller is active: `active` names the active one when known)."
    ),
    paths(
        read::health,
        read::health_v1,
        read::whoami,
        read::overview,
        read::orders,
        read::order,
        read::workflows,
        read::workflow,
        read::agents,
        queues::queues,
        read::locks,
        read::boards,
        read::snapshot,
        read::state,
        read::metrics,
        commands::deploy,
        commands::add_orders,
        commands::cancel,
        commands::suspend,
        commands::resume,
        commands::answer,
        commands::go,
        commands::remove_order,
        bulk::resume,
        commands::post_notice,
        agents::join_token,
        agents::remove_subagent,
        commands::order_log,
        stream::order_log_ws,
        stream::events_long_poll,
        stream::events_ws,
        plan::show,
        plan::skip,
        plan::pause,
        plan::resume,
        plan::explain,
        plan::cancel_day,
        plan::backfill,
        cluster::status,
        cluster::switchover,
        cluster::add_node,
        cluster::remove_node,
        openapi_json,
    ),
    components(schemas(crate::convert::StepJson, crate::convert::BlockJson)),
    modifiers(&BearerAuth),
    tags(
        (name = "orders", description = "Orders, their history and job output"),
        (name = "commands", description = "Forwarded to the controller"),
        (name = "inventory", description = "Workflows, agents, locks, notice boards"),
        (name = "events", description = "The controller's event stream and state"),
        (name = "cockpit", description = "The cockpit itself"),
        (name = "plan", description = "The daily plan: schedules, their planned orders and what became of them"),
        (name = "cluster", description = "The controller pair: every voter's health; switchover and membership (admin), forwarded to the active controller"),
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "cockpit",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Response {
    static DOCUMENT: LazyLock<Json> = LazyLock::new(document);
    super::json_response(&*DOCUMENT)
}

/// The document as served: utoipa's, with what its attributes cannot say added by [`refine`].
pub fn document() -> Json {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Json::Null);
    refine(&mut doc);
    doc
}

/// A name: a workflow, board, agent ([`ordo_model::ids`]).
fn name_schema() -> Json {
    json!({
        "type": "string",
        "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$",
        "maxLength": ids::NAME_BYTES_MAX,
    })
}

/// A raft node id of the controller pair.
fn node_id_schema() -> Json {
    json!({"type": "integer", "format": "uint64", "minimum": 1, "maximum": u64::MAX})
}

/// An order id; `|` only in fork children's ids, which no one adds.
fn order_id_schema(children: bool) -> Json {
    // Beyond ASCII: what `ordo_model::ids::is_unicode_ok` takes.
    let u = ids::UNICODE_OK_CLASS;
    let pattern = if children {
        format!("^(?:[A-Za-z0-9|#:@]|{u})(?:[A-Za-z0-9._|#:@+-]|{u})*$")
    } else {
        format!("^(?:[A-Za-z0-9#:@]|{u})(?:[A-Za-z0-9._#:@+-]|{u})*$")
    };
    json!({"type": "string", "pattern": pattern, "maxLength": ids::ORDER_ID_BYTES_MAX})
}

/// A variable's value ([`ordo_model::value::Value`]) at `depth` lists deep: `Value` at the
/// top, `Value1`, `Value2`, ... inside lists; at [`VALUE_DEPTH_MAX`] a list must be empty.
fn value_schema(depth: usize) -> (String, Json) {
    let name = |d: usize| {
        if d == 0 {
            "Value".to_owned()
        } else {
            format!("Value{d}")
        }
    };
    let (list, map) = if depth < VALUE_DEPTH_MAX {
        let inner = json!({"$ref": format!("#/components/schemas/{}", name(depth + 1))});
        (
            json!({"type": "array", "items": inner}),
            json!({"type": "object", "additionalProperties": inner}),
        )
    } else {
        (
            json!({"type": "array", "maxItems": 0}),
            json!({"type": "object", "maxProperties": 0}),
        )
    };
    let schema = json!({
        "description": format!(
            "A variable's value: null (not set), a boolean, a number, a string, a list of values, or a map (an object) of values; lists and maps nest at most {VALUE_DEPTH_MAX} deep (this is depth {depth})."
        ),
        "oneOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "number"},
            {"type": "string"},
            list,
            map,
        ],
    });
    (name(depth), schema)
}

/// Variables given from outside: names as the model's door takes them
/// ([`ordo_model::order::input`]: the syntax of variable names, their default length limit, no
/// protected environment name), values as [`value_schema`].
fn vars_schema() -> Json {
    json!({
        "type": ["object", "null"],
        "propertyNames": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "maxLength": ARG_NAME_BYTES_MAX_DEFAULT,
            "not": {"pattern": env::protected_pattern()},
        },
        "additionalProperties": {"$ref": "#/components/schemas/Value"},
    })
}

/// Headers that make a request a WebSocket upgrade (RFC 6455 §4.1).
fn websocket_headers() -> Json {
    let header = |name: &str, schema: Json| json!({"name": name, "in": "header", "required": true, "schema": schema});
    json!([
        header("Connection", json!({"type": "string", "enum": ["Upgrade"]})),
        header("Upgrade", json!({"type": "string", "enum": ["websocket"]})),
        header(
            "Sec-WebSocket-Version",
            json!({"type": "string", "enum": ["13"]})
        ),
        header(
            "Sec-WebSocket-Key",
            json!({"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$"})
        ),
    ])
}

/// Unsigned integers: utoipa writes `format: int64` (whose range ends at 2^63 - 1) for
/// `u64`; the server takes the whole range.
fn unsigned(v: &mut Json) {
    match v {
        Json::Object(map) => {
            let is_unsigned =
                map.get("type") == Some(&json!("integer")) && map.get("minimum") == Some(&json!(0));
            match map.get("format").and_then(Json::as_str) {
                Some("int64") if is_unsigned => {
                    map.insert("format".into(), json!("uint64"));
                    map.insert("maximum".into(), json!(u64::MAX));
                }
                Some("int32") if is_unsigned => {
                    map.insert("format".into(), json!("uint32"));
                    map.insert("maximum".into(), json!(u32::MAX));
                }
                _ => {}
            }
            map.values_mut().for_each(unsigned);
        }
        Json::Array(items) => items.iter_mut().for_each(unsigned),
        _ => {}
    }
}

/// What utoipa's attributes do not say: the syntax of ids and names, the JSON of variables,
/// the closed shape of request bodies (the controller refuses unknown fields), the allowed
/// values of enumerations, unsigned ranges, and the upgrade headers of WebSocket routes.
fn refine(doc: &mut Json) {
    unsigned(doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Json::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                let Some(params) = operation.get_mut("parameters").and_then(Json::as_array_mut)
                else {
                    continue;
                };
                for p in params.iter_mut() {
                    let schema = match (p["in"].as_str(), p["name"].as_str()) {
                        (Some("path"), Some("id")) if path.starts_with("/api/v1/cluster/") => {
                            node_id_schema()
                        }
                        (Some("path"), Some("id")) => order_id_schema(true),
                        (Some("path"), Some("name" | "board")) => name_schema(),
                        (Some("query"), Some("schedule")) => name_schema(),
                        (Some("path" | "query"), Some("date" | "from" | "until"))
                            if path.starts_with("/api/v1/plan") =>
                        {
                            json!({
                                "type": "string",
                                "format": "date",
                                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                            })
                        }
                        (Some("query"), Some("state")) => {
                            json!({"type": "string", "enum": STATE_NAMES})
                        }
                        (Some("query"), Some("queue")) => {
                            json!({"type": "string", "enum": ordo_api::queue::QUEUE_NAMES})
                        }
                        (Some("query"), Some("limit")) => {
                            json!({"type": "integer", "minimum": 1, "maximum": u64::MAX})
                        }
                        _ => continue,
                    };
                    p["schema"] = schema;
                }
                if path.ends_with("/ws")
                    && let Json::Array(headers) = websocket_headers()
                {
                    params.extend(headers);
                }
            }
        }
    }
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Json::as_object_mut)
    else {
        return;
    };
    for depth in 0..=VALUE_DEPTH_MAX {
        let (name, schema) = value_schema(depth);
        schemas.insert(name, schema);
    }
    let mut set = |schema: &str, field: &str, value: Json| {
        if let Some(props) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(Json::as_object_mut)
        {
            props.insert(field.into(), value);
        }
    };
    set("NewOrder", "id", order_id_schema(false));
    set("NewOrder", "workflow", name_schema());
    set("NewOrder", "args", vars_schema());
    set(
        "NewOrder",
        "scheduledFor",
        json!({
            "description": "When to start: ms since the epoch, or an RFC 3339 instant; from 1970 to the end of 9999.",
            "oneOf": [
                {"type": "null"},
                {
                    "type": "integer",
                    "format": "int64",
                    "minimum": input::SCHEDULED_FOR_MS_MIN,
                    "maximum": input::SCHEDULED_FOR_MS_MAX,
                },
                {
                    "type": "string",
                    "format": "date-time",
                    "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-",
                },
            ],
        }),
    );
    set(
        "KillBody",
        "kill",
        json!({"type": ["string", "null"], "enum": ["term", "kill", null]}),
    );
    set(
        "ResumeBody",
        "position",
        json!({
            "type": ["string", "null"],
            "description": "index/block/index/...: `2`, `1/try/0`, `0/then:1/3`, `4/fork:left/0`",
            "pattern": "^[0-9]{1,9}(/(else|forklist|try|catch|do|then:[0-9]{1,9}|fork:[A-Za-z0-9][A-Za-z0-9._-]*)/[0-9]{1,9})*$",
            "maxLength": 1000,
        }),
    );
    set("ResumeBody", "vars", vars_schema());
    set(
        "ErrorBody",
        "details",
        json!({
            "description": "Deploy: every problem of the inventory as `file:line:col: error: ...`; a limit that was exceeded: `{limit, max}`.",
            "oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {
                    "type": "object",
                    "properties": {
                        "limit": {"type": "string"},
                        "max": {"type": "integer", "minimum": 0},
                    },
                    "required": ["limit", "max"],
                },
            ],
        }),
    );
    set("AnswerBody", "vars", vars_schema());
    set("NodeBody", "id", node_id_schema());
    let mut to = node_id_schema();
    to["type"] = json!(["integer", "null"]);
    set("SwitchoverBody", "to", to);
    for closed in [
        "NewOrder",
        "NewOrders",
        "KillBody",
        "ResumeBody",
        "AnswerBody",
        "GoBody",
        "NoticeBody",
        "DeployBody",
        "DeployFile",
        "SwitchoverBody",
        "NodeBody",
    ] {
        if let Some(s) = schemas.get_mut(closed).and_then(Json::as_object_mut) {
            s.insert("additionalProperties".into(), json!(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::ids::{OrderId, WorkflowName};
    use ordo_model::position::Position;

    fn pattern(schema: &Json) -> regex::Regex {
        regex::Regex::new(schema["pattern"].as_str().expect("a pattern")).expect("a regex")
    }

    fn param<'a>(doc: &'a Json, path: &str, method: &str, name: &str) -> &'a Json {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
    }

    #[test]
    fn ids_names_and_positions_match_what_the_model_takes() {
        let doc = document();
        let order = &param(&doc, "/api/v1/orders/{id}", "get", "id")["schema"];
        let name = &param(&doc, "/api/v1/workflows/{name}", "get", "name")["schema"];
        let new_order = &doc["components"]["schemas"]["NewOrder"]["properties"]["id"];
        let position = &doc["components"]["schemas"]["ResumeBody"]["properties"]["position"];
        let samples = [
            "a",
            "A-1",
            "0.x",
            "_a",
            "-a",
            ".",
            "",
            "a b",
            "a|b",
            "|a",
            "#2026-11-23#nightly@02:00",
            "a/b",
            "é",
            "a\n",
            "x:y",
            "1/try/0",
            "2",
            "0/then:1/3",
            "4/fork:left/0",
            "1/try",
            "1/fork:/0",
            "1/nope/0",
            "01/else/2",
        ];
        for s in samples {
            let fits = |schema: &Json| {
                pattern(schema).is_match(s)
                    && s.len() as u64 <= schema["maxLength"].as_u64().unwrap_or(u64::MAX)
            };
            assert_eq!(fits(order), OrderId::new(s).is_ok(), "order id {s:?}");
            assert_eq!(
                fits(new_order),
                OrderId::new(s).is_ok() && !s.contains('|'),
                "new order id {s:?}"
            );
            assert_eq!(fits(name), WorkflowName::new(s).is_ok(), "name {s:?}");
            assert_eq!(
                fits(position),
                s.parse::<Position>().is_ok(),
                "position {s:?}"
            );
        }
        let long = "a".repeat(ids::ORDER_ID_BYTES_MAX + 1);
        assert!(OrderId::new(&long).is_err());
        assert_eq!(order["maxLength"], ids::ORDER_ID_BYTES_MAX);
    }

    #[test]
    fn bodies_are_closed_and_values_nest_as_deep_as_the_controller_takes() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for body in [
            "NewOrder",
            "NewOrders",
            "KillBody",
            "ResumeBody",
            "AnswerBody",
            "GoBody",
        ] {
            assert_eq!(schemas[body]["additionalProperties"], false, "{body}");
        }
        let mut depth = 0;
        let mut name = "Value".to_owned();
        while let Some(next) = schemas[&name]["oneOf"][4]["items"]["$ref"].as_str() {
            name = next.rsplit('/').next().unwrap_or_default().to_owned();
            depth += 1;
        }
        assert_eq!(depth, VALUE_DEPTH_MAX);
        assert_eq!(schemas[&name]["oneOf"][4]["maxItems"], 0);
        assert_eq!(schemas[&name]["oneOf"][5]["maxProperties"], 0);
        let state = &param(&doc, "/api/v1/orders", "get", "state")["schema"]["enum"];
        assert_eq!(state.as_array().map(Vec::len), Some(STATE_NAMES.len()));
        // Event ids and waits are u64: the whole range.
        let after = &param(&doc, "/api/v1/events", "get", "after")["schema"];
        assert_eq!(after["maximum"], u64::MAX);
        // WebSocket routes say they need an upgrade.
        let upgrade = param(&doc, "/api/v1/events/ws", "get", "Upgrade");
        assert_eq!(upgrade["required"], true);
    }

    #[test]
    fn order_lists_and_details_document_the_order_times() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let items = schemas["OrderList"]["properties"]["orders"]["items"]["$ref"].as_str();
        assert_eq!(items, Some("#/components/schemas/OrderRow"));
        for schema in ["OrderRow", "OrderDetail"] {
            let text = schemas[schema].to_string();
            for field in ["addedMs", "startedMs", "endedMs"] {
                assert!(
                    text.contains(&format!("\"{field}\"")),
                    "{schema} {field}: {text}"
                );
            }
        }
        assert!(schemas["OrderDetail"].to_string().contains("\"children\""));
    }
}
