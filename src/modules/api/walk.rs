//! `api::all`, and `api::call` when the caller asked for every page: the call's pages fetched one after
//! another as the declared pagination says ([`pages`](super::pages)), each built and sent like a single
//! call — same auth, egress check, rate limit and retries.

use std::sync::Arc;

use rhai::{Dynamic, EvalAltResult, Map};

use super::options::Options;
use super::pages::Next;
use super::request::{Request, base_url, build, send};
use super::response::{Expect, result};
use crate::engine::{Context, raise};
use crate::error::Error;
use crate::modules::services::Services;

/// Fetches every page of the call as `META.api.pagination` describes, and returns their items in order.
pub(super) fn walk(
    services: &Arc<Services>,
    context: &Arc<Context>,
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
    let base = base_url(options, services, context)?.url()?;
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
        let request = build(services, context, options, &page)?;
        let (host, url) = (request.url.host_str().unwrap_or_default().to_owned(), request.url.clone());
        let response = send(services, context, options, request)?;
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
}
