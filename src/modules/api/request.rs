//! The request one call sends: the base URL (declared, or the operator's) joined with the endpoint, the
//! credential where the server's `auth` puts it, the declared and the caller's headers, the query and
//! the body, the per-call limits and, last, a signature over all of it; then sent, after the egress
//! check, through OAuth when the server uses it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderName;
use reqwest::{Method, Url};
use rhai::{Dynamic, EvalAltResult, Map};

use super::options::Options;
use super::sign;
use crate::engine::{Context, raise};
use crate::error::Error;
use crate::meta::routes::{Route, finished, overridden};
use crate::modules::http::{Body, Incoming, Outgoing, header, parse_url};
use crate::modules::multipart::{multipart, ordered};
use crate::modules::native::arg_error;
use crate::modules::secret;
use crate::modules::services::Services;
use crate::modules::template::{self, fill};
use crate::modules::values::{form_fields, text_pairs, to_json};

/// One call as the helper sends it: the service's default call already filled in for an empty one.
#[derive(Clone)]
pub(super) struct Request {
    pub(super) endpoint: String,
    pub(super) method: Method,
    pub(super) data: Dynamic,
}

impl Request {
    /// The call the script asked for; an empty one (no endpoint, no data) is the service's default call:
    /// its endpoint, and its method and data when it has them.
    pub(super) fn new(
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
                options.get("default_data").cloned().unwrap_or_default(),
            ),
            false => (endpoint.to_owned(), method.to_owned(), data.clone()),
        };
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| raise(Error::BadRequest(format!("'{method}' is not an HTTP method"))))?;
        Ok(Request { endpoint, method, data })
    }

    /// Whether `data` travels in the body (else a map of it is the query).
    pub(super) fn sends_body(&self) -> bool {
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
pub(super) fn build(
    services: &Services,
    context: &Context,
    options: &Options,
    call: &Request,
) -> Result<Outgoing, Box<EvalAltResult>> {
    let url = base_url(options, services, context)?.join(&call.endpoint)?;
    let mut request = Outgoing::new(call.method.clone(), url);
    // Templates are filled before the credential joins them: a credential is a value, never a template.
    let mut query = options.pairs("query")?;
    for (_, value) in query.iter_mut() {
        *value = fill(value, services, context)?;
    }
    let mut extras = Extras { query, fields: body_fields(options, services, context)? };
    authorize(&mut request, &mut extras, options, services, context)?;
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
    sign::sign(&mut request, options.auth(), options, services, context)?;
    // Calls of one server share its declared schedule; a script no server is bound to has one of its own.
    let server = context.server.clone().unwrap_or_else(|| context.script.cid.to_string());
    request.throttle = Some(services.throttles.of(&server, context.script.meta.api.rate_limit));
    Ok(request)
}

/// `body_fields`: fields every body carries, templates filled.
fn body_fields(
    options: &Options,
    services: &Services,
    context: &Context,
) -> Result<Vec<(String, Dynamic)>, Box<EvalAltResult>> {
    let Some(extra) = options.get("body_fields") else { return Ok(Vec::new()) };
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
    options: &Options,
    services: &Services,
    context: &Context,
) -> Result<(), Box<EvalAltResult>> {
    let auth = options.auth();
    let credential = || credential(options, services, context);
    match auth.split_once(':') {
        None if auth == "bearer" => {
            let scheme = options.text("scheme").unwrap_or_else(|| "Bearer".into());
            let (name, value) = header("authorization", &[&scheme, " ", &credential()?].concat())?;
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
            extras.query.extend(text_pairs(&map)?);
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
        "multipart" => Body::Multipart(
            match data.read_lock::<rhai::Array>() {
                Some(items) => ordered(&fields.iter().map(|(k, v)| (k.into(), v.clone())).collect(), &items),
                None => multipart(&with_fields()?),
            }
            .map_err(raise)?,
        ),
        "text" if data.is_blob() => Body::Bytes(data.clone().cast()),
        "text" => Body::Text(data.to_string()),
        other => return Err(arg_error(&format!("unknown body encoding '{other}' (json, form, multipart, text)"))),
    };
    Ok(())
}

/// The per-call limits: `timeout_ms` and `max_retries`.
fn limits(request: &mut Outgoing, options: &Options) -> Result<(), Box<EvalAltResult>> {
    if let Some(value) = options.get("timeout_ms") {
        let ms = value.as_int().ok().filter(|ms| *ms > 0).ok_or_else(|| arg_error("timeout_ms must be positive"))?;
        request.timeout = Some(Duration::from_millis(ms as u64));
    }
    if let Some(value) = options.get("max_retries") {
        let n =
            value.as_int().ok().filter(|n| *n >= 0).ok_or_else(|| arg_error("max_retries must be a whole number"))?;
        request.max_retries = Some(n as u32);
    }
    Ok(())
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
    Err(raise(Error::missing_secret(first.join(" or "))))
}

/// A call's base URL, and its parse when that was made once for the variables in force.
pub(super) struct Base {
    text: String,
    parsed: Option<Url>,
}

impl Base {
    /// The base URL itself.
    pub(super) fn url(self) -> Result<Url, Box<EvalAltResult>> {
        self.parsed.map_or_else(|| parse_url(&self.text), Ok)
    }

    /// The URL of `endpoint`, which must stay on the base URL's host (see [`join`]). With a parsed base
    /// only what follows its host is parsed: the host of a base URL is the costliest part to parse.
    fn join(self, endpoint: &str) -> Result<Url, Box<EvalAltResult>> {
        let joined = join(&self.text, endpoint)?;
        match (self.parsed, joined.get(authority_end(&self.text)..)) {
            (Some(base), Some(rest)) => Ok(beneath(base, rest)),
            _ => parse_url(&joined),
        }
    }
}

/// The base URL: the server's `META.base_url` (or the call's `base_url` option), or with the option `host`
/// the named base URL in its `META.hosts`. The operator's `<NAME>_BASE_URL` (`<NAME>_<HOST>_BASE_URL`)
/// replaces the scheme and host when it names only those, or the whole URL when it has a path. A
/// declared one with no placeholder was finished and parsed once for the variables in force (see
/// [`Routes`](crate::meta::routes::Routes)).
pub(super) fn base_url(options: &Options, services: &Services, context: &Context) -> Result<Base, Box<EvalAltResult>> {
    let meta = &context.script.meta;
    let (declared, suffix, given) = match options.text("host") {
        Some(host) => {
            let url = meta
                .hosts
                .get(host.as_str())
                .ok_or_else(|| arg_error(&format!("host '{host}' is not named in META.hosts")))?;
            (Cow::Borrowed(url.as_str()), Cow::Owned(format!("{}_BASE_URL", host.to_uppercase())), false)
        }
        None => match options.text("base_url") {
            Some(url) => (Cow::Owned(url), Cow::Borrowed("BASE_URL"), true),
            None => (Cow::Borrowed(meta.base_url.as_str()), Cow::Borrowed("BASE_URL"), false),
        },
    };
    if declared.is_empty() {
        return Err(arg_error("META.base_url is not set"));
    }
    let routes = template::routes(services, context);
    let route = routes.get(&suffix);
    if let Some(Route { base: Some(base), url, .. }) = route.filter(|_| !given) {
        return Ok(Base { text: base.clone(), parsed: url.clone() });
    }
    let template = overridden(&declared, route.and_then(|route| route.operator.as_deref()));
    Ok(Base { text: finished(&fill(&template, services, context)?), parsed: None })
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
        Some('/') | Some('?') => [base, endpoint].concat(),
        Some(_) => format!("{base}/{endpoint}"),
    })
}

/// Where the scheme and authority of a finished base URL end (see [`finished`]): at the first `/`,
/// `\`, `?` or `#` after `://`, as a URL parser ends them.
fn authority_end(base: &str) -> usize {
    let start = base.find("://").map_or(0, |at| at + 3);
    base[start..].find(['/', '\\', '?', '#']).map_or(base.len(), |at| start + at)
}

/// `base` with what follows its authority replaced by `rest` (path, query and fragment), as parsing the
/// whole URL would read them: tabs and newlines dropped, trailing spaces and controls trimmed.
fn beneath(mut base: Url, rest: &str) -> Url {
    let rest = rest.trim_end_matches(|c: char| c <= ' ');
    let (before, fragment) = rest.split_once('#').map_or((rest, None), |(before, f)| (before, Some(f)));
    let (path, query) = before.split_once('?').map_or((before, None), |(path, q)| (path, Some(q)));
    base.set_path(path);
    base.set_query(query);
    base.set_fragment(fragment);
    base
}

/// Whether the path of `endpoint` has a `..` segment, spelled plainly or percent-encoded (`%2e%2e`,
/// `..%2f`, `..\\`): a URL parser or the upstream would resolve it above the base path.
fn climbs(endpoint: &str) -> bool {
    let path = endpoint.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    decoded.split(['/', '\\']).any(|segment| segment == "..")
}

/// Sends a built request: egress check first, then through OAuth when the server uses it.
pub(super) fn send(
    services: &Arc<Services>,
    context: &Arc<Context>,
    options: &Options,
    mut request: Outgoing,
) -> Result<Incoming, Box<EvalAltResult>> {
    request.destination = Some(crate::modules::egress::check(services, context, &request.url)?);
    match options.auth() {
        "oauth2" => crate::oauth::send(services, context, request, options.text("scheme")),
        _ => services.http.send(request, context),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Base URLs as routes finish them: an address, a port, a path, an upper-case or international
    /// host, a trailing slash, a query, user info, a backslash.
    const BASES: [&str; 10] = [
        "http://127.0.0.1:18970",
        "https://API.x.com/v1",
        "https://api.x.com/v1/",
        "https://shop.example/admin/api/2024-10",
        "http://[::1]:8080/base",
        "https://bücher.example/v1",
        "https://x.example/api?key=1",
        "https://user:pw@x.example/v2",
        "https://x.example\\v1",
        "x.example/v3",
    ];

    /// What `Base::join` makes beneath a parsed base, and what parsing the joined text makes.
    fn both(base: &str, endpoint: &str) -> Option<(Url, Result<Url, url::ParseError>)> {
        let text = finished(base);
        let joined = join(&text, endpoint).ok()?;
        let parsed = Url::parse(&text).unwrap();
        let beneath = Base { text, parsed: Some(parsed) }.join(endpoint).unwrap();
        Some((beneath, Url::parse(&joined)))
    }

    #[test]
    fn a_path_beneath_a_parsed_base_is_what_parsing_the_whole_url_gives() {
        let endpoints = [
            "",
            "/",
            "/?q=1",
            "items",
            "/a b ",
            "/x\t/y\n",
            "/%zz/%41",
            "/\\evil.example/x",
            "?q=a#f?g",
            "#frag",
            "/a?b#c#d",
            "/ü/中?ö=1",
            "/a\u{0}b\u{1f}",
            "/x?\\y",
            "/x:1@y",
            "/x/ ",
        ];
        for base in BASES {
            for endpoint in endpoints {
                if let Some((beneath, whole)) = both(base, endpoint) {
                    assert_eq!(Ok(beneath), whole, "{base} + {endpoint:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_endpoint_beneath_a_parsed_base_is_what_parsing_the_whole_url_gives(
            base in proptest::sample::select(BASES.to_vec()),
            endpoint in r#"[/a-zA-Z0-9?#%&=. \\\t\n\r\x00\x1f\u{e9}\u{4e2d}:@;,~+!$'()*{}|^`"<>\[\]-]{0,24}"#,
        ) {
            if let Some((beneath, whole)) = both(base, &endpoint) {
                proptest::prop_assert_eq!(Ok(beneath), whole);
            }
        }
    }
}
