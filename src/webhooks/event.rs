//! Event records: the receipt kept for each verified delivery, the delivery id it is deduplicated by, and
//! the `event` value its handler gets.
//!
//! The receipt is stored as a blob beside the raw body, so the event's CID (the receipt's) pins exactly
//! what arrived: which server, which delivery, the provider's headers and the body by its CID. A replay
//! rebuilds the handler's `event` from these two blobs alone.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Incoming;
use crate::cid::Cid;
use crate::meta::webhook::Scheme;

/// Longer delivery ids are not the provider's: the event is identified by its body instead.
const MAX_DELIVERY_ID: usize = 256;

/// What is kept of a delivery besides its body; its CID is the event's CID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub server: String,
    pub scheme: String,
    pub delivery_id: String,
    /// The provider's headers (lower-case names; repeated ones joined with ", ").
    pub headers: BTreeMap<String, String>,
    pub body_cid: Cid,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
}

impl Receipt {
    /// The receipt of a verified delivery to `server`, received at `received_at` (ms since the epoch).
    pub fn new(server: &str, scheme: Scheme, incoming: &Incoming, received_at: i64) -> Receipt {
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in incoming.headers.iter().filter(|(name, _)| scheme.is_provider_header(name.as_str())) {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|v| *v = format!("{v}, {value}"))
                .or_insert(value.into());
        }
        let body_cid = Cid::of(&incoming.body);
        Receipt {
            server: server.to_owned(),
            scheme: scheme.name().to_owned(),
            delivery_id: delivery_id(scheme, &incoming.headers, &incoming.body, &body_cid),
            headers,
            body_cid,
            received_at,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a receipt is plain data")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Receipt, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("a stored webhook receipt does not read: {e}"))
    }

    /// The value `fn webhook(event)` gets: `id`, `headers`, `body` (parsed), `cid`, `body_cid`,
    /// `received_at` (RFC 3339).
    pub fn event(&self, cid: Cid, body: &[u8]) -> Value {
        let received_at = chrono::DateTime::from_timestamp_millis(self.received_at)
            .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default();
        json!({
            "id": self.delivery_id,
            "headers": self.headers,
            "body": parse_body(self.headers.get("content-type").map(String::as_str), body),
            "cid": cid,
            "body_cid": self.body_cid,
            "received_at": received_at,
        })
    }
}

/// The id the provider gives a delivery, which stays the same when it retries: Stripe's event `id`,
/// `X-GitHub-Delivery`, Slack's `event_id`, `X-Shopify-Webhook-Id`, Twilio's `MessageSid` and
/// `MessageStatus`, `webhook-id`. A delivery without one is identified by its body's CID (`body:…`): a
/// byte-identical retry is the same event.
pub fn delivery_id(scheme: Scheme, headers: &HeaderMap, body: &[u8], body_cid: &Cid) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let json_field = |field: &str| {
        serde_json::from_slice::<Value>(body).ok().and_then(|value| value.get(field)?.as_str().map(str::to_owned))
    };
    let given = match scheme {
        Scheme::Stripe => json_field("id"),
        Scheme::Github => header("x-github-delivery"),
        Scheme::Slack => json_field("event_id"),
        Scheme::Shopify => header("x-shopify-webhook-id"),
        Scheme::Twilio => twilio_id(body),
        Scheme::Standard => header("webhook-id"),
    };
    given.filter(|id| !id.is_empty() && id.len() <= MAX_DELIVERY_ID).unwrap_or_else(|| format!("body:{body_cid}"))
}

/// `MessageSid:MessageStatus` (a message's status callbacks share its SID), or the SID alone.
fn twilio_id(body: &[u8]) -> Option<String> {
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let sid = params.get("MessageSid")?;
    Some(match params.get("MessageStatus") {
        Some(status) => format!("{sid}:{status}"),
        None => sid.clone(),
    })
}

/// A body as the handler sees it: form fields as a map (a repeated field as an array), JSON parsed,
/// anything else as text.
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Value {
    let mime = content_type.and_then(|t| t.split(';').next()).map(|t| t.trim().to_ascii_lowercase());
    if mime.as_deref() == Some("application/x-www-form-urlencoded") {
        let mut fields = Map::new();
        for (name, value) in url::form_urlencoded::parse(body).into_owned() {
            match fields.get_mut(&name) {
                Some(Value::Array(values)) => values.push(value.into()),
                Some(first) => *first = Value::Array(vec![first.take(), value.into()]),
                None => {
                    fields.insert(name, value.into());
                }
            }
        }
        return Value::Object(fields);
    }
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(headers: &[(&str, &str)], body: &str) -> Incoming {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        Incoming { headers: map, body: bytes::Bytes::copy_from_slice(body.as_bytes()), url: String::new() }
    }

    #[test]
    fn each_scheme_finds_its_delivery_id() {
        let cases = [
            (Scheme::Stripe, incoming(&[], r#"{"id":"evt_1","object":"event"}"#), "evt_1"),
            (Scheme::Github, incoming(&[("X-GitHub-Delivery", "72d3162e")], "{}"), "72d3162e"),
            (Scheme::Slack, incoming(&[], r#"{"type":"event_callback","event_id":"Ev1"}"#), "Ev1"),
            (Scheme::Shopify, incoming(&[("X-Shopify-Webhook-Id", "b54557e4")], "{}"), "b54557e4"),
            (Scheme::Twilio, incoming(&[], "MessageSid=SM1&MessageStatus=delivered&To=%2B1"), "SM1:delivered"),
            (Scheme::Standard, incoming(&[("webhook-id", "msg_1")], "{}"), "msg_1"),
        ];
        for (scheme, incoming, id) in cases {
            assert_eq!(Receipt::new("s", scheme, &incoming, 0).delivery_id, id, "{scheme}");
        }
        let anonymous = incoming(&[], r#"{"type":"url_verification","challenge":"c"}"#);
        let receipt = Receipt::new("s", Scheme::Slack, &anonymous, 0);
        assert_eq!(receipt.delivery_id, format!("body:{}", Cid::of(&anonymous.body)));
    }

    #[test]
    fn the_receipt_keeps_only_provider_headers_and_reads_back() {
        let request = incoming(
            &[
                ("X-GitHub-Event", "push"),
                ("Cookie", "session=1"),
                ("Authorization", "Bearer x"),
                ("content-type", "application/json"),
            ],
            r#"{"a":1}"#,
        );
        let receipt = Receipt::new("gh", Scheme::Github, &request, 1_700_000_000_123);
        assert_eq!(receipt.headers.keys().collect::<Vec<_>>(), ["content-type", "x-github-event"]);
        assert_eq!(Receipt::from_bytes(&receipt.to_bytes()).unwrap(), receipt);
        let cid = Cid::of(&receipt.to_bytes());
        let event = receipt.event(cid, &request.body);
        assert_eq!(event["body"], json!({"a": 1}));
        assert_eq!(event["received_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(event["cid"], cid.to_string());
    }

    #[test]
    fn forms_become_maps_and_other_bodies_json_or_text() {
        let form = parse_body(Some("application/x-www-form-urlencoded; charset=utf-8"), b"a=1&b=x+y&a=2");
        assert_eq!(form, json!({"a": ["1", "2"], "b": "x y"}));
        assert_eq!(parse_body(Some("application/json"), br#"[1]"#), json!([1]));
        assert_eq!(parse_body(None, b"plain"), json!("plain"));
        assert_eq!(parse_body(None, b""), Value::Null);
    }
}
