//! `/api/secrets`: set, list (names only) and delete secrets. Values go in and never come out.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::auth::{Admin, Reader};
use super::{AppState, LimitedBody};
use crate::error::Error;

/// `GET /api/secrets`: the names of the secrets in the store.
pub async fn list(_: Reader, State(runtime): State<AppState>) -> Result<Json<Value>, Error> {
    let names = runtime.blocking(|rt| rt.secret_names()).await?;
    Ok(Json(json!({ "secrets": names })))
}

/// The parameters of `PUT /api/secrets/{name}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuery {
    allow_empty: Option<String>,
}

/// `PUT /api/secrets/{name}` with the value as the body (one trailing newline is dropped); an empty
/// value only with `?allow_empty=1`.
pub async fn set(
    _: Admin,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<SetQuery>,
    LimitedBody(body): LimitedBody,
) -> Result<StatusCode, Error> {
    let value =
        String::from_utf8(body.to_vec()).map_err(|_| Error::BadRequest("a secret value is UTF-8 text".into()))?;
    let allow_empty = matches!(query.allow_empty.as_deref(), Some("1" | "true"));
    let value = crate::secrets::given_value(&value, allow_empty)
        .map_err(|problem| Error::BadRequest(format!("{name}: {problem} (?allow_empty=1 stores an empty value)")))?
        .to_owned();
    runtime.blocking(move |rt| rt.change_secrets(|secrets| secrets.set(&name, &value))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/secrets/{name}`.
pub async fn remove(_: Admin, State(runtime): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, Error> {
    let missing = name.clone();
    match runtime.blocking(move |rt| rt.change_secrets(|secrets| secrets.remove(&name))).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Error::NotFound(format!("no secret named '{missing}' in the store"))),
    }
}
