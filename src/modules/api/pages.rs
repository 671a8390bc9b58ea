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

use crate::engine::raise;
use crate::error::Error;
use crate::meta::pagination::{Cursor, Paging, Style};
use crate::modules::values::scalar_text;

/// What to fetch next.
#[derive(Debug, Clone)]
pub enum Next {
    /// The same call with these parameters set in its data (query for GET, body otherwise).
    Params(Vec<(String, Dynamic)>),
    /// The URL a `Link: <…>; rel="next"` header names.
    Url(Url),
}

/// Walking a declared pagination (the declaration itself is read and checked in
/// [`meta::pagination`](crate::meta::pagination)).
impl Paging {
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
                    .map(|v| scalar_text(&v))
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
