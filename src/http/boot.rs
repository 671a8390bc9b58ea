//! `/api/boot`: the running state as a packed image, and importing one.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Admin, Reader};
use super::{AppState, LimitedBody};
use crate::boot::{Image, pack, unpack};
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

/// `POST /api/boot/import` with a packed image: checked whole, then applied in one transaction. Sealed
/// secret values are imported when `X-Image-Passphrase` opens them. The answer lists what each server
/// asks for (`asks`: its secrets and hosts).
pub async fn import(
    _: Admin,
    State(runtime): State<AppState>,
    headers: HeaderMap,
    LimitedBody(bytes): LimitedBody,
) -> Result<Json<Value>, Error> {
    let passphrase = headers.get("x-image-passphrase").and_then(|v| v.to_str().ok()).map(str::to_owned);
    apply(&runtime, bytes.to_vec(), passphrase).await.map(Json)
}

/// Checks a packed image whole (every blob, every script) and opens it, or refuses it with every problem.
fn opened(runtime: &Runtime, bytes: &[u8], passphrase: Option<&str>) -> Result<Image, Error> {
    let (image, mut problems) = unpack(bytes, passphrase);
    problems.extend(runtime.check(&image));
    if problems.is_empty() { Ok(image) } else { Err(Error::InvalidImage { problems }) }
}

/// Imports a packed image in one transaction; answers the boot CID, the number of servers and what
/// each asks for. The API's import and the console's share it.
pub(super) async fn apply(runtime: &AppState, bytes: Vec<u8>, passphrase: Option<String>) -> Result<Value, Error> {
    let (boot_cid, servers, asks) = runtime
        .blocking(move |rt| {
            let image = opened(rt, &bytes, passphrase.as_deref())?;
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
pub(super) async fn changes(
    runtime: &AppState,
    bytes: Vec<u8>,
    passphrase: Option<String>,
) -> Result<Vec<String>, Error> {
    runtime
        .blocking(move |rt| {
            let image = opened(rt, &bytes, passphrase.as_deref())?;
            let asks = |name: &str, script: &[u8]| {
                rt.compile(script).ok().map(|script| crate::server::asks_line(name, &script.meta))
            };
            Ok(crate::boot::diff(&rt.snapshot(false)?, &image, asks))
        })
        .await
}
