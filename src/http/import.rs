//! `POST /api/import/openapi`: an OpenAPI document in, the server script it makes out — compared with
//! the server it would replace, and bound only with `apply=true`.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::Value;

use super::auth::Admin;
use super::{AppState, LimitedBody};
use crate::error::Error;
use crate::openapi::{Plan, Selection};

/// `?name=NAME[&tag=T]…[&operation=ID]…[&apply=true]` with the document (JSON or YAML) as the body.
pub async fn openapi(
    _: Admin,
    State(runtime): State<AppState>,
    RawQuery(query): RawQuery,
    LimitedBody(document): LimitedBody,
) -> Result<Json<Value>, Error> {
    let (mut name, mut selection, mut apply) = (None, Selection::default(), false);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "name" => name = Some(value.into_owned()),
            "tag" => selection.tags.push(value.into_owned()),
            "operation" => selection.operations.push(value.into_owned()),
            "apply" => apply = matches!(value.as_ref(), "true" | "1"),
            other => {
                return Err(Error::BadRequest(format!("unknown parameter '{other}' (name, tag, operation, apply)")));
            }
        }
    }
    let name = name.ok_or_else(|| Error::BadRequest("the parameter 'name' names the server to import as".into()))?;
    let answer = runtime
        .blocking(move |rt| {
            let plan = Plan::new(rt, &document, None, &name, &selection)?;
            if apply {
                plan.apply(rt)?;
            }
            Ok(plan.to_json(apply))
        })
        .await?;
    Ok(Json(answer))
}
