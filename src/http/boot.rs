//! `/api/boot`: the running state as a packed image, and importing one.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Admin, Reader};
use super::{AppState, LimitedBody};
use crate::boot::{Image, SecretValues, pack, unpack};
use crate::error::Error;
use crate::runtime::Runtime;
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
    apply(&runtime, Upload { bytes: bytes.to_vec(), passphrase, without_secrets }).await.map(Json)
}

/// A packed image to import or compare, with what opens its sealed secret values.
pub(super) struct Upload {
    pub bytes: Vec<u8>,
    pub passphrase: Option<String>,
    /// Leave out the sealed secret values instead of refusing an image whose values no passphrase opened.
    pub without_secrets: bool,
}

/// Checks a packed image whole (every blob, every script, its sealed values) and opens it, or refuses it
/// with every problem.
fn opened(runtime: &Runtime, upload: &Upload) -> Result<Image, Error> {
    let (mut image, mut problems) = unpack(&upload.bytes, upload.passphrase.as_deref());
    problems.extend(runtime.check(&image));
    match image.unopened_secrets() {
        _ if upload.without_secrets => image.secret_values = SecretValues::default(),
        Some(problem) => problems.push(format!("{problem} (X-Image-Passphrase, or ?without_secrets=1)")),
        None => {}
    }
    if problems.is_empty() { Ok(image) } else { Err(Error::InvalidImage { problems }) }
}

/// Imports a packed image in one transaction; answers the boot CID, the number of servers and what
/// each asks for. The API's import and the console's share it.
pub(super) async fn apply(runtime: &AppState, upload: Upload) -> Result<Value, Error> {
    let (boot_cid, servers, asks) = runtime
        .blocking(move |rt| {
            let image = opened(rt, &upload)?;
            rt.import(&image, Origin::Boot)?;
            let mut asks = serde_json::Map::new();
            for server in &image.servers {
                let script = rt.compile(&server.script)?;
                asks.insert(server.name.clone(), crate::server::asks(&server.name, &script.meta));
            }
            Ok((rt.boot_cid()?, image.servers.len(), asks))
        })
        .await?;
    Ok(json!({ "boot_cid": boot_cid, "servers": servers, "asks": asks }))
}

/// What importing a packed image would change, one line each as `switchboard boot diff` prints it
/// (each added or changed server followed by the secrets and hosts it asks for).
pub(super) async fn changes(runtime: &AppState, upload: Upload) -> Result<Vec<String>, Error> {
    runtime
        .blocking(move |rt| {
            let image = opened(rt, &upload)?;
            let asks = |name: &str, script: &[u8]| {
                rt.compile(script).ok().map(|script| crate::server::asks_line(name, &script.meta))
            };
            Ok(crate::boot::diff(&rt.snapshot(false)?, &image, asks))
        })
        .await
}
