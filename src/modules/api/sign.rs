//! Request signing for `auth: "aws:<service>"` (SigV4) and `auth: "azure_shared_key"` (Azure Storage's
//! Shared Key): a signature covers the finished request — method, URL, headers and the body's bytes — so
//! it is made last, after the body is settled into the exact bytes that will be sent.

use reqwest::header::HeaderValue;
use rhai::{Dynamic, EvalAltResult, Map};

use super::options::Options;
use crate::engine::Context;
use crate::modules::http::{Body, Outgoing, header};
use crate::modules::native::arg_error;
use crate::modules::secret;
use crate::modules::services::Services;
use crate::modules::template::fill;

/// A signature covers the finished request, body and headers included, so it is added last.
pub(super) fn sign(
    request: &mut Outgoing,
    auth: &str,
    options: &Options,
    services: &Services,
    context: &Context,
) -> Result<(), Box<EvalAltResult>> {
    match auth.split_once(':') {
        Some(("aws", service)) => sign_aws(request, service, options, services, context),
        None if auth == "azure_shared_key" => sign_azure(request, options, services, context),
        _ => Ok(()),
    }
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
        // Its boundary is chosen as it is sent, after any signature would have been made.
        Body::Multipart(_) => return Err(arg_error("a signed request cannot carry a multipart body")),
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
    for (name, value) in crate::modules::aws::sign_request(&signing)? {
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
    let (name, value) = header("authorization", &crate::modules::azure::shared_key(&signing)?)?;
    request.headers.insert(name, value);
    Ok(())
}
