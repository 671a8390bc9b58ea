//! `api::call(META, endpoint, method, data[, options])`: everything a typical API server does, once.
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
//!   templates), `headers` and `query` (templates), `body` (`json`, `form` or `text`), `response`
//!   (`json`, `text`, or `auto` by content type, with `xml_lists`), `default_endpoint` (used when the endpoint
//!   is empty), `base_url`, `host`, `timeout_ms`, `max_retries`, and for signing `region` and `session_token`.
//! * **Data** — sent as the body (per `body`) for POST, PUT, PATCH and DELETE; a map given to GET or
//!   HEAD becomes query parameters.
//! * **Result** — the parsed JSON body (or text, or `()` when empty). Failures are the documented error
//!   types: `missing_secret` before anything is sent, `upstream` with status and body excerpt,
//!   `rate_limited` with `retry_after` once retries are spent, `invalid_response`, `timeout`,
//!   `upstream_unreachable`.
//!
//! `api::variable(NAME)` reads a declared variable (`()` when unset) for scripts that act on a setting.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use rhai::{Dynamic, EvalAltResult, Map, Module};

use super::http::{Body, Incoming, Outgoing, parse_url};
use super::secret;
use super::{Services, arg_error, func, scalar_text, to_json};
use crate::engine::{Context, raise};
use crate::error::Error;

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
        map.extend(overrides.clone());
        for key in map.keys() {
            const KNOWN: [&str; 20] = [
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

/// The value of a `{NAME}` placeholder: a declared secret, or a declared variable (registry variables,
/// then the environment).
fn placeholder(name: &str, services: &Services, context: &Context) -> Result<String, Box<EvalAltResult>> {
    if context.script.meta.variables.iter().any(|v| v == name) {
        return services.variable(name).ok_or_else(|| {
            arg_error(&format!("variable {name} is not set: give it in the boot image's variables or the environment"))
        });
    }
    secret::require(services, context, name)
}

/// Fills `{NAME}` placeholders from the script's declared secrets and variables.
pub(crate) fn fill(template: &str, services: &Services, context: &Context) -> Result<String, Box<EvalAltResult>> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(length) = rest[start + 1..].find('}') else { break };
        let name = &rest[start + 1..start + 1 + length];
        let is_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        out.push_str(&rest[..start]);
        if is_name {
            out.push_str(&placeholder(name, services, context)?);
        } else {
            out.push_str(&rest[start..start + 2 + length]);
        }
        rest = &rest[start + 2 + length..];
    }
    out.push_str(rest);
    Ok(out)
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

/// The path part of a URL template (`/v1` of `https://api.x.com/v1`), `""` when it has none.
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find('/') {
        Some(start) if rest[start..] != *"/" => &rest[start..],
        _ => "",
    }
}

/// A declared URL with an operator's override applied: an override naming only a scheme and host keeps
/// the declared path; one with a path replaces the whole URL.
pub(crate) fn overridden(declared: String, operator: Option<String>) -> String {
    match operator {
        Some(origin) if path_of(&origin).is_empty() => {
            format!("{}{}", origin.trim_end_matches('/'), path_of(&declared))
        }
        Some(whole) => whole,
        None => declared,
    }
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
    let operator = super::egress::operator_url(services, context, &suffix);
    let url = fill(&overridden(declared, operator), services, context)?;
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

/// Builds the request: URL, auth, headers, query and body. Every secret is read here, before
/// anything is sent.
fn build(
    services: &Services,
    context: &Context,
    meta: &Map,
    options: &Options,
    endpoint: &str,
    method: &str,
    data: &Dynamic,
) -> Result<Outgoing, Box<EvalAltResult>> {
    // An empty call is the service's default call: its endpoint, and its method and data when it has them.
    let default_call = endpoint.is_empty() && data.is_unit();
    let (endpoint, method, data) = match default_call {
        true => (
            fill(&options.text("default_endpoint").unwrap_or_default(), services, context)?,
            options.text("default_method").unwrap_or_else(|| method.to_owned()),
            options.map.get("default_data").cloned().unwrap_or_default(),
        ),
        false => (endpoint.to_owned(), method.to_owned(), data.clone()),
    };
    let data = &data;
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| raise(Error::BadRequest(format!("'{method}' is not an HTTP method"))))?;
    let url = join(&base_url(meta, options, services, context)?, &endpoint)?;
    let mut request = Outgoing::new(method.clone(), parse_url(&url)?);
    let mut query = options.pairs("query")?;
    // Fields every body carries (`body_fields`), and a credential that travels in the body.
    let mut fields: Vec<(String, Dynamic)> = Vec::new();
    if let Some(extra) = options.map.get("body_fields") {
        for (name, value) in extra.clone().try_cast::<Map>().ok_or_else(|| arg_error("body_fields must be a map"))? {
            let value = if value.is_string() { fill(&value.to_string(), services, context)?.into() } else { value };
            fields.push((name.to_string(), value));
        }
    }

    let auth =
        options.text("auth").or_else(|| meta.get("auth").map(|v| v.to_string())).unwrap_or_else(|| "none".into());
    match auth.split_once(':') {
        None if auth == "bearer" => {
            let scheme = options.text("scheme").unwrap_or_else(|| "Bearer".into());
            let (name, value) =
                header("authorization", &format!("{scheme} {}", credential(options, services, context)?))?;
            request.headers.insert(name, value);
        }
        None if auth == "basic" => {
            let username = match options.text("username") {
                Some(template) => fill(&template, services, context)?,
                None => credential(options, services, context)?,
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
            let credential = credential(options, services, context)?;
            let value = match options.text("scheme") {
                Some(scheme) => format!("{scheme} {credential}"),
                None => credential,
            };
            let (name, value) = header(name, &value)?;
            request.headers.insert(name, value);
        }
        Some(("query", param)) => query.push((param.to_owned(), credential(options, services, context)?)),
        Some(("form" | "json", field)) => {
            fields.push((field.to_owned(), credential(options, services, context)?.into()))
        }
        _ => {
            return Err(arg_error(&format!(
                "unknown auth '{auth}' (bearer, basic, header:<Name>, query:<param>, form:<field>, json:<field>, aws:<service>, azure_shared_key, none)"
            )));
        }
    }
    for (name, template) in options.pairs("headers")? {
        let (name, value) = header(&name, &fill(&template, services, context)?)?;
        request.headers.insert(name, value);
    }
    for (_, value) in query.iter_mut() {
        *value = fill(value, services, context)?;
    }

    let body = options.text("body").unwrap_or_else(|| "json".into());
    let sends_body = !matches!(method, Method::GET | Method::HEAD);
    if !sends_body {
        if let Some(map) = data.read_lock::<Map>() {
            query.extend(map.iter().map(|(k, v)| (k.to_string(), scalar_text(v))));
        } else if !data.is_unit() {
            return Err(raise(Error::BadRequest(format!(
                "data for a {method} request must be a map of query parameters"
            ))));
        }
    } else if !data.is_unit() || !fields.is_empty() {
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
        request.body = match body.as_str() {
            "json" if fields.is_empty() => Body::Json(to_json(data)?),
            "json" => Body::Json(to_json(&with_fields()?.into())?),
            "form" => Body::Form(super::form_fields(&with_fields()?.into())?),
            "text" if data.is_blob() => Body::Bytes(data.clone().cast()),
            "text" => Body::Text(data.to_string()),
            other => return Err(arg_error(&format!("unknown body encoding '{other}' (json, form, text)"))),
        };
    }
    if !query.is_empty() {
        request.url.query_pairs_mut().extend_pairs(&query);
    }
    if let Some(value) = options.map.get("timeout_ms") {
        let ms = value.as_int().ok().filter(|ms| *ms > 0).ok_or_else(|| arg_error("timeout_ms must be positive"))?;
        request.timeout = Some(Duration::from_millis(ms as u64));
    }
    if let Some(value) = options.map.get("max_retries") {
        let n =
            value.as_int().ok().filter(|n| *n >= 0).ok_or_else(|| arg_error("max_retries must be a whole number"))?;
        request.max_retries = Some(n as u32);
    }
    match auth.split_once(':') {
        Some(("aws", service)) => sign_aws(&mut request, service, options, services, context)?,
        None if auth == "azure_shared_key" => sign_azure(&mut request, options, services, context)?,
        _ => {}
    }
    Ok(request)
}

/// Turns the body into the bytes that will be sent, with the content type the client would have added:
/// a signature covers both.
fn settle_body(request: &mut Outgoing) -> Result<Vec<u8>, Box<EvalAltResult>> {
    let (bytes, content_type) = match std::mem::take(&mut request.body) {
        Body::None => return Ok(Vec::new()),
        Body::Json(value) => (value.to_string().into_bytes(), Some("application/json")),
        Body::Form(pairs) => {
            let text = serde_urlencoded::to_string(&pairs).map_err(|e| arg_error(&format!("form body: {e}")))?;
            (text.into_bytes(), Some("application/x-www-form-urlencoded"))
        }
        Body::Text(text) => (text.into_bytes(), None),
        Body::Bytes(bytes) => (bytes, None),
    };
    if let Some(content_type) = content_type
        && !request.headers.contains_key(reqwest::header::CONTENT_TYPE)
    {
        request.headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    request.body = Body::Bytes(bytes.clone());
    Ok(bytes)
}

/// The request's headers as the signers take them.
fn header_map(request: &Outgoing) -> Map {
    let text = |v: &HeaderValue| v.to_str().unwrap_or_default().to_owned();
    request.headers.iter().map(|(name, value)| (name.as_str().into(), Dynamic::from(text(value)))).collect()
}

/// `auth: "aws:<service>"`: AWS Signature Version 4 over the finished request. The keys are the
/// `username` and `password` templates (`{AWS_ACCESS_KEY_ID}`, `{AWS_SECRET_ACCESS_KEY}` by default), the
/// region the `region` template, and a temporary credential's token the secret named by `session_token`
/// when it is set.
fn sign_aws(
    request: &mut Outgoing,
    service: &str,
    options: &Options,
    services: &Services,
    context: &Context,
) -> Result<(), Box<EvalAltResult>> {
    let template =
        |key: &str, default: &str| fill(&options.text(key).unwrap_or_else(|| default.into()), services, context);
    let region = options.text("region").ok_or_else(|| arg_error("auth aws:<service> needs the option region"))?;
    let mut signing = Map::new();
    signing.insert("access_key".into(), template("username", "{AWS_ACCESS_KEY_ID}")?.into());
    signing.insert("secret_key".into(), template("password", "{AWS_SECRET_ACCESS_KEY}")?.into());
    signing.insert("region".into(), fill(&region, services, context)?.into());
    if let Some(name) = options.text("session_token")
        && let Some(token) = secret::read(services, context, &name)?
    {
        signing.insert("session_token".into(), token.into());
    }
    let body = settle_body(request)?;
    signing.insert("method".into(), request.method.as_str().into());
    signing.insert("url".into(), request.url.as_str().into());
    signing.insert("service".into(), service.into());
    signing.insert("headers".into(), header_map(request).into());
    signing.insert("body".into(), Dynamic::from_blob(body));
    for (name, value) in super::aws::sign_request(&signing)? {
        let (name, value) = header(&name, &value.to_string())?;
        request.headers.insert(name, value);
    }
    Ok(())
}

/// `auth: "azure_shared_key"`: Azure Storage's Shared Key over the finished request, with `x-ms-date` set
/// now. The account and its key are the `username` and `password` templates; the script gives
/// `x-ms-version` in its headers.
fn sign_azure(
    request: &mut Outgoing,
    options: &Options,
    services: &Services,
    context: &Context,
) -> Result<(), Box<EvalAltResult>> {
    let template = |key: &str| {
        let template =
            options.text(key).ok_or_else(|| arg_error(&format!("azure_shared_key needs the option {key}")))?;
        fill(&template, services, context)
    };
    let (account, key) = (template("username")?, template("password")?);
    let body = settle_body(request)?;
    let (name, date) = header("x-ms-date", &httpdate::fmt_http_date(std::time::SystemTime::now()))?;
    request.headers.insert(name, date);
    let mut headers = header_map(request);
    if !body.is_empty() {
        headers.insert("content-length".into(), Dynamic::from(body.len().to_string()));
    }
    let mut signing = Map::new();
    signing.insert("account".into(), account.into());
    signing.insert("key".into(), key.into());
    signing.insert("method".into(), request.method.as_str().into());
    signing.insert("url".into(), request.url.as_str().into());
    signing.insert("headers".into(), headers.into());
    let (name, value) = header("authorization", &super::azure::shared_key(&signing)?)?;
    request.headers.insert(name, value);
    Ok(())
}

/// What a successful response becomes.
enum Expect {
    Json,
    Text,
    /// By its content type: JSON parsed, XML as a map (these elements always arrays), anything else the
    /// body itself with its content type, as an output envelope.
    Auto(Vec<String>),
}

impl Expect {
    fn of(options: &Options) -> Result<Expect, Box<EvalAltResult>> {
        Ok(match options.text("response").as_deref() {
            None | Some("json") => Expect::Json,
            Some("text") => Expect::Text,
            Some("auto") => {
                let lists = match options.map.get("xml_lists") {
                    None => Vec::new(),
                    Some(lists) => lists
                        .clone()
                        .try_cast::<rhai::Array>()
                        .ok_or_else(|| arg_error("xml_lists must be an array of element names"))?
                        .iter()
                        .map(|name| name.to_string())
                        .collect(),
                };
                Expect::Auto(lists)
            }
            Some(other) => return Err(arg_error(&format!("unknown response '{other}' (json, text, auto)"))),
        })
    }
}

/// Maps an upstream response to the script's result or to the documented error.
fn result(response: Incoming, host: &str, expect: &Expect, context: &Context) -> Result<Dynamic, Error> {
    let status = response.status;
    if status.as_u16() == 429 {
        let retry_after = response.retry_after().map(|d| d.as_secs().max(1));
        return Err(Error::RateLimited {
            message: format!("{host} is still rate limiting after retries"),
            retry_after,
        });
    }
    if !status.is_success() {
        return Err(Error::Upstream {
            status: status.as_u16(),
            message: format!("{host} answered {status}"),
            body: context.excerpt(&String::from_utf8_lossy(&response.body), EXCERPT),
        });
    }
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Dynamic::UNIT);
    }
    let content_type = response.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let content_type = content_type.unwrap_or("application/octet-stream").to_owned();
    match expect {
        Expect::Json => {}
        Expect::Text => return Ok(String::from_utf8_lossy(&response.body).into_owned().into()),
        Expect::Auto(_) if content_type.contains("json") => {}
        Expect::Auto(lists) if content_type.contains("xml") => {
            let text = String::from_utf8_lossy(&response.body);
            return super::xml::parse(&text, lists).map(Dynamic::from).map_err(|e| {
                let excerpt = context.excerpt(&text, 200);
                Error::InvalidResponse(context.redact(&format!("{host} sent a body that is not XML ({e}): {excerpt}")))
            });
        }
        Expect::Auto(_) => {
            let mut envelope = Map::new();
            let output = match content_type.starts_with("text/") {
                true => String::from_utf8_lossy(&response.body).into_owned().into(),
                false => Dynamic::from_blob(response.body.to_vec()),
            };
            envelope.insert("output".into(), output);
            envelope.insert("content_type".into(), content_type.into());
            return Ok(envelope.into());
        }
    }
    serde_json::from_slice::<Dynamic>(&response.body).map_err(|e| {
        let excerpt = context.excerpt(&String::from_utf8_lossy(&response.body), 200);
        Error::InvalidResponse(context.redact(&format!("{host} sent a body that is not JSON ({e}): {excerpt}")))
    })
}

fn call(
    services: &Arc<Services>,
    meta: &Map,
    endpoint: &str,
    method: &str,
    data: &Dynamic,
    overrides: &Map,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let context = super::context()?;
    let mut options = Options::new(meta, overrides)?;
    let mut auth = options.text("auth").or_else(|| meta.get("auth").map(|v| v.to_string()));
    if auth.as_deref() == Some("oauth2") && fall_back(services, &context, &mut options)? {
        auth = options.text("auth");
    }
    let request = build(services, &context, meta, &options, endpoint, method, data)?;
    super::egress::check(services, &context, &request.url)?;
    let host = request.url.host_str().unwrap_or_default().to_owned();
    let expect = Expect::of(&options)?;
    let response = match auth.as_deref() {
        Some("oauth2") => crate::oauth::send(services, &context, request, options.text("scheme"))?,
        _ => services.http.send(request, &context)?,
    };
    result(response, &host, &expect, &context).map_err(raise)
}

/// `META.oauth2.fallback` takes over (its auth and token as the call's options) when the grant has
/// nothing to start from. With neither set, the error names every secret that would do.
fn fall_back(services: &Services, context: &Context, options: &mut Options) -> Result<bool, Box<EvalAltResult>> {
    let Some(spec) = context.script.meta.oauth2.as_ref() else { return Ok(false) };
    let Some((auth, token)) = spec.fallback.as_ref() else { return Ok(false) };
    let Some(lacking) = crate::oauth::lacking(services, context, spec)? else { return Ok(false) };
    fill(token, services, context).map_err(|error| match crate::oauth::error_of(*error) {
        Error::MissingSecret { name } => raise(Error::MissingSecret { name: format!("{lacking} or {name}") }),
        other => raise(other),
    })?;
    options.map.insert("auth".into(), auth.clone().into());
    options.map.insert("token".into(), token.clone().into());
    Ok(true)
}

pub fn module(services: Arc<Services>) -> Module {
    let mut module = Module::new();
    let s = services.clone();
    func("call").set_into_module(&mut module, move |meta: Map, endpoint: &str, method: &str, data: Dynamic| {
        call(&s, &meta, endpoint, method, &data, &Map::new())
    });
    let s = services.clone();
    func("call").set_into_module(
        &mut module,
        move |meta: Map, endpoint: &str, method: &str, data: Dynamic, options: Map| {
            call(&s, &meta, endpoint, method, &data, &options)
        },
    );
    // A declared variable's value, `()` when it is not set: settings a script acts on beyond templates
    // (a database server's read-only mode).
    let s = services;
    func("variable").set_into_module(&mut module, move |name: &str| -> Result<Dynamic, Box<EvalAltResult>> {
        let context = super::context()?;
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
    fn the_path_of_a_base_url_template_is_what_follows_its_host() {
        assert_eq!(path_of("https://api.stripe.com"), "");
        assert_eq!(path_of("https://api.stripe.com/"), "");
        assert_eq!(path_of("https://{JIRA_DOMAIN}/rest/api/3"), "/rest/api/3");
        assert_eq!(path_of("https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}"), "/bot{TELEGRAM_BOT_TOKEN}");
        assert_eq!(path_of("{SHOPIFY_STORE_URL}/admin/api/2024-10"), "/admin/api/2024-10");
        assert_eq!(path_of("http://127.0.0.1:8080"), "");
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
