//! `META.api.pagination`: how an API's lists page, declared once per server.
//!
//! A spec names its style and where each piece lives — the items of a page, the next cursor or the
//! page parameter, the page size — and bounds the walk (`max_pages`, `max_items`). This is the checked
//! declaration only; walking the pages is `api`'s (`modules::pages`).

use rhai::{Dynamic, Map};

use super::invalid::Invalid;

const DEFAULT_MAX_PAGES: i64 = 100;
const DEFAULT_MAX_ITEMS: i64 = 10_000;
const MOST_PAGES: i64 = 10_000;
/// The sandbox's array limit: a walk never gathers more than a script could hold.
const MOST_ITEMS: i64 = 100_000;

/// Where the next page's cursor comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    /// A field of the response (a dotted path: `response_metadata.next_cursor`).
    Field(String),
    /// A field of the page's last item (Stripe's `starting_after` is the last item's `id`).
    LastItem(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Style {
    Cursor { cursor: Cursor, param: String, has_more: Option<String> },
    Offset { param: String, start: i64 },
    Page { param: String, start: i64 },
    Link,
}

/// A declared pagination: `META.api.pagination`, overlaid with the call's `pagination` option.
#[derive(Debug, Clone, PartialEq)]
pub struct Paging {
    pub style: Style,
    /// The items of a page (a dotted path); `None`: the body when it is an array, else its one array field.
    pub items: Option<String>,
    /// The page-size parameter and its value, sent with every page (with the first for `link`).
    pub limit: Option<(String, i64)>,
    pub max_pages: usize,
    pub max_items: usize,
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

fn bad(message: String) -> Invalid {
    format!("META.api.pagination: {message}").into()
}

impl Paging {
    /// Reads a spec in its JSON form, as `META` holds it when a script loads.
    pub fn from_json(spec: &serde_json::Value) -> Result<Paging, Invalid> {
        let value = serde_json::from_value::<Dynamic>(spec.clone()).map_err(|e| e.to_string())?;
        let map = value.read_lock::<Map>().ok_or("META.api.pagination must be a map")?.clone();
        Paging::parse(&map)
    }

    /// Reads a pagination spec, or says what is wrong with it.
    pub fn parse(spec: &Map) -> Result<Paging, Invalid> {
        if let Some(key) = spec.keys().find(|key| !KEYS.contains(&key.as_str())) {
            return Err(bad(format!("unknown key '{key}' (one of {})", KEYS.join(", "))));
        }
        let text = |key: &str| -> Result<Option<String>, Invalid> {
            match spec.get(key) {
                None => Ok(None),
                Some(value) if value.is_string() && !value.to_string().is_empty() => Ok(Some(value.to_string())),
                Some(_) => Err(bad(format!("'{key}' must be a non-empty string"))),
            }
        };
        let number = |key: &str, least: i64, most: i64| -> Result<Option<i64>, Invalid> {
            match spec.get(key) {
                None => Ok(None),
                Some(value) => match value.as_int() {
                    Ok(n) if (least..=most).contains(&n) => Ok(Some(n)),
                    _ => Err(bad(format!("'{key}' must be a whole number from {least} to {most}"))),
                },
            }
        };
        let style = style(spec, &text, &number)?;
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
}

/// The style a spec names, with its own keys, refusing the keys of other styles.
fn style(
    spec: &Map,
    text: &impl Fn(&str) -> Result<Option<String>, Invalid>,
    number: &impl Fn(&str, i64, i64) -> Result<Option<i64>, Invalid>,
) -> Result<Style, Invalid> {
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
    Ok(style)
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
}
