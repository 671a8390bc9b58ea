//! `/api/boot`: the running state as a packed image, and importing one.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Admin, Reader};
use super::{AppState, LimitedBody};
use crate::boot::{SecretValues, pack, unpack};
use crate::error::Error;
use crate::store::Origin;

/// `GET /api/boot/export`: the running state, packed (secret names, never values). `X-Boot-Cid` names it.
pub async fn export(_: Reader, State(runtime): State<AppState>) -> Result<Response, Error> {
    let bytes = runtime.blocking(|rt| pack(&rt.snapshot(false)?, None).map_err(Error::Internal)).await?;
    let cid = super::cid_header(&crate::cid::Cid::of(&bytes))?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (header::HeaderName::from_static("x-boot-cid"), cid),
    ];
    Ok((headers, bytes).into_response())
}

/// The parameters of `POST /api/boot/import`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    without_secrets: Option<String>,
}

/// `POST /api/boot/import` with a packed image: checked whole, then applied in one transaction. Sealed
/// secret values are imported when `X-Image-Passphrase` opens them; an image carrying sealed values that
/// no passphrase opened is refused unless `?without_secrets=1`. The answer lists what each server asks
/// for (`asks`: its secrets and hosts).
pub async fn import(
    _: Admin,
    State(runtime): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ImportQuery>,
    LimitedBody(bytes): LimitedBody,
) -> Result<Json<Value>, Error> {
    let passphrase = headers.get("x-image-passphrase").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let without_secrets = matches!(query.without_secrets.as_deref(), Some("1" | "true"));
    let servers = runtime
        .blocking(move |rt| {
            let (mut image, mut problems) = unpack(&bytes, passphrase.as_deref());
            problems.extend(rt.check(&image));
            match image.unopened_secrets() {
                _ if without_secrets => image.secret_values = SecretValues::default(),
                Some(problem) => problems.push(format!("{problem} (X-Image-Passphrase, or ?without_secrets=1)")),
                None => {}
            }
            if !problems.is_empty() {
                return Err(Error::InvalidImage { problems });
            }
            rt.import(&image, Origin::Boot)?;
            let mut asks = serde_json::Map::new();
            for server in &image.servers {
                let script = rt.compile(&server.script)?;
                asks.insert(server.name.clone(), crate::server::asks(&server.name, &script.meta));
            }
            Ok((rt.boot_cid()?, image.servers.len(), asks))
        })
        .await?;
    let (boot_cid, servers, asks) = servers;
    Ok(Json(json!({ "boot_cid": boot_cid, "servers": servers, "asks": asks })))
}
