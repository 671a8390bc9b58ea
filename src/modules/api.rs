//! `api::call(META, endpoint, method, data[, options])`: everything a typical API server does, once;
//! `api::all(…)` the same for every page of a list (see [`pages`](super::pages)).
//!
//! A server script declares its service in `META` and hands each invocation to this helper:
//!
//! * **Base URL** — `META.base_url`, overridden by the variable or environment variable
//!   `<NAME>_BASE_URL` (`STRIPE_BASE_URL` for the server `stripe`). `{SECRET}` placeholders are filled
//!   from declared secrets (`https://{SHOPIFY_STORE_URL}/admin/api/2024-10`); a host without a scheme
//!   gets `https://`. The option `host` picks a named base URL from `META.hosts` instead (overridden by
//!   `<NAME>_<HOST>_BASE_URL`). The request goes out only after the egress check (see [`egress`](super::egress)).
//! * **Auth** — `META.auth`: `bearer`, `basic`, `header:<Name>`, `query:<param>`, `form:<field>`,
//!   `oauth2` (a token the runtime obtains and renews, see [`crate::oauth`]), `aws:<service>` (SigV4) or
//!   `azure_shared_key` (both signed over the finished request, body included), or `none`. The
//!   credential is `token` (a template) or the first declared secret that is set.
//! * **Options** — `META.api` and the fifth argument (which wins) may set: `token`, `scheme` (the word
//!   before the credential in a header, `Bearer` for bearer), `username`, `password` (basic auth
//!   templates), `headers` and `query` (templates), `body` (`json`, `form`, `multipart` or `text`), `response`
//!   (`json`, `text`, or `auto` by content type, with `xml_lists`), `default_endpoint` (used when the endpoint
//!   is empty), `base_url`, `host`, `timeout_ms`, `max_retries`, for signing `region` and `session_token`,
//!   `pagination` (a call's refines the declared one key by key), `rate_limit` (see
//!   [`throttle`](super::throttle); META only), `pass_headers` (caller headers forwarded; a call's list only narrows
//!   `META`'s, which the invocation already applied).
//! * **All pages** — `api::all` walks the pages; so does `api::call` when the caller asked for all pages
//!   (`all=1`, `X-All-Pages: 1`, the MCP argument `all_pages`) and the server declares pagination.
//! * **Data** — sent as the body (per `body`) for POST, PUT, PATCH and DELETE; a map given to GET or
//!   HEAD becomes query parameters.
//! * **Result** — the parsed JSON body (or text, or `()` when empty). Failures are the documented error
//!   types: `missing_secret` before anything is sent, `upstream` with status and body excerpt,
//!   `rate_limited` with `retry_after` once retries are spent, `invalid_response`, `timeout`,
//!   `upstream_unreachable`.
//!
//! `api::variable(NAME)` reads a declared variable (`()` when unset) for scripts that act on a setting.

mod response;
mod sign;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use rhai::{Dynamic, EvalAltResult, Map, Module};

use self::response::{Expect, result};
use super::http::{Body, Incoming, Outgoing, parse_url};
use super::native::{arg_error, context, func};
use super::pages::Next;
use super::secret;
use super::services::Services;
use super::template::{self, fill};
use super::values::{form_fields, scalar_text, to_json};
use crate::engine::{Context, raise};
use crate::error::Error;
use crate::meta::pagination::Paging;
use crate::meta::rate_limit::Window;

/// How much of an upstream error body callers see.
const EXCERPT: usize = 1000;

/// The options of one call: `META.api` overlaid with the call's own.
struct Options {
    map: Map,
}

impl Options {
    fn new(meta: &Map, overrides: &Map) -> Result<Options, Box<EvalAltResult>> {
        let mut map = match meta.get("api") {
            None => Map::new(),
            Some(api) => api.clone().try_cast::<Map>().ok_or_else(|| arg_error("META.api must be a map"))?,
        };
        // The schedule is the server's, shared by all its calls: one call cannot change it.
        if overrides.contains_key("rate_limit") {
            return Err(arg_error("rate_limit is the server's: declare it in META.api, not for one call"));
        }
        // A call's `pagination` refines the declared one (`#{ pagination: #{ items: "members" } }`).
        let declared = map.get("pagination").and_then(|p| p.read_lock::<Map>().map(|m| m.clone()));
        map.extend(overrides.clone());
        if let (Some(mut declared), Some(given)) =
            (declared, overrides.get("pagination").and_then(|p| p.read_lock::<Map>().map(|m| m.clone())))
        {
            declared.extend(given);
            map.insert("pagination".into(), declared.into());
        }
        for key in map.keys() {
            const KNOWN: [&str; 23] = [
                "default_method",
                "default_data",
                "body_fields",
                "token",
                "scheme",
                "username",
                "password",
                "headers",
                "query",
                "body",
                "response",
                "default_endpoint",
                "base_url",
                "timeout_ms",
                "max_retries",
                "auth",
                "host",
                "pagination",
                "rate_limit",
                "pass_headers",
                "region",
                "session_token",
                "xml_lists",
            ];
            if !KNOWN.contains(&key.as_str()) {
                return Err(arg_error(&format!("unknown api option '{key}' (one of {})", KNOWN.join(", "))));
            }
        }
        Ok(Options { map })
    }

    /// The declared pagination, if any.
    fn paging(&self) -> Result<Option<Paging>, Box<EvalAltResult>> {
        match self.map.get("pagination") {
            None => Ok(None),
            Some(spec) => match spec.read_lock::<Map>() {
                Some(spec) => Ok(Some(Paging::parse(&spec)?)),
                None => Err(arg_error("META.api.pagination must be a map")),
            },
        }
    }

    /// The declared outbound rate limit, if any.
    fn window(&self) -> Result<Option<Window>, Box<EvalAltResult>> {
        match self.map.get("rate_limit") {
            None => Ok(None),
            Some(spec) => match spec.read_lock::<Map>() {
                Some(spec) => Ok(Some(Window::parse(&spec)?)),
                None => Err(arg_error("META.api.rate_limit must be a map")),
            },
        }
    }

    /// A list of header names, lower-case.
    fn names(&self, key: &str) -> Result<Vec<String>, Box<EvalAltResult>> {
        let Some(value) = self.map.get(key) else { return Ok(Vec::new()) };
        let list = value.read_lock::<rhai::Array>().ok_or_else(|| arg_error(&format!("{key} must be an array")))?;
        Ok(list.iter().map(|name| name.to_string().to_ascii_lowercase()).collect())
    }

    fn text(&self, key: &str) -> Option<String> {
        self.map.get(key).filter(|v| !v.is_unit()).map(|v| v.to_string())
    }

    fn pairs(&self, key: &str) -> Result<Vec<(String, String)>, Box<EvalAltResult>> {
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(value) => Ok(value
                .clone()
                .try_cast::<Map>()
                .ok_or_else(|| arg_error(&format!("api option '{key}' must be a map")))?
                .into_iter()
                .map(|(k, v)| (k.to_string(), scalar_text(&v)))
                .collect()),
        }
    }
}

/// The credential: the `token` template, else the first declared secret that is set. Missing, it
/// names the first declared secret (or its alternatives).
fn credential(options: &Options, services: &Services, context: &Context) -> Result<String, Box<EvalAltResult>> {
    if let Some(token) = options.text("token") {
        return fill(&token, services, context);
    }
    let declared = &context.script.meta.secrets;
    let first =
        declared.first().ok_or_else(|| arg_error("this auth scheme needs a secret: declare one in META.secrets"))?;
    for name in first {
        if let Some(value) = secret::read(services, context, name)? {
            return Ok(value);
        }
    }
    Err(raise(Error::MissingSecret { name: first.join(" or ") }))
}

/// The base URL: `META.base_url` (or the `base_url` option), or with the option `host` the named base
/// URL in `META.hosts`. The operator's `<NAME>_BASE_URL` (`<NAME>_<HOST>_BASE_URL`) replaces the scheme
/// and host when it names only those, or the whole URL when it has a path.
fn base_url(
    meta: &Map,
    options: &Options,
    services: &Services,
    context: &Context,
) -> Result<String, Box<EvalAltResult>> {
    let (declared, suffix) = match options.text("host") {
        Some(host) => {
            let hosts = meta.get("hosts").and_then(|h| h.read_lock::<Map>().map(|m| m.clone())).unwrap_or_default();
            let url = hosts
                .get(host.as_str())
                .map(|v| v.to_string())
                .ok_or_else(|| arg_error(&format!("host '{host}' is not named in META.hosts")))?;
            (url, format!("{}_BASE_URL", host.to_uppercase()))
        }
        None => (
            options
                .text("base_url")
                .or_else(|| meta.get("base_url").map(|v| v.to_string()))
                .filter(|u| !u.is_empty())
                .ok_or_else(|| arg_error("META.base_url is not set"))?,
            "BASE_URL".to_owned(),
        ),
    };
    let url = fill(&template::url(services, context, &suffix, &declared), services, context)?;
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", &url));
    // A URL secret given with a trailing slash must not double the slash before the API's path.
    let mut path = rest.to_owned();
    while path.contains("//") {
        path = path.replace("//", "/");
    }
    Ok(format!("{scheme}://{path}"))
}

/// Joins the base URL and an endpoint, which must stay on the base URL's host.
fn join(base: &str, endpoint: &str) -> Result<String, Box<EvalAltResult>> {
    if endpoint.contains("://") || endpoint.starts_with("//") {
        return Err(raise(Error::BadRequest(format!("the endpoint must be a path, not a URL: '{endpoint}'"))));
    }
    if climbs(endpoint) {
        return Err(raise(Error::BadRequest(format!("the endpoint may not climb out of the base path: '{endpoint}'"))));
    }
    let base = base.trim_end_matches('/');
    Ok(match endpoint.chars().next() {
        None => base.to_owned(),
        // The API's root (`/`, or `/?query`): the base URL itself, without a trailing slash (a GraphQL endpoint).
        Some('/') if endpoint == "/" || endpoint.starts_with("/?") => format!("{base}{}", &endpoint[1..]),
        Some('/') | Some('?') => format!("{base}{endpoint}"),
        Some(_) => format!("{base}/{endpoint}"),
    })
}

/// Whether the path of `endpoint` has a `..` segment, spelled plainly or percent-encoded (`%2e%2e`,
/// `..%2f`, `..\\`): a URL parser or the upstream would resolve it above the base path.
fn climbs(endpoint: &str) -> bool {
    let path = endpoint.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    decoded.split(['/', '\\']).any(|segment| segment == "..")
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Box<EvalAltResult>> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| arg_error(&format!("'{name}' is not a header name")))?;
    let value =
        HeaderValue::from_str(value).map_err(|_| arg_error(&format!("header '{name}' has an invalid value")))?;
    Ok((name, value))
}

/// One call as the helper sends it: the service's default call already filled in for an empty one.
#[derive(Clone)]
struct Request {
    endpoint: String,
    method: Method,
    data: Dynamic,
}

impl Request {
    /// The call the script asked for; an empty one (no endpoint, no data) is the service's default call:
    /// its endpoint, and its method and data when it has them.
    fn new(
        options: &Options,
        services: &Services,
        context: &Context,
        endpoint: &str,
        method: &str,
        data: &Dynamic,
    ) -> Result<Request, Box<EvalAltResult>> {
        let (endpoint, method, data) = match endpoint.is_empty() && data.is_unit() {
            true => (
                fill(&options.text("default_endpoint").unwrap_or_default(), services, context)?,
                options.text("default_method").unwrap_or_else(|| method.to_owned()),
                options.map.get("default_data").cloned().unwrap_or_default(),
            ),
            false => (endpoint.to_owned(), method.to_owned(), data.clone()),
        };
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| raise(Error::BadRequest(format!("'{method}' is not an HTTP method"))))?;
        Ok(Request { endpoint, method, data })
    }

    /// Whether `data` travels in the body (else a map of it is the query).
    fn sends_body(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }
}

/// What a request carries besides its URL path: query parameters and the fields every body holds.
#[derive(Default)]
struct Extras {
    query: Vec<(String, String)>,
    fields: Vec<(String, Dynamic)>,
}

/// Builds the request: URL, auth, headers, query and body. Every secret is read here, before
/// anything is sent.
fn build(
    services: &Services,
    context: &Context,
    meta: &Map,
    options: &Options,
    call: &Request,
) -> Result<Outgoing, Box<EvalAltResult>> {
    let url = join(&base_url(meta, options, services, context)?, &call.endpoint)?;
    let mut request = Outgoing::new(call.method.clone(), parse_url(&url)?);
    // Templates are filled before the credential joins them: a credential is a value, never a template.
    let mut query = options.pairs("query")?;
    for (_, value) in query.iter_mut() {
        *value = fill(value, services, context)?;
    }
    let mut extras = Extras { query, fields: body_fields(options, services, context)? };
    authorize(&mut request, &mut extras, meta, options, services, context)?;
    let credential: Vec<HeaderName> = request.headers.keys().cloned().collect();
    for (name, template) in options.pairs("headers")? {
        let (name, value) = header(&name, &fill(&template, services, context)?)?;
        request.headers.insert(name, value);
    }
    // What the caller passed through (already limited to `META.api.pass_headers`, and here to a call's
    // own narrower list) wins over defaults, never over the server's credential.
    let allowed = options.names("pass_headers")?;
    for (name, value) in context.headers.iter().filter(|(name, _)| allowed.contains(name)) {
        let (name, value) = header(name, value)?;
        if !credential.contains(&name) {
            request.headers.insert(name, value);
        }
    }
    // A pair the URL already carries (a next-page link repeating a query credential) is not doubled.
    let present: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    extras.query.retain(|pair| !present.contains(pair));
    encode(&mut request, &mut extras, options, call)?;
    if !extras.query.is_empty() {
        request.url.query_pairs_mut().extend_pairs(&extras.query);
    }
    limits(&mut request, options)?;
    sign::sign(&mut request, &auth_of(meta, options), options, services, context)?;
    // Calls of one server share its schedule; a script no server is bound to has one of its own.
    let server = context.server.clone().unwrap_or_else(|| context.script.cid.to_string());
    request.throttle = Some(services.throttles.of(&server, options.window()?));
    Ok(request)
}

/// `body_fields`: fields every body carries, templates filled.
fn body_fields(
    options: &Options,
    services: &Services,
    context: &Context,
) -> Result<Vec<(String, Dynamic)>, Box<EvalAltResult>> {
    let Some(extra) = options.map.get("body_fields") else { return Ok(Vec::new()) };
    let extra = extra.clone().try_cast::<Map>().ok_or_else(|| arg_error("body_fields must be a map"))?;
    extra
        .into_iter()
        .map(|(name, value)| {
            let value = if value.is_string() { fill(&value.to_string(), services, context)?.into() } else { value };
            Ok((name.to_string(), value))
        })
        .collect()
}

/// Attaches the credential where `auth` says it travels: a header, basic auth, the query or the body.
fn authorize(
    request: &mut Outgoing,
    extras: &mut Extras,
    meta: &Map,
    options: &Options,
    services: &Services,
    context: &Context,
) -> Result<(), Box<EvalAltResult>> {
    let auth = auth_of(meta, options);
    let credential = || credential(options, services, context);
    match auth.split_once(':') {
        None if auth == "bearer" => {
            let scheme = options.text("scheme").unwrap_or_else(|| "Bearer".into());
            let (name, value) = header("authorization", &format!("{scheme} {}", credential()?))?;
            request.headers.insert(name, value);
        }
        None if auth == "basic" => {
            let username = match options.text("username") {
                Some(template) => fill(&template, services, context)?,
                None => credential()?,
            };
            let password =
                options.text("password").map(|t| fill(&t, services, context)).transpose()?.unwrap_or_default();
            request.basic_auth = Some((username, password));
        }
        // The token is obtained and attached when the request is sent (`crate::oauth::send`); a signature
        // covers the finished request, so it is added below.
        None if auth == "none" || auth == "path" || auth == "oauth2" || auth == "azure_shared_key" => {}
        Some(("aws", _)) => {}
        Some(("header", name)) => {
            let value = match options.text("scheme") {
                Some(scheme) => format!("{scheme} {}", credential()?),
                None => credential()?,
            };
            let (name, value) = header(name, &value)?;
            request.headers.insert(name, value);
        }
        Some(("query", param)) => extras.query.push((param.to_owned(), credential()?)),
        // A GET or HEAD has no body to carry it: the credential goes in the query rather than nowhere.
        Some(("form" | "json", field)) if matches!(request.method, Method::GET | Method::HEAD) => {
            extras.query.push((field.to_owned(), credential()?))
        }
        Some(("form" | "json", field)) => extras.fields.push((field.to_owned(), credential()?.into())),
        _ => {
            return Err(arg_error(&format!(
                "unknown auth '{auth}' (bearer, basic, header:<Name>, query:<param>, form:<field>, json:<field>, aws:<service>, azure_shared_key, none)"
            )));
        }
    }
    Ok(())
}

/// Puts the call's data where its method sends it: a map given to GET or HEAD becomes query
/// parameters; any other method sends it as the body, encoded per the `body` option.
fn encode(
    request: &mut Outgoing,
    extras: &mut Extras,
    options: &Options,
    call: &Request,
) -> Result<(), Box<EvalAltResult>> {
    let data = &call.data;
    if !call.sends_body() {
        if let Some(map) = data.read_lock::<Map>() {
            extras.query.extend(map.iter().map(|(k, v)| (k.to_string(), scalar_text(v))));
        } else if !data.is_unit() {
            return Err(raise(Error::BadRequest(format!(
                "data for a {} request must be a map of query parameters",
                call.method
            ))));
        }
        return Ok(());
    }
    if data.is_unit() && extras.fields.is_empty() {
        return Ok(());
    }
    let fields = &extras.fields;
    let with_fields = || -> Result<Map, Box<EvalAltResult>> {
        let mut map: Map = fields.iter().map(|(k, v)| (k.into(), v.clone())).collect();
        match data.read_lock::<Map>() {
            Some(given) => map.extend(given.clone()),
            None if data.is_unit() => {}
            None => {
                return Err(raise(Error::BadRequest(format!(
                    "data for this API must be a map, not {}",
                    data.type_name()
                ))));
            }
        }
        Ok(map)
    };
    request.body = match options.text("body").as_deref().unwrap_or("json") {
        "json" if fields.is_empty() => Body::Json(to_json(data)?),
        "json" => Body::Json(to_json(&with_fields()?.into())?),
        "form" => Body::Form(form_fields(&with_fields()?.into())?),
        "multipart" => Body::Multipart(super::multipart::multipart(&with_fields()?).map_err(raise)?),
        "text" if data.is_blob() => Body::Bytes(data.clone().cast()),
        "text" => Body::Text(data.to_string()),
        other => return Err(arg_error(&format!("unknown body encoding '{other}' (json, form, multipart, text)"))),
    };
    Ok(())
}

/// The per-call limits: `timeout_ms` and `max_retries`.
fn limits(request: &mut Outgoing, options: &Options) -> Result<(), Box<EvalAltResult>> {
    if let Some(value) = options.map.get("timeout_ms") {
        let ms = value.as_int().ok().filter(|ms| *ms > 0).ok_or_else(|| arg_error("timeout_ms must be positive"))?;
        request.timeout = Some(Duration::from_millis(ms as u64));
    }
    if let Some(value) = options.map.get("max_retries") {
        let n =
            value.as_int().ok().filter(|n| *n >= 0).ok_or_else(|| arg_error("max_retries must be a whole number"))?;
        request.max_retries = Some(n as u32);
    }
    Ok(())
}

/// The call's `auth`: the option, else `META.auth`, else `none`.
fn auth_of(meta: &Map, options: &Options) -> String {
    options.text("auth").or_else(|| meta.get("auth").map(|v| v.to_string())).unwrap_or_else(|| "none".into())
}

/// Sends a built request: egress check first, then through OAuth when the server uses it.
fn send(
    services: &Arc<Services>,
    context: &Arc<Context>,
    meta: &Map,
    options: &Options,
    request: Outgoing,
) -> Result<Incoming, Box<EvalAltResult>> {
    super::egress::check(services, context, &request.url)?;
    match auth_of(meta, options).as_str() {
        "oauth2" => crate::oauth::send(services, context, request, options.text("scheme")),
        _ => services.http.send(request, context),
    }
}

/// `api::call` (every page when the caller asked for all pages) and `api::all` (every page).
fn call(
    services: &Arc<Services>,
    meta: &Map,
    endpoint: &str,
    method: &str,
    data: &Dynamic,
    overrides: &Map,
    all_pages: bool,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let context = context()?;
    let options = options(services, &context, meta, overrides)?;
    if all_pages || context.all_pages {
        return walk(services, &context, meta, &options, endpoint, method, data);
    }
    let call = Request::new(&options, services, &context, endpoint, method, data)?;
    let request = build(services, &context, meta, &options, &call)?;
    let host = request.url.host_str().unwrap_or_default().to_owned();
    let expect = Expect::of(&options)?;
    let response = send(services, &context, meta, &options, request)?;
    result(response, &host, &expect, &context).map_err(raise)
}

/// The call's options: `META.api` with the call's own on top, and `META.oauth2.fallback` in place of the
/// grant when the grant has nothing to start from.
fn options(services: &Services, context: &Context, meta: &Map, overrides: &Map) -> Result<Options, Box<EvalAltResult>> {
    let mut options = Options::new(meta, overrides)?;
    if auth_of(meta, &options) == "oauth2" {
        fall_back(services, context, &mut options)?;
    }
    Ok(options)
}

/// `META.oauth2.fallback` takes over (its auth and token as the call's options) when the grant has
/// nothing to start from. With neither set, the error names every secret that would do.
fn fall_back(services: &Services, context: &Context, options: &mut Options) -> Result<(), Box<EvalAltResult>> {
    let Some(spec) = context.script.meta.oauth2.as_ref() else { return Ok(()) };
    let Some((auth, token)) = spec.fallback.as_ref() else { return Ok(()) };
    let Some(lacking) = crate::oauth::lacking(services, context, spec)? else { return Ok(()) };
    fill(token, services, context).map_err(|error| match crate::oauth::error_of(*error) {
        Error::MissingSecret { name } => raise(Error::MissingSecret { name: format!("{lacking} or {name}") }),
        other => raise(other),
    })?;
    options.map.insert("auth".into(), auth.clone().into());
    options.map.insert("token".into(), token.clone().into());
    Ok(())
}

/// Fetches every page of the call as `META.api.pagination` describes, and returns their items in order.
fn walk(
    services: &Arc<Services>,
    context: &Arc<Context>,
    meta: &Map,
    options: &Options,
    endpoint: &str,
    method: &str,
    data: &Dynamic,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let paging = options.paging()?.ok_or_else(|| {
        raise(Error::BadRequest(
            "this server declares no pagination (META.api.pagination), so it cannot fetch all pages".into(),
        ))
    })?;
    let first = Request::new(options, services, context, endpoint, method, data)?;
    let given = match first.data.read_lock::<Map>() {
        Some(map) => map.clone(),
        None if first.data.is_unit() => Map::new(),
        None => {
            return Err(raise(Error::BadRequest(format!(
                "data for a paged call must be a map or empty, not {}",
                first.data.type_name()
            ))));
        }
    };
    let base = parse_url(&base_url(meta, options, services, context)?)?;
    let items = paging.walk(|next| {
        let page = match next {
            Next::Params(params) => {
                // The walk owns its parameters: the caller's own `?limit=4` would otherwise go out twice.
                let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
                let endpoint = without(&first.endpoint, &names);
                let mut data = given.clone();
                data.extend(params.into_iter().map(|(k, v)| (k.into(), v)));
                Request { endpoint, data: data.into(), ..first.clone() }
            }
            Next::Url(url) => {
                let data = if first.sends_body() { first.data.clone() } else { Dynamic::UNIT };
                Request { endpoint: below(&base, &url)?, data, ..first.clone() }
            }
        };
        let request = build(services, context, meta, options, &page)?;
        let (host, url) = (request.url.host_str().unwrap_or_default().to_owned(), request.url.clone());
        let response = send(services, context, meta, options, request)?;
        let headers = response.headers.clone();
        Ok((result(response, &host, &Expect::Json, context).map_err(raise)?, headers, url))
    })?;
    Ok(items.into())
}

/// `endpoint` without the query parameters named `names` (compared decoded; the others kept as written).
fn without(endpoint: &str, names: &[&str]) -> String {
    let Some((path, query)) = endpoint.split_once('?') else { return endpoint.to_owned() };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default().replace('+', " ");
            !names.contains(&percent_encoding::percent_decode_str(&name).decode_utf8_lossy().as_ref())
        })
        .collect();
    match kept.is_empty() {
        true => path.to_owned(),
        false => format!("{path}?{}", kept.join("&")),
    }
}

/// The endpoint of `url` below the base URL: a next-page link must stay within the API.
fn below(base: &reqwest::Url, url: &reqwest::Url) -> Result<String, Box<EvalAltResult>> {
    let base_path = base.path().trim_end_matches('/');
    let same_origin = base.origin() == url.origin();
    let path = url.path();
    let inside = path == base_path || path.strip_prefix(base_path).is_some_and(|rest| rest.starts_with('/'));
    if !same_origin || !inside {
        return Err(raise(Error::InvalidResponse(format!(
            "pagination: the next link leads outside the API ({})",
            url.host_str().unwrap_or_default()
        ))));
    }
    Ok(match url.query() {
        Some(query) => format!("{}?{query}", &path[base_path.len()..]),
        None => path[base_path.len()..].to_owned(),
    })
}

pub fn module(services: Arc<Services>) -> Module {
    let mut module = Module::new();
    let s = services.clone();
    func("call").set_into_module(&mut module, move |meta: Map, endpoint: &str, method: &str, data: Dynamic| {
        call(&s, &meta, endpoint, method, &data, &Map::new(), false)
    });
    let s = services.clone();
    func("call").set_into_module(
        &mut module,
        move |meta: Map, endpoint: &str, method: &str, data: Dynamic, options: Map| {
            call(&s, &meta, endpoint, method, &data, &options, false)
        },
    );
    func("has_files").set_into_module(&mut module, |data: Dynamic| super::multipart::has_files(&data));
    let s = services.clone();
    func("all").set_into_module(&mut module, move |meta: Map, endpoint: &str, method: &str, data: Dynamic| {
        call(&s, &meta, endpoint, method, &data, &Map::new(), true)
    });
    let s = services.clone();
    func("all").set_into_module(
        &mut module,
        move |meta: Map, endpoint: &str, method: &str, data: Dynamic, options: Map| {
            call(&s, &meta, endpoint, method, &data, &options, true)
        },
    );
    // A declared variable's value, `()` when it is not set: settings a script acts on beyond templates
    // (a database server's read-only mode).
    let s = services;
    func("variable").set_into_module(&mut module, move |name: &str| -> Result<Dynamic, Box<EvalAltResult>> {
        let context = context()?;
        if !context.script.meta.variables.iter().any(|v| v == name) {
            return Err(arg_error(&format!(
                "api::variable reads only declared variables: add {name} to META.variables"
            )));
        }
        Ok(s.variable(name).map_or(Dynamic::UNIT, Dynamic::from))
    });
    module
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_takes_over_its_own_parameters_from_the_endpoint() {
        assert_eq!(without("/users.list?limit=4&team=T1", &["limit", "cursor"]), "/users.list?team=T1");
        assert_eq!(without("/t?page%5Bsize%5D=5&q=a+b", &["page[size]"]), "/t?q=a+b");
        assert_eq!(without("/t?limit=4", &["limit"]), "/t");
        assert_eq!(without("/t", &["limit"]), "/t");
    }

    #[test]
    fn endpoints_join_the_base_url_and_never_leave_it() {
        assert_eq!(join("https://a.b/v1/", "/x?y=1").unwrap(), "https://a.b/v1/x?y=1");
        assert_eq!(join("https://a.b/v1", "x").unwrap(), "https://a.b/v1/x");
        assert_eq!(join("https://a.b/v1", "?q=1").unwrap(), "https://a.b/v1?q=1");
        assert_eq!(join("https://a.b/v1", "").unwrap(), "https://a.b/v1");
        assert_eq!(join("https://a.b/v2", "/").unwrap(), "https://a.b/v2");
        assert_eq!(join("https://a.b/v2", "/?q=1").unwrap(), "https://a.b/v2?q=1");
        assert!(join("https://a.b", "https://evil.example/x").is_err());
        assert!(join("https://a.b", "//evil.example/x").is_err());
        for climbing in ["/../admin", "/v1/../../x", "/%2e%2e/x", "/%2E%2E/x", "/..%2fx", "/a/..%5cx", "..", "x/.."] {
            assert!(join("https://a.b/v1", climbing).is_err(), "{climbing}");
        }
        assert_eq!(join("https://a.b/v1", "/x..y/..z?u=/../").unwrap(), "https://a.b/v1/x..y/..z?u=/../");
    }
}
