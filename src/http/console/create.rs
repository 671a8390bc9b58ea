//! `/ui/new`: a new server from a template — an ad-hoc script, or the `api::call` pattern of the
//! catalog — stored, bound and opened in the editor.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::State;
use super::frame::{self, Section};
use super::session::{Editor, Viewer};
use crate::error::Error;
use crate::store::Origin;

/// The templates, by the name the form sends: (label, source with `{NAME}` for the upper-case name).
const TEMPLATES: [(&str, &str, &str); 2] = [
    (
        "adhoc",
        "Ad-hoc script: no secrets, no hosts",
        "fn main(endpoint, method, data) {\n    #{ endpoint: endpoint, method: method, data: data }\n}\n",
    ),
    (
        "api",
        "An API behind a bearer token (api::call)",
        "const META = #{\n    title: \"{TITLE}\", description: \"Calls the {TITLE} API.\", category: \"\",\n    \
         secrets: [\"{NAME}_API_KEY\"], auth: \"bearer\",\n    base_url: \"https://api.example.com/v1\",\n    \
         docs: \"https://example.com/docs\",\n};\n\nfn main(endpoint, method, data) {\n    \
         api::call(global::META, endpoint, method, data)\n}\n",
    ),
];

/// `GET /ui/new`.
pub async fn page(viewer: Viewer) -> Response {
    let body = html! {
        p.muted { a href="/ui" { "Servers" } " / new" }
        h1 { "New server" }
        form.card hx-post="/ui/new" {
            label for="new-name" { "Name" }
            input #new-name name="name" required pattern="[a-z][a-z0-9_]{0,63}" placeholder="my_api" autofocus
                  data-testid="new-name";
            span.muted { "Lower-case letters, digits and _; it is also the path: " code { "/name/…" } }
            label for="new-template" { "Template" }
            select #new-template name="template" data-testid="new-template" {
                @for (key, label, _) in TEMPLATES { option value=(key) { (label) } }
            }
            div.actions { button.primary type="submit" data-testid="new-create" { "Create and edit" } }
        }
    };
    frame::page(&viewer.csrf, viewer.read_only, Section::Servers, "New server", None, body)
}

/// `POST /ui/new` with `name` and `template`: the server is created and its page opened.
pub async fn create(_: Editor, console: State, body: Bytes) -> Result<Response, Error> {
    let fields: HashMap<String, String> =
        serde_urlencoded::from_bytes(&body).map_err(|e| Error::BadRequest(format!("malformed form: {e}")))?;
    let name = fields.get("name").cloned().unwrap_or_default();
    let wanted = fields.get("template").map_or("adhoc", String::as_str);
    let (_, _, template) = TEMPLATES
        .iter()
        .find(|(key, _, _)| *key == wanted)
        .ok_or_else(|| Error::BadRequest(format!("no template '{wanted}'")))?;
    crate::server::validate_name(&name).map_err(Error::BadRequest)?;
    let title: String = name
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    let source = template.replace("{NAME}", &name.to_uppercase()).replace("{TITLE}", &title);
    let bound = name.clone();
    console
        .runtime
        .blocking(move |rt| {
            if rt.server(&bound).is_some() {
                return Err(Error::BadRequest(format!("a server named '{bound}' exists already")));
            }
            rt.put_script(&bound, source.as_bytes(), Origin::Api)
        })
        .await?;
    let target = HeaderValue::from_str(&format!("/ui/servers/{name}")).map_err(|e| Error::internal("redirect", e))?;
    Ok((StatusCode::OK, [("hx-redirect", target)]).into_response())
}
