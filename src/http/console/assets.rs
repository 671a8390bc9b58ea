//! The console's static files, embedded in the binary and served under a name that carries a hash of
//! their content (`/ui/assets/editor.3f9c2a81d0b4e6f7.js`), so a browser may keep each one for a year:
//! a changed file is a new name. No CDN, nothing fetched at run time; the console works offline.
//!
//! `console.css`, `console.js` (a few keys) and `import.js` (the OpenAPI operation picker) are written by
//! hand; `editor.js` (CodeMirror 6 with Rhai highlighting) and `htmx.js` are built once from npm by
//! `scripts/build-editor` and committed; the Rust build needs no npm.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// One embedded file.
pub struct Asset {
    /// The name pages link to, with its content hash.
    pub path: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

fn asset(stem: &str, extension: &str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
    let hash = blake3::hash(bytes).to_hex();
    Asset { path: format!("/ui/assets/{stem}.{}.{extension}", &hash[..16]), content_type, bytes }
}

pub static STYLE: LazyLock<Asset> =
    LazyLock::new(|| asset("console", "css", "text/css; charset=utf-8", include_bytes!("../../../assets/console.css")));
pub static HTMX: LazyLock<Asset> =
    LazyLock::new(|| asset("htmx", "js", "text/javascript; charset=utf-8", include_bytes!("../../../assets/htmx.js")));
pub static KEYS: LazyLock<Asset> = LazyLock::new(|| {
    asset("console", "js", "text/javascript; charset=utf-8", include_bytes!("../../../assets/console.js"))
});
pub static EDITOR: LazyLock<Asset> = LazyLock::new(|| {
    asset("editor", "js", "text/javascript; charset=utf-8", include_bytes!("../../../assets/editor.js"))
});
pub static PICKER: LazyLock<Asset> = LazyLock::new(|| {
    asset("import", "js", "text/javascript; charset=utf-8", include_bytes!("../../../assets/import.js"))
});

/// `GET /ui/assets/{file}`: an embedded file by its hashed name, cached for good. No session is
/// needed: these are the same public bytes for everyone.
pub async fn serve(Path(file): Path<String>) -> Result<Response, Error> {
    let wanted = format!("/ui/assets/{file}");
    let asset = [&*STYLE, &*HTMX, &*KEYS, &*EDITOR, &*PICKER]
        .into_iter()
        .find(|asset| asset.path == wanted)
        .ok_or_else(|| Error::NotFound(format!("no console asset '{file}'")))?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
    ];
    Ok((headers, asset.bytes).into_response())
}
