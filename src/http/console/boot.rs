//! `/ui/boot`: download the running state as a packed image; upload one, see what it would change
//! (`boot diff`: servers, variables, secret names, and what each new script asks for) and apply it.
//! The import itself is the API's ([`crate::http::boot`]): checked whole, applied in one transaction.

use axum::extract::Multipart;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::State;
use super::frame::{self, Section};
use super::session::{Editor, Viewer};
use crate::cid::Cid;
use crate::error::Error;
use crate::http::boot::{Upload, apply, changes};

/// `GET /ui/boot`.
pub async fn page(viewer: Viewer, console: State) -> Result<Response, Error> {
    let boot_cid = console.runtime.blocking(|rt| rt.boot_cid()).await?;
    let body = html! {
        h1 { "Boot image" }
        p.muted { "The running state as one verifiable file: every server's script by CID, variables and secret names (never values)." }
        section.card {
            h2 { "Export" }
            p { "Current boot CID " code { (boot_cid) } }
            a href="/ui/boot/export" download data-testid="boot-export" { button { "Download image" } }
        }
        @if !viewer.read_only {
            section.card {
                h2 { "Import" }
                p.muted { "An import replaces the whole state. Nothing changes until you apply, and then all or nothing." }
                form #boot-form hx-post="/ui/boot/diff" hx-encoding="multipart/form-data" hx-target="#boot-changes" {
                    label for="boot-image" { "Packed image" }
                    input #boot-image type="file" name="image" required data-testid="boot-import";
                    label for="boot-passphrase" { "Passphrase " span.muted { "(only for an image with sealed secret values)" } }
                    input #boot-passphrase type="password" name="passphrase" autocomplete="off";
                    label.check { input type="checkbox" name="without_secrets" value="1"; " Import without its sealed secret values" }
                    div.actions { button type="submit" { "Show changes" } }
                }
                div #boot-changes aria-live="polite" {}
            }
        }
    };
    Ok(frame::page(&viewer.csrf, viewer.read_only, Section::Boot, "Boot image", None, body))
}

/// `GET /ui/boot/export`: the packed image as a download.
pub async fn export(_: Viewer, console: State) -> Result<Response, Error> {
    let bytes =
        console.runtime.blocking(|rt| crate::boot::pack(&rt.snapshot(false)?, None).map_err(Error::Internal)).await?;
    let cid = Cid::of(&bytes);
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"switchboard-{cid}.boot.json\""))
        .map_err(|e| Error::internal("download name", e))?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    Ok((headers, bytes).into_response())
}

/// The uploaded image with what opens it, and the CID of the image whose changes were shown.
async fn upload(mut multipart: Multipart) -> Result<(Upload, Option<String>), Error> {
    let bad = |e: axum::extract::multipart::MultipartError| Error::BadRequest(format!("malformed upload: {e}"));
    let mut upload = Upload { bytes: Vec::new(), passphrase: None, without_secrets: false };
    let mut expect = None;
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        match field.name() {
            Some("image") => upload.bytes = field.bytes().await.map_err(bad)?.to_vec(),
            Some("passphrase") => upload.passphrase = Some(field.text().await.map_err(bad)?).filter(|p| !p.is_empty()),
            Some("without_secrets") => upload.without_secrets = true,
            Some("expect") => expect = Some(field.text().await.map_err(bad)?),
            _ => {}
        }
    }
    if upload.bytes.is_empty() {
        return Err(Error::BadRequest("choose a packed image to upload".into()));
    }
    Ok((upload, expect))
}

/// `POST /ui/boot/diff` (multipart `image`, `passphrase`): what applying the image would change.
pub async fn diff(_: Editor, console: State, multipart: Multipart) -> Result<Response, Error> {
    let (upload, _) = upload(multipart).await?;
    let cid = Cid::of(&upload.bytes);
    let lines = changes(&console.runtime, upload).await?;
    let markup = html! {
        h3 { "Changes" }
        @if lines.is_empty() { p.muted data-testid="boot-diff" { "This image holds the running state: nothing would change." } }
        @else { pre.diff data-testid="boot-diff" { @for line in &lines {
            @let class = match line.chars().next() { Some('+') => "add", Some('-') => "del", _ => "ctx" };
            span class=(class) { (line) }
        } } }
        div.actions {
            button.primary hx-post="/ui/boot/import" hx-include="#boot-form" hx-encoding="multipart/form-data"
                   hx-target="#boot-changes" hx-vals={ "{\"expect\":\"" (cid) "\"}" } data-testid="boot-apply" { "Apply this image" }
            span.muted { "image " code { (cid) } }
        }
    };
    Ok(frame::fragment(StatusCode::OK, markup))
}

/// `POST /ui/boot/import` (multipart `image`, `passphrase`, `expect`): applies the image whose changes
/// were shown — a different file than the one diffed is refused.
pub async fn import(_: Editor, console: State, multipart: Multipart) -> Result<Response, Error> {
    let (upload, expect) = upload(multipart).await?;
    if expect.as_deref() != Some(Cid::of(&upload.bytes).to_string().as_str()) {
        return Err(Error::BadRequest("this is not the image whose changes were shown: show the changes again".into()));
    }
    let applied = apply(&console.runtime, upload).await?;
    let markup = html! {
        div.notice data-testid="boot-applied" {
            "Applied: " (applied["servers"]) " servers, boot CID " code { (applied["boot_cid"].as_str().unwrap_or_default()) }
        }
    };
    Ok(frame::fragment(StatusCode::OK, markup))
}
