//! `azure::shared_key`: the Shared Key authorization of Azure Storage (Blob, Queue, File services).
//!
//! ```rhai
//! let headers = #{ "x-ms-date": time::format(time::unix(), "%a, %d %b %Y %H:%M:%S GMT"), "x-ms-version": "2021-08-06" };
//! headers["Authorization"] = azure::shared_key(#{ account: name, key: key, method: "GET", url: url, headers: headers });
//! ```
//! The string to sign follows the Storage services rules for version 2009-09-19 and later: the verb,
//! the standard headers in their fixed order (an empty or zero Content-Length counts as empty), the
//! canonicalized `x-ms-` headers and the canonicalized resource; signed with HMAC-SHA256 under the
//! base64-decoded account key.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rhai::{EvalAltResult, Map, Module};

use super::crypto::hmac_sha256;
use super::native::{arg_error, func};
use super::values::text_pairs;

const STANDARD_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

pub fn string_to_sign(account: &str, method: &str, url: &url::Url, headers: &BTreeMap<String, String>) -> String {
    let mut lines = vec![method.to_ascii_uppercase()];
    for name in STANDARD_HEADERS {
        let value = headers.get(name).map(String::as_str).unwrap_or("");
        lines.push(if name == "content-length" && value == "0" { String::new() } else { value.to_owned() });
    }
    let mut text = lines.join("\n");
    text.push('\n');
    for (name, value) in headers.iter().filter(|(name, _)| name.starts_with("x-ms-")) {
        let folded = value.split_whitespace().collect::<Vec<_>>().join(" ");
        text.push_str(&format!("{name}:{folded}\n"));
    }
    text.push_str(&format!("/{account}{}", url.path()));
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        query.entry(name.to_lowercase()).or_default().push(value.into_owned());
    }
    for (name, mut values) in query {
        values.sort();
        text.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    text
}

pub(super) fn shared_key(options: &Map) -> Result<String, Box<EvalAltResult>> {
    let text = |key: &str| {
        options.get(key).map(|v| v.to_string()).ok_or_else(|| arg_error(&format!("azure::shared_key needs {key}")))
    };
    let account = text("account")?;
    let key = STANDARD.decode(text("key")?.trim()).map_err(|_| arg_error("the account key is not base64"))?;
    let url = super::http::parse_url(&text("url")?)?;
    let mut headers = BTreeMap::new();
    if let Some(given) = options.get("headers") {
        for (name, value) in text_pairs(&*given.read_lock::<Map>().ok_or_else(|| arg_error("headers must be a map"))?)?
        {
            headers.insert(name.to_lowercase(), value.trim().to_owned());
        }
    }
    let signature = hmac_sha256(&key, string_to_sign(&account, &text("method")?, &url, &headers).as_bytes());
    Ok(format!("SharedKey {account}:{}", STANDARD.encode(signature)))
}

pub fn module() -> Module {
    let mut module = Module::new();
    func("shared_key").set_into_module(&mut module, |options: Map| shared_key(&options));
    module
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_follows_the_storage_rules() {
        let url = url::Url::parse("https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=list&include=metadata&include=snapshots").unwrap();
        let headers = BTreeMap::from([
            ("x-ms-date".to_string(), "Fri, 26 Jun 2015 23:39:12 GMT".to_string()),
            ("x-ms-version".to_string(), "2015-02-21".to_string()),
            ("content-length".to_string(), "0".to_string()),
        ]);
        let expected = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots\nrestype:container";
        assert_eq!(string_to_sign("myaccount", "get", &url, &headers), expected);
    }
}
