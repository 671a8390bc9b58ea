//! Pagination for `api::all`: which request asks for the next page, where a page's items are, and when
//! to stop.
//!
//! A server declares its API's style once, in `META.api.pagination`; this module only reads pages
//! that `api` fetched and says what to fetch next. It never sends anything itself, so every page goes
//! through the same build, egress check, rate limit and retries as a single call.
//!
//! Every walk is bounded: by `max_pages` and `max_items` (what it has gathered is returned) and by the
//! invocation's deadline (a page not fetched in time is a `timeout`). A cursor that does not move
//! ends the walk with an error instead of fetching the same page until a bound is hit.

use reqwest::Url;
use reqwest::header::HeaderMap;
use rhai::{Array, Dynamic, EvalAltResult, Map};

use super::arg_error;
use crate::engine::raise;
use crate::error::Error;

const DEFAULT_MAX_PAGES: i64 = 100;
const DEFAULT_MAX_ITEMS: i64 = 10_000;
const MOST_PAGES: i64 = 10_000;
/// The sandbox's array limit: a walk never gathers more than a script could hold.
const MOST_ITEMS: i64 = 100_000;

/// Where the next page's cursor comes from.
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    /// A field of the response (a dotted path: `response_metadata.next_cursor`).
    Field(String),
    /// A field of the page's last item (Stripe's `starting_after` is the last item's `id`).
    LastItem(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Style {
    Cursor { cursor: Cursor, param: String, has_more: Option<String> },
    Offset { param: String, start: i64 },
    Page { param: String, start: i64 },
    Link,
}

/// A declared pagination: `META.api.pagination`, overlaid with the call's `pagination` option.
#[derive(Debug, Clone, PartialEq)]
pub struct Paging {
    style: Style,
    /// The items of a page (a dotted path); `None`: the body when it is an array, else its one array field.
    items: Option<String>,
    /// The page-size parameter and its value, sent with every page (with the first for `link`).
    limit: Option<(String, i64)>,
    max_pages: usize,
    max_items: usize,
}

/// What to fetch next.
#[derive(Debug, Clone)]
pub enum Next {
    /// The same call with these parameters set in its data (query for GET, body otherwise).
    Params(Vec<(String, Dynamic)>),
    /// The URL a `Link: <…>; rel="next"` header names.
    Url(Url),
}

const KEYS: [&str; 11] = [
    "style",
    "items",
    "cursor",
    "last_item",
    "has_more",
    "param",
    "limit_param",
    "limit",
    "start",
    "max_pages",
    "max_items",
];

fn bad(message: String) -> Box<EvalAltResult> {
    arg_error(&format!("META.api.pagination: {message}"))
}

impl Paging {
    /// Checks a spec in its JSON form, as `META` holds it when a script loads.
    pub fn from_json(spec: &serde_json::Value) -> Result<(), String> {
        let value = serde_json::from_value::<Dynamic>(spec.clone()).map_err(|e| e.to_string())?;
        let map = value.read_lock::<Map>().ok_or("META.api.pagination must be a map")?.clone();
        Paging::parse(&map).map(|_| ()).map_err(|e| match *e {
            EvalAltResult::ErrorRuntime(message, _) => message.to_string(),
            other => other.to_string(),
        })
    }

    /// Reads a pagination spec, or says what is wrong with it.
    pub fn parse(spec: &Map) -> Result<Paging, Box<EvalAltResult>> {
        if let Some(key) = spec.keys().find(|key| !KEYS.contains(&key.as_str())) {
            return Err(bad(format!("unknown key '{key}' (one of {})", KEYS.join(", "))));
        }
        let text = |key: &str| -> Result<Option<String>, Box<EvalAltResult>> {
            match spec.get(key) {
                None => Ok(None),
                Some(value) if value.is_string() && !value.to_string().is_empty() => Ok(Some(value.to_string())),
                Some(_) => Err(bad(format!("'{key}' must be a non-empty string"))),
            }
        };
        let number = |key: &str, least: i64, most: i64| -> Result<Option<i64>, Box<EvalAltResult>> {
            match spec.get(key) {
                None => Ok(None),
                Some(value) => match value.as_int() {
                    Ok(n) if (least..=most).contains(&n) => Ok(Some(n)),
                    _ => Err(bad(format!("'{key}' must be a whole number from {least} to {most}"))),
                },
            }
        };
        let param = |default: &str| text("param").map(|p| p.unwrap_or_else(|| default.to_owned()));
        let style = text("style")?.ok_or_else(|| bad("'style' is required (cursor, offset, page or link)".into()))?;
        let style = match style.as_str() {
            "cursor" => {
                let cursor = match (text("cursor")?, text("last_item")?) {
                    (Some(field), None) => Cursor::Field(field),
                    (None, Some(field)) => Cursor::LastItem(field),
                    _ => {
                        return Err(bad("a cursor style names exactly one of 'cursor' (the response's next-cursor \
                                        field) and 'last_item' (the last item's field)"
                            .into()));
                    }
                };
                Style::Cursor { cursor, param: param("cursor")?, has_more: text("has_more")? }
            }
            "offset" => Style::Offset { param: param("offset")?, start: number("start", 0, i64::MAX)?.unwrap_or(0) },
            "page" => Style::Page { param: param("page")?, start: number("start", 0, i64::MAX)?.unwrap_or(1) },
            "link" => Style::Link,
            other => return Err(bad(format!("unknown style '{other}' (cursor, offset, page or link)"))),
        };
        let only = |keys: &[&str], style: &str| match keys.iter().find(|key| spec.contains_key(**key)) {
            Some(key) => Err(bad(format!("'{key}' does not apply to the {style} style"))),
            None => Ok(()),
        };
        match &style {
            Style::Cursor { .. } => only(&["start"], "cursor")?,
            Style::Offset { .. } | Style::Page { .. } => only(&["cursor", "last_item", "has_more"], "offset or page")?,
            Style::Link => only(&["cursor", "last_item", "has_more", "param", "start"], "link")?,
        }
        let limit = match (text("limit_param")?, number("limit", 1, MOST_ITEMS)?) {
            (Some(param), Some(limit)) => Some((param, limit)),
            (None, None) => None,
            (Some(param), None) if matches!(style, Style::Offset { .. }) => {
                return Err(bad(format!("'limit_param' {param} needs 'limit', the page size to ask for")));
            }
            (Some(param), None) => return Err(bad(format!("'limit_param' {param} needs 'limit'"))),
            (None, Some(_)) => return Err(bad("'limit' needs 'limit_param', the parameter that carries it".into())),
        };
        Ok(Paging {
            style,
            items: text("items")?,
            limit,
            max_pages: number("max_pages", 1, MOST_PAGES)?.unwrap_or(DEFAULT_MAX_PAGES) as usize,
            max_items: number("max_items", 1, MOST_ITEMS)?.unwrap_or(DEFAULT_MAX_ITEMS) as usize,
        })
    }

    /// The parameters of the first request.
    pub fn first(&self) -> Vec<(String, Dynamic)> {
        let mut params: Vec<(String, Dynamic)> = self.limit.iter().map(|(p, n)| (p.clone(), (*n).into())).collect();
        match &self.style {
            Style::Offset { param, start } | Style::Page { param, start } => {
                params.push((param.clone(), (*start).into()))
            }
            Style::Cursor { .. } | Style::Link => {}
        }
        params
    }

    /// Walks the pages: `fetch` gets the parameters or URL of each page and answers its parsed body and
    /// headers. Returns every item, in order, within the bounds.
    pub fn walk(
        &self,
        mut fetch: impl FnMut(Next) -> Result<(Dynamic, HeaderMap, Url), Box<EvalAltResult>>,
    ) -> Result<Array, Box<EvalAltResult>> {
        let mut all = Array::new();
        let mut next = Next::Params(self.first());
        let mut previous_cursor: Option<String> = None;
        // Items the API returned so far, before `max_items` cut any: where an offset walk goes on from.
        let mut fetched = 0;
        for page in 1..=self.max_pages {
            let (body, headers, url) = fetch(next)?;
            let items = self.items_of(&body)?;
            let count = items.len();
            fetched += count;
            let last = items.last().cloned();
            let room = self.max_items - all.len();
            all.extend(items.into_iter().take(room));
            if count == 0 {
                break;
            }
            if all.len() >= self.max_items || page == self.max_pages {
                // Not an error (the caller gets what was asked for), but an operator may want to know.
                tracing::info!(target: "switchboard::api", pages = page, items = all.len(), "pagination stopped at its bound");
                break;
            }
            next = match self.after(&body, &headers, &url, page, (count, fetched), last.as_ref())? {
                Some(Next::Params(mut params)) => {
                    if let Style::Cursor { .. } = self.style {
                        let cursor = params.last().map(|(_, v)| v.to_string());
                        if cursor.is_some() && cursor == previous_cursor {
                            return Err(raise(Error::InvalidResponse(format!(
                                "pagination stopped: page {page} gave the same next cursor as the page before"
                            ))));
                        }
                        previous_cursor = cursor;
                    }
                    params
                        .splice(0..0, self.first().into_iter().filter(|(k, _)| self.limit.iter().any(|(l, _)| l == k)));
                    Next::Params(params)
                }
                Some(url) => url,
                None => break,
            };
        }
        Ok(all)
    }

    /// The items of a page body.
    fn items_of(&self, body: &Dynamic) -> Result<Array, Box<EvalAltResult>> {
        let invalid = |message: String| raise(Error::InvalidResponse(format!("pagination: {message}")));
        if body.is_unit() {
            return Ok(Array::new());
        }
        let Some(path) = &self.items else {
            if body.is_array() {
                return Ok(body.clone().cast::<Array>());
            }
            let map = body.read_lock::<Map>().ok_or_else(|| invalid(format!("a page is a {}", body.type_name())))?;
            let arrays: Vec<&str> = map.iter().filter(|(_, v)| v.is_array()).map(|(k, _)| k.as_str()).collect();
            return match arrays.as_slice() {
                [one] => Ok(map[*one].clone().cast::<Array>()),
                [] => Err(invalid("a page holds no array of items: name its field in 'items'".into())),
                many => Err(invalid(format!(
                    "a page holds several arrays ({}): name the items field in 'items'",
                    many.join(", ")
                ))),
            };
        };
        match lookup(body, path) {
            None => Ok(Array::new()),
            Some(value) if value.is_unit() => Ok(Array::new()),
            Some(value) => value
                .try_cast::<Array>()
                .ok_or_else(|| invalid(format!("the items field '{path}' of a page is not an array"))),
        }
    }

    /// What follows page number `page` (1-based) that held `count` items (`fetched` in all so far), or
    /// `None` when it was the last.
    fn after(
        &self,
        body: &Dynamic,
        headers: &HeaderMap,
        url: &Url,
        page: usize,
        (count, fetched): (usize, usize),
        last: Option<&Dynamic>,
    ) -> Result<Option<Next>, Box<EvalAltResult>> {
        let short = self.limit.as_ref().is_some_and(|(_, limit)| (count as i64) < *limit);
        Ok(match &self.style {
            Style::Cursor { cursor, param, has_more } => {
                if let Some(flag) = has_more
                    && !lookup(body, flag).is_some_and(|v| v.as_bool().unwrap_or(false))
                {
                    return Ok(None);
                }
                let value = match cursor {
                    Cursor::Field(path) => lookup(body, path),
                    Cursor::LastItem(field) => last.and_then(|item| lookup(item, field)),
                };
                value
                    .map(|v| super::scalar_text(&v))
                    .filter(|v| !v.is_empty())
                    .map(|value| Next::Params(vec![(param.clone(), value.into())]))
            }
            Style::Offset { param, start } if !short => {
                let offset = start + fetched as i64;
                Some(Next::Params(vec![(param.clone(), offset.into())]))
            }
            Style::Page { param, start } if !short => {
                Some(Next::Params(vec![(param.clone(), (start + page as i64).into())]))
            }
            Style::Offset { .. } | Style::Page { .. } => None,
            Style::Link => next_link(headers, url)?.map(Next::Url),
        })
    }
}

/// The value at a dotted path of maps (`response_metadata.next_cursor`).
fn lookup(value: &Dynamic, path: &str) -> Option<Dynamic> {
    let mut current = value.clone();
    for key in path.split('.') {
        let next = current.read_lock::<Map>()?.get(key)?.clone();
        current = next;
    }
    Some(current)
}

/// The target of the `rel="next"` link of a `Link` header (RFC 8288), resolved against the page's URL.
fn next_link(headers: &HeaderMap, url: &Url) -> Result<Option<Url>, Box<EvalAltResult>> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in split_links(value) {
            let Some((target, params)) = link.trim().strip_prefix('<').and_then(|rest| rest.split_once('>')) else {
                continue;
            };
            let next = params.split(';').any(|param| {
                let Some((name, value)) = param.split_once('=') else { return false };
                name.trim().eq_ignore_ascii_case("rel")
                    && value.trim().trim_matches('"').split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case("next"))
            });
            if next {
                return url
                    .join(target.trim())
                    .map(Some)
                    .map_err(|_| raise(Error::InvalidResponse("pagination: the next link is not a URL".into())));
            }
        }
    }
    Ok(None)
}

/// The links of a `Link` header value: commas separate them, except inside `<…>` and quotes.
fn split_links(value: &str) -> Vec<&str> {
    let (mut links, mut start, mut angle, mut quoted) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            '"' if !angle => quoted = !quoted,
            ',' if !angle && !quoted => {
                links.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    links.push(&value[start..]);
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pairs: &[(&str, Dynamic)]) -> Map {
        pairs.iter().map(|(k, v)| ((*k).into(), v.clone())).collect()
    }

    fn message(spec: Map) -> String {
        Paging::parse(&spec).unwrap_err().to_string()
    }

    #[test]
    fn a_bad_spec_says_what_is_wrong() {
        assert!(message(spec(&[])).contains("'style' is required"));
        assert!(message(spec(&[("style", "scroll".into())])).contains("unknown style 'scroll'"));
        assert!(message(spec(&[("style", "cursor".into())])).contains("exactly one of 'cursor'"));
        assert!(message(spec(&[("style", "link".into()), ("pages", 2.into())])).contains("unknown key 'pages'"));
        assert!(message(spec(&[("style", "page".into()), ("max_pages", 0.into())])).contains("'max_pages' must be"));
        assert!(message(spec(&[("style", "offset".into()), ("limit", 10.into())])).contains("'limit' needs"));
        assert!(message(spec(&[("style", "link".into()), ("param", "p".into())])).contains("does not apply"));
        assert!(message(spec(&[("style", "page".into()), ("items", 3.into())])).contains("'items' must be"));
    }

    #[test]
    fn the_next_link_is_found_among_others_and_resolved() {
        let url = Url::parse("https://api.github.com/repos/o/r/issues?page=1").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            "<https://api.github.com/x?a=1,2&page=3>; rel=\"last\", </repos/o/r/issues?page=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers, &url).unwrap().unwrap().as_str(),
            "https://api.github.com/repos/o/r/issues?page=2"
        );
        headers.insert(reqwest::header::LINK, "<https://api.github.com/x?page=1>; rel=\"prev first\"".parse().unwrap());
        assert!(next_link(&headers, &url).unwrap().is_none());
    }
}
