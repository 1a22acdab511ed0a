//! `POST /deploy`: files (JSON `{files, removed}` or one YAML body) checked by the machine
//! together with what is deployed; `?dryRun=true` answers the diff and changes nothing,
//! `?force=true` deploys although orders would be stranded.

use super::body::{Kind, Shape, items, object, optional, parse as parse_body, required};
use super::orders::command_error;
use super::{Api, ApiError, Caller, stopping};
use crate::config::Role;
use crate::core::Input;
use crate::machine::{DeployRefused, DeployRequest};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use ordo_model::deploy::Removals;
use ordo_model::yaml::SourceFile;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::sync::oneshot;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    #[serde(default)]
    files: Vec<DeployFile>,
    #[serde(default)]
    removed: Removals,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployFile {
    name: String,
    text: String,
}

impl Shape for DeployBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        let map = object(
            json,
            at,
            &[
                optional("files", Kind::Array),
                optional("removed", Kind::Any),
            ],
        )?;
        items(map, at, "files", |file, at| {
            object(
                file,
                at,
                &[
                    required("name", Kind::String),
                    required("text", Kind::String),
                ],
            )
            .map(|_| ())
        })?;
        if let Some(r) = map.get("removed").filter(|r| !r.is_null()) {
            let kinds = object(
                r,
                "removed",
                &[
                    optional("workflows", Kind::Array),
                    optional("agents", Kind::Array),
                    optional("locks", Kind::Array),
                    optional("boards", Kind::Array),
                    optional("schedules", Kind::Array),
                    optional("calendars", Kind::Array),
                    optional("subagents", Kind::Array),
                ],
            )?;
            for kind in [
                "workflows",
                "agents",
                "locks",
                "boards",
                "schedules",
                "calendars",
                "subagents",
            ] {
                items(kinds, "removed", kind, |name, at| match name {
                    Json::String(_) => Ok(()),
                    _ => Err(format!("{at} must be a name (a string)")),
                })?;
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeployQuery {
    name: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
}

/// The answer to a refused deployment: 400 with the diagnostics, or 409 with the diff.
pub(super) fn refused(r: &DeployRefused) -> ApiError {
    match r {
        DeployRefused::Invalid(diags) => ApiError {
            details: Some(Json::Array(
                diags.iter().map(|d| json!(d.to_string())).collect(),
            )),
            ..ApiError::bad(r.to_string())
        },
        DeployRefused::Conflict { diff, .. } => ApiError {
            details: Some(serde_json::to_value(diff).unwrap_or(Json::Null)),
            ..ApiError::new(StatusCode::CONFLICT, r.to_string())
        },
    }
}

/// `POST /deploy`: all files at once, all or nothing; JSON `{files, removed}` or one YAML body.
pub async fn deploy(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DeployQuery>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Admin)?;
    let is_yaml = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("yaml"));
    let (files, removed) = if is_yaml {
        // `curl --data-binary @inventory.yaml -H 'Content-Type: application/yaml'`: one file,
        // which may hold many `---` documents.
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::bad("the YAML body is not UTF-8"))?;
        let name = q.name.unwrap_or_else(|| "request.yaml".into());
        (vec![SourceFile::new(name, text)], Removals::default())
    } else {
        let body: DeployBody = parse_body(&body)?;
        let files = body
            .files
            .into_iter()
            .map(|f| SourceFile::new(f.name, f.text))
            .collect();
        (files, body.removed)
    };
    let request = DeployRequest {
        files,
        removed,
        dry_run: q.dry_run,
        force: q.force,
    };
    let (tx, rx) = oneshot::channel();
    api.core
        .send(Input::DeployFiles {
            request: Box::new(request),
            reply: tx,
        })
        .await
        .map_err(|_| stopping())?;
    let reply = rx.await.map_err(|_| stopping())?.map_err(command_error)?;
    Ok(axum::Json(
        serde_json::to_value(reply).unwrap_or(Json::Null),
    ))
}
