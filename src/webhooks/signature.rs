//! Signature checks: one function per provider scheme, each over the raw body bytes as they arrived.
//!
//! Every MAC is compared with `Mac::verify_slice`, which is constant-time; a signature that does not
//! decode simply matches nothing. Timestamped schemes (Stripe, Slack, Standard Webhooks) check the
//! signature first and then refuse a timestamp more than five minutes from now, either way, so that a
//! captured delivery cannot be replayed later. Refusals say what is wrong with the request; none shows
//! the secret or the signature that was expected.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Incoming;
use crate::error::{Error, Result};
use crate::meta::webhook::Scheme;

/// How far a signed timestamp may be from now, in seconds.
pub const TOLERANCE_SECONDS: u64 = 300;

/// Checks that `incoming` carries a valid signature of `scheme` keyed with `secret`, at `now` (Unix
/// seconds). A refusal is `unauthorized`.
pub fn verify(scheme: Scheme, secret: &str, incoming: &Incoming, now: i64) -> Result<()> {
    match scheme {
        Scheme::Stripe => stripe(secret, incoming, now),
        Scheme::Github => github(secret, incoming),
        Scheme::Slack => slack(secret, incoming, now),
        Scheme::Shopify => shopify(secret, incoming),
        Scheme::Twilio => twilio(secret, incoming),
        Scheme::Standard => standard(secret, incoming),
    }
}

fn refused(message: impl Into<String>) -> Error {
    Error::Unauthorized(message.into())
}

fn header<'a>(incoming: &'a Incoming, name: &str) -> Result<&'a str> {
    incoming
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| refused(format!("the {name} header is missing: this is not a signed delivery")))
}

fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    parts.iter().for_each(|part| mac.update(part));
    mac
}

/// Whether any of the decoded candidates is the MAC's value. Every candidate is compared, in constant time.
fn any_matches<M: Mac + Clone>(mac: M, candidates: impl IntoIterator<Item = Option<Vec<u8>>>) -> bool {
    candidates
        .into_iter()
        .flatten()
        .fold(false, |found, candidate| mac.clone().verify_slice(&candidate).is_ok() | found)
}

fn matched(ok: bool, header: &str) -> Result<()> {
    match ok {
        true => Ok(()),
        false => Err(refused(format!("the {header} signature does not match this body and secret"))),
    }
}

const STALE: &str = "the signature timestamp is more than 5 minutes from now: a stale or replayed delivery";

/// Whether `error` refused a delivery for its timestamp rather than its signature.
pub fn is_stale(error: &Error) -> bool {
    matches!(error, Error::Unauthorized(message) if message == STALE)
}

/// Refuses a signed timestamp (Unix seconds, as text) more than the tolerance away from `now`.
fn fresh(timestamp: &str, now: i64) -> Result<()> {
    let at: i64 = timestamp.trim().parse().map_err(|_| refused("the signature timestamp is not a number"))?;
    match now.abs_diff(at) <= TOLERANCE_SECONDS {
        true => Ok(()),
        false => Err(refused(STALE)),
    }
}

/// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`: HMAC-SHA256 of `{t}.{body}` keyed with the whole
/// `whsec_…` string; any `v1` may match (Stripe sends several while a secret is being rolled).
fn stripe(secret: &str, incoming: &Incoming, now: i64) -> Result<()> {
    let header = header(incoming, "Stripe-Signature")?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for (key, value) in header.split(',').filter_map(|item| item.trim().split_once('=')) {
        match key {
            "t" => timestamp = Some(value),
            "v1" => signatures.push(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| refused("the Stripe-Signature header has no timestamp (t=…)"))?;
    let mac = hmac_sha256(secret.as_bytes(), &[timestamp.as_bytes(), b".", &incoming.body]);
    matched(any_matches(mac, signatures), "Stripe-Signature")?;
    fresh(timestamp, now)
}

/// `X-Hub-Signature-256: sha256=<hex>`: HMAC-SHA256 of the body.
fn github(secret: &str, incoming: &Incoming) -> Result<()> {
    let header = header(incoming, "X-Hub-Signature-256")?;
    let signature = header.strip_prefix("sha256=").and_then(|hex| hex::decode(hex).ok());
    matched(any_matches(hmac_sha256(secret.as_bytes(), &[&incoming.body]), [signature]), "X-Hub-Signature-256")
}

/// `X-Slack-Signature: v0=<hex>`: HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{body}`.
fn slack(secret: &str, incoming: &Incoming, now: i64) -> Result<()> {
    let timestamp = header(incoming, "X-Slack-Request-Timestamp")?;
    let signature = header(incoming, "X-Slack-Signature")?.strip_prefix("v0=").and_then(|hex| hex::decode(hex).ok());
    let mac = hmac_sha256(secret.as_bytes(), &[b"v0:", timestamp.as_bytes(), b":", &incoming.body]);
    matched(any_matches(mac, [signature]), "X-Slack-Signature")?;
    fresh(timestamp, now)
}

/// `X-Shopify-Hmac-Sha256: <base64>`: HMAC-SHA256 of the body.
fn shopify(secret: &str, incoming: &Incoming) -> Result<()> {
    let signature = base64::engine::general_purpose::STANDARD.decode(header(incoming, "X-Shopify-Hmac-Sha256")?).ok();
    matched(any_matches(hmac_sha256(secret.as_bytes(), &[&incoming.body]), [signature]), "X-Shopify-Hmac-Sha256")
}

/// `X-Twilio-Signature: <base64>`: HMAC-SHA1 of the full URL followed by every POST parameter, sorted,
/// as `name` + `value`. A JSON body is not in the signature: the URL carries `bodySHA256`, the hex
/// SHA-256 of the body, and the signature covers the URL alone. Twilio may have signed the URL with or
/// without its port, so both are tried.
fn twilio(secret: &str, incoming: &Incoming) -> Result<()> {
    let signature = base64::engine::general_purpose::STANDARD.decode(header(incoming, "X-Twilio-Signature")?).ok();
    let url = url::Url::parse(&incoming.url)
        .map_err(|_| refused("the URL this delivery was sent to does not parse; set serve --public-url"))?;
    let body_hash = url.query_pairs().find(|(name, _)| name == "bodySHA256").map(|(_, value)| value.into_owned());
    let params = match body_hash {
        Some(_) => String::new(),
        None => sorted_params(&incoming.body),
    };
    let mac = |signed_url: &str| {
        let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
        mac.update(signed_url.as_bytes());
        mac.update(params.as_bytes());
        mac
    };
    let ok = url_forms(&incoming.url, &url).iter().any(|form| any_matches(mac(form), [signature.clone()]));
    matched(ok, "X-Twilio-Signature")?;
    match body_hash {
        None => Ok(()),
        Some(expected) => {
            let actual = hex::encode(Sha256::digest(&incoming.body));
            match bool::from(actual.as_bytes().ct_eq(expected.to_ascii_lowercase().as_bytes())) {
                true => Ok(()),
                false => Err(refused("the body does not match the bodySHA256 that the signature covers")),
            }
        }
    }
}

/// Form parameters sorted by name (then value), each as `name` + `value`.
fn sorted_params(body: &[u8]) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    pairs.sort();
    pairs.into_iter().map(|(name, value)| name + value.as_str()).collect()
}

/// The URL as the request named it, and without and with its port (a default port may or may not have
/// been part of the URL Twilio signed).
fn url_forms(raw: &str, url: &url::Url) -> [String; 3] {
    use url::Position::{AfterPort, BeforePort};
    let port = url.port_or_known_default().map(|port| format!(":{port}")).unwrap_or_default();
    [
        raw.to_owned(),
        format!("{}{}", &url[..BeforePort], &url[AfterPort..]),
        format!("{}{port}{}", &url[..BeforePort], &url[AfterPort..]),
    ]
}

/// Standard Webhooks: `webhook-signature: v1,<base64> …` over `{webhook-id}.{webhook-timestamp}.{body}`,
/// keyed with the base64-decoded `whsec_…` secret; the timestamp within five minutes.
fn standard(secret: &str, incoming: &Incoming) -> Result<()> {
    let webhook = standardwebhooks::Webhook::new(secret).map_err(|_| {
        Error::Internal("the webhook secret is not a Standard Webhooks key (whsec_ followed by base64)".into())
    })?;
    webhook.verify(&incoming.body, &incoming.headers).map_err(|e| refused(format!("Standard Webhooks signature: {e}")))
}

#[cfg(test)]
mod tests {
    //! Signatures made here from each provider's documented recipe, independently of the code above.
    use super::*;
    use http::HeaderMap;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_stale_timestamp_is_told_from_a_bad_signature() {
        assert!(is_stale(&fresh(&(NOW - 301).to_string(), NOW).unwrap_err()));
        assert!(fresh(&(NOW - 299).to_string(), NOW).is_ok());
        assert!(!is_stale(&matched(false, "X-Signature").unwrap_err()));
        assert!(!is_stale(&fresh("soon", NOW).unwrap_err()));
    }

    fn incoming(headers: &[(&str, &str)], body: &str, url: &str) -> Incoming {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        Incoming { headers: map, body: bytes::Bytes::copy_from_slice(body.as_bytes()), url: url.into() }
    }

    fn hex_hmac256(key: &str, message: &str) -> String {
        hex::encode(hmac_sha256(key.as_bytes(), &[message.as_bytes()]).finalize().into_bytes())
    }

    fn refusal(result: Result<()>) -> String {
        match result {
            Err(Error::Unauthorized(message)) => message,
            other => panic!("expected unauthorized, got {other:?}"),
        }
    }

    #[test]
    fn github_matches_the_documented_vector() {
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let secret = "It's a Secret to Everybody";
        let request = incoming(&[("X-Hub-Signature-256", signature)], "Hello, World!", "");
        verify(Scheme::Github, secret, &request, NOW).unwrap();
        let tampered = incoming(&[("X-Hub-Signature-256", signature)], "Hello, World?", "");
        assert!(refusal(verify(Scheme::Github, secret, &tampered, NOW)).contains("does not match"));
        assert!(refusal(verify(Scheme::Github, "another secret", &request, NOW)).contains("does not match"));
        let bare = incoming(&[], "Hello, World!", "");
        assert!(refusal(verify(Scheme::Github, secret, &bare, NOW)).contains("X-Hub-Signature-256 header is missing"));
    }

    #[test]
    fn stripe_accepts_any_v1_within_the_tolerance() {
        let secret = "whsec_test_secret";
        let body = r#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let good = hex_hmac256(secret, &format!("{NOW}.{body}"));
        let header = format!("t={NOW},v1={},v1={good},v0=abc", "00".repeat(32));
        verify(Scheme::Stripe, secret, &incoming(&[("Stripe-Signature", &header)], body, ""), NOW).unwrap();
        let late = NOW + TOLERANCE_SECONDS as i64 + 1;
        let stale =
            refusal(verify(Scheme::Stripe, secret, &incoming(&[("Stripe-Signature", &header)], body, ""), late));
        assert!(stale.contains("5 minutes"), "{stale}");
        let tampered = incoming(&[("Stripe-Signature", &header)], &body.replace("evt_1", "evt_2"), "");
        assert!(refusal(verify(Scheme::Stripe, secret, &tampered, NOW)).contains("does not match"));
        let untimed = incoming(&[("Stripe-Signature", &format!("v1={good}"))], body, "");
        assert!(refusal(verify(Scheme::Stripe, secret, &untimed, NOW)).contains("no timestamp"));
    }

    #[test]
    fn slack_signs_version_timestamp_and_body() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fweather";
        let signature = format!("v0={}", hex_hmac256(secret, &format!("v0:{NOW}:{body}")));
        let headers = [("X-Slack-Request-Timestamp", NOW.to_string()), ("X-Slack-Signature", signature)];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        verify(Scheme::Slack, secret, &incoming(&headers, body, ""), NOW).unwrap();
        let stale = verify(Scheme::Slack, secret, &incoming(&headers, body, ""), NOW - 301);
        assert!(refusal(stale).contains("stale"));
    }

    #[test]
    fn shopify_is_base64_of_the_body_hmac() {
        let secret = "shpss_secret";
        let body = r#"{"id":820982911946154508}"#;
        let signature = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]).finalize().into_bytes());
        verify(Scheme::Shopify, secret, &incoming(&[("X-Shopify-Hmac-Sha256", &signature)], body, ""), NOW).unwrap();
        let wrong = incoming(&[("X-Shopify-Hmac-Sha256", "bm90IGEgc2lnbmF0dXJl")], body, "");
        assert!(refusal(verify(Scheme::Shopify, secret, &wrong, NOW)).contains("does not match"));
    }

    fn twilio_signature(secret: &str, signed: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn twilio_signs_the_url_and_sorted_form_parameters() {
        // Twilio's documented example: this URL and these parameters, keyed with the auth token "12345".
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let body = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
        let signed = format!("{url}CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212");
        let signature = twilio_signature("12345", &signed);
        assert_eq!(signature, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        verify(Scheme::Twilio, "12345", &incoming(&[("X-Twilio-Signature", &signature)], body, url), NOW).unwrap();
        // Signed without the port that the request URL shows.
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        verify(Scheme::Twilio, "12345", &incoming(&[("X-Twilio-Signature", &signature)], body, with_port), NOW)
            .unwrap();
        let other_url =
            incoming(&[("X-Twilio-Signature", &signature)], body, "https://evil.example/myapp.php?foo=1&bar=2");
        assert!(refusal(verify(Scheme::Twilio, "12345", &other_url, NOW)).contains("does not match"));
    }

    #[test]
    fn twilio_json_bodies_are_bound_by_their_sha256_in_the_url() {
        let body = r#"{"event":"delivered"}"#;
        let url = format!("https://hooks.example.com/webhooks/twilio?bodySHA256={}", hex::encode(Sha256::digest(body)));
        let signature = twilio_signature("token", &url);
        verify(Scheme::Twilio, "token", &incoming(&[("X-Twilio-Signature", &signature)], body, &url), NOW).unwrap();
        let swapped = incoming(&[("X-Twilio-Signature", &signature)], r#"{"event":"failed"}"#, &url);
        assert!(refusal(verify(Scheme::Twilio, "token", &swapped, NOW)).contains("bodySHA256"));
    }

    #[test]
    fn standard_webhooks_sign_id_timestamp_and_body_with_the_decoded_key() {
        let key = b"a standard webhooks signing key";
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
        let body = r#"{"type":"user.created"}"#;
        let now = chrono::Utc::now().timestamp();
        let signed = format!("msg_1.{now}.{body}");
        let mac = hmac_sha256(key, &[signed.as_bytes()]).finalize().into_bytes();
        let signature = format!("v1,bm90IHRoaXMgb25l v1,{}", base64::engine::general_purpose::STANDARD.encode(mac));
        let now_text = now.to_string();
        let headers =
            [("webhook-id", "msg_1"), ("webhook-timestamp", now_text.as_str()), ("webhook-signature", &signature)];
        verify(Scheme::Standard, &secret, &incoming(&headers, body, ""), now).unwrap();
        let wrong = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(b"another key"));
        assert!(refusal(verify(Scheme::Standard, &wrong, &incoming(&headers, body, ""), now)).contains("invalid"));
        assert!(matches!(
            verify(Scheme::Standard, "whsec_not base64!", &incoming(&headers, body, ""), now),
            Err(Error::Internal(_))
        ));
    }
}
