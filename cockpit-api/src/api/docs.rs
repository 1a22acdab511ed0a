//! The OpenAPI document of the cockpit API (`GET /api/v1/openapi.json`, no token needed).

use super::{commands, read, stream};
use axum::response::Response;
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
Roles: viewer reads, operator also acts on orders and notices, admin also deploys. Errors are \
`{\"error\": \"...\"}` with 400 (bad body or parameter), 401 (no or unknown token), 403 (role), \
404, 409, 410 (events no longer kept), 413 (body too large), 502 (controller unreachable)."
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
        commands::post_notice,
        commands::order_log,
        stream::order_log_ws,
        stream::events_long_poll,
        stream::events_ws,
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
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "cockpit",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Response {
    super::json_response(&ApiDoc::openapi())
}
