//! `META.webhook`: how a server's providers sign the deliveries it receives — the scheme, and which
//! declared secret keys the signature. Receiving and verifying them is
//! [`webhooks`](crate::webhooks)'s.

use serde_json::Value;

use super::invalid::Invalid;

/// The operator's variable `<NAME>_WEBHOOK_FORWARD_URL`: where `webhook::forward` sends a server's
/// verified events, a destination the server may send to.
pub const FORWARD_URL: &str = "WEBHOOK_FORWARD_URL";

/// The operator's variable `<NAME>_WEBHOOK_SERVER`: the server whose `fn webhook(event)` handles the
/// events this one receives.
pub const HANDED_TO: &str = "WEBHOOK_SERVER";

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
    /// only by its body (see [`SAME_BODY_WINDOW`](crate::webhooks::SAME_BODY_WINDOW)).
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
    pub fn from_json(value: &Value) -> Result<Spec, Invalid> {
        let map = value.as_object().ok_or("META.webhook must be a map: #{ scheme: \"…\", secret: \"…\" }")?;
        if let Some(other) = map.keys().find(|key| !matches!(key.as_str(), "scheme" | "secret")) {
            return Err(format!("META.webhook takes scheme and secret, not '{other}'").into());
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
