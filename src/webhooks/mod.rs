//! Inbound webhooks: `POST /webhooks/{name}` for servers whose `META.webhook` names a signing scheme and
//! the secret it is keyed with.
//!
//! The order of a receipt is the whole point of this module, because it is where integrations usually go
//! wrong (unverified payloads, replays, lost events):
//!
//! 1. [`signature`] checks the provider's signature over the raw body bytes, in constant time, before
//!    anything is parsed or stored. A bad, missing or stale signature is `unauthorized` and nothing else
//!    happens.
//! 2. [`event`] reads the delivery id the provider gives each event and writes the receipt: the body as
//!    a blob, a record of the delivery (id, provider headers, body CID, time) stored by its own CID — the
//!    event's CID — and a row in the store's event table, all in one transaction. A delivery id the server
//!    has already stored is a duplicate and runs nothing; an event that cannot be stored is answered
//!    `unavailable` (503) so that the provider retries.
//! 3. [`receiver`] hands the stored event to the script's `fn webhook(event)` through
//!    [`Runtime::invoke`](crate::runtime::Runtime::invoke), like every other run, and records how it went;
//!    a failed run can be replayed from the store.
//!
//! The module knows nothing of HTTP routing: the HTTP layer passes it the headers, the body and the URL
//! the provider signed, and turns what comes back into a response.

pub mod event;
pub mod receiver;
pub mod signature;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

pub use receiver::Received;

/// How long a body whose scheme does not sign the delivery id is remembered: the same signed body
/// within this window is the same event, whatever id it comes with. Longer than any provider's retries
/// (Shopify's last 48 hours); a byte-identical body arriving later runs again.
pub const SAME_BODY_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A delivery as it arrived: the raw body, its headers, and the public URL it was sent to (which Twilio
/// signs).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub url: String,
}

/// A provider's way of signing its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Stripe,
    Github,
    Slack,
    Shopify,
    Twilio,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Standard,
}

impl Scheme {
    pub const ALL: [Scheme; 6] =
        [Scheme::Stripe, Scheme::Github, Scheme::Slack, Scheme::Shopify, Scheme::Twilio, Scheme::Standard];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Stripe => "stripe",
            Scheme::Github => "github",
            Scheme::Slack => "slack",
            Scheme::Shopify => "shopify",
            Scheme::Twilio => "twilio",
            Scheme::Standard => "standard",
        }
    }

    pub fn parse(text: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|scheme| scheme.name() == text)
    }

    /// Whether the signature covers the delivery id. GitHub and Shopify sign the body alone and send
    /// the id in a header anyone can change, so a captured delivery replayed under a new id is caught
    /// only by its body (see [`SAME_BODY_WINDOW`]).
    pub fn signs_delivery_id(self) -> bool {
        !matches!(self, Scheme::Github | Scheme::Shopify)
    }

    /// Whether a request header is the provider's: those are kept with the event and shown to the handler.
    /// Anything else a request carries on the way (cookies, proxies' additions, credentials) is not.
    pub fn is_provider_header(self, name: &str) -> bool {
        let prefixes: &[&str] = match self {
            Scheme::Stripe => &["stripe-"],
            Scheme::Github => &["x-github-", "x-hub-signature"],
            Scheme::Slack => &["x-slack-"],
            Scheme::Shopify => &["x-shopify-"],
            Scheme::Twilio => &["x-twilio-", "i-twilio-"],
            Scheme::Standard => &["webhook-"],
        };
        name == "content-type" || name == "user-agent" || prefixes.iter().any(|prefix| name.starts_with(prefix))
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What `META.webhook` declares: how deliveries are signed and which declared secret keys the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub scheme: Scheme,
    pub secret: String,
}

impl Spec {
    /// Reads `META.webhook` (`#{ scheme: "stripe", secret: "STRIPE_WEBHOOK_SECRET" }`), or says what is
    /// wrong with it. Whether the secret is declared is the caller's check: it holds the whole `META`.
    pub fn from_json(value: &Value) -> Result<Spec, String> {
        let map = value.as_object().ok_or("META.webhook must be a map: #{ scheme: \"…\", secret: \"…\" }")?;
        if let Some(other) = map.keys().find(|key| !matches!(key.as_str(), "scheme" | "secret")) {
            return Err(format!("META.webhook takes scheme and secret, not '{other}'"));
        }
        let names = Scheme::ALL.map(Scheme::name).join(", ");
        let scheme = map
            .get("scheme")
            .and_then(Value::as_str)
            .and_then(Scheme::parse)
            .ok_or_else(|| format!("META.webhook.scheme must be one of {names}"))?;
        let secret = map
            .get("secret")
            .and_then(Value::as_str)
            .ok_or("META.webhook.secret must name the secret that signs the deliveries")?;
        Ok(Spec { scheme, secret: secret.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_spec_names_a_known_scheme_and_a_secret() {
        let spec = Spec::from_json(&json!({"scheme": "stripe", "secret": "STRIPE_WEBHOOK_SECRET"})).unwrap();
        assert_eq!(spec, Spec { scheme: Scheme::Stripe, secret: "STRIPE_WEBHOOK_SECRET".into() });
        assert_eq!(
            Spec::from_json(&json!({"scheme": "paypal", "secret": "X"})).unwrap_err(),
            "META.webhook.scheme must be one of stripe, github, slack, shopify, twilio, standard"
        );
        assert!(Spec::from_json(&json!({"scheme": "github"})).unwrap_err().contains("secret"));
        assert!(
            Spec::from_json(&json!({"scheme": "github", "secret": "X", "path": "/"})).unwrap_err().contains("path")
        );
        assert!(Spec::from_json(&json!("github")).is_err());
    }

    #[test]
    fn only_the_providers_headers_are_kept() {
        assert!(Scheme::Github.is_provider_header("x-github-delivery"));
        assert!(Scheme::Github.is_provider_header("x-hub-signature-256"));
        assert!(Scheme::Standard.is_provider_header("content-type"));
        for other in ["cookie", "authorization", "x-forwarded-for", "x-slack-signature"] {
            assert!(!Scheme::Github.is_provider_header(other), "{other}");
        }
    }
}
