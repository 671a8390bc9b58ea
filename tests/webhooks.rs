//! Inbound webhooks as providers and operators see them. Every signature is made here from the provider's
//! documented recipe (and GitHub's published test vector); each handler reports the event it got to a
//! recording mock on 127.0.0.1, so "nothing ran" is what the mock did not receive.

mod common;

use base64::Engine as _;
use common::{Server, expect_error, json};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const STANDARD_KEY: &[u8] = b"a Standard Webhooks signing key";

/// One provider: its scheme, a test secret, a delivery whose body carries (or whose headers will carry)
/// the delivery id `id`.
struct Provider {
    scheme: &'static str,
    secret: String,
    body: &'static str,
    content_type: &'static str,
    id: &'static str,
}

fn providers() -> Vec<Provider> {
    let provider = |scheme, secret: &str, body, content_type, id| Provider {
        scheme,
        secret: secret.to_owned(),
        body,
        content_type,
        id,
    };
    vec![
        provider(
            "stripe",
            "whsec_stripe_test",
            r#"{"id":"evt_1","type":"charge.succeeded"}"#,
            "application/json",
            "evt_1",
        ),
        provider("github", "It's a Secret to Everybody", r#"{"action":"opened"}"#, "application/json", "gh-1"),
        provider(
            "slack",
            "slack-signing-secret",
            r#"{"type":"event_callback","event_id":"Ev1"}"#,
            "application/json",
            "Ev1",
        ),
        provider("shopify", "shopify-secret", r#"{"id":820982911946154508}"#, "application/json", "shop-1"),
        provider(
            "twilio",
            "twilio-auth-token",
            "MessageSid=SM1&MessageStatus=delivered&To=%2B15005550006&Body=hi+there",
            "application/x-www-form-urlencoded",
            "SM1:delivered",
        ),
        provider(
            "standard",
            &format!("whsec_{}", B64.encode(STANDARD_KEY)),
            r#"{"type":"user.created"}"#,
            "application/json",
            "msg_1",
        ),
    ]
}

fn provider(scheme: &str) -> Provider {
    providers().into_iter().find(|p| p.scheme == scheme).unwrap()
}

/// A server receiving `scheme` deliveries keyed by `HOOK_<SCHEME>_SECRET`; `handler` is its `fn webhook`
/// (or nothing).
fn hook_script(scheme: &str, handler: &str) -> String {
    let upper = scheme.to_uppercase();
    format!(
        "const META = #{{ title: \"Hook\", description: \"receives {scheme} events\", secrets: [\"HOOK_{upper}_SECRET\"],
    auth: \"none\", base_url: \"http://127.0.0.1:9\", webhook: #{{ scheme: \"{scheme}\", secret: \"HOOK_{upper}_SECRET\" }} }};
fn main(endpoint, method, data) {{ () }}
{handler}
"
    )
}

/// Reports the event to the mock at `/ran/<scheme>` and answers which delivery it handled.
fn reporting(scheme: &str) -> String {
    format!(
        "fn webhook(event) {{ api::call(global::META, \"/ran/{scheme}\", \"POST\", event); #{{ handled: event.id }} }}"
    )
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    parts.iter().for_each(|part| mac.update(part));
    mac.finalize().into_bytes().to_vec()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The headers `provider` sends with `body` to `url`, signed with `secret` at `at` (Unix seconds).
fn signed(provider: &Provider, secret: &str, body: &str, url: &str, at: i64) -> Vec<(String, String)> {
    let id = provider.id.to_owned();
    let mut headers = vec![("content-type".to_owned(), provider.content_type.to_owned())];
    let mut add = |name: &str, value: String| headers.push((name.to_owned(), value));
    match provider.scheme {
        "stripe" => add(
            "Stripe-Signature",
            format!("t={at},v1={}", hex::encode(hmac256(secret.as_bytes(), &[format!("{at}.{body}").as_bytes()]))),
        ),
        "github" => {
            add("X-GitHub-Delivery", id);
            add(
                "X-Hub-Signature-256",
                format!("sha256={}", hex::encode(hmac256(secret.as_bytes(), &[body.as_bytes()]))),
            );
        }
        "slack" => {
            add("X-Slack-Request-Timestamp", at.to_string());
            add(
                "X-Slack-Signature",
                format!("v0={}", hex::encode(hmac256(secret.as_bytes(), &[format!("v0:{at}:{body}").as_bytes()]))),
            );
        }
        "shopify" => {
            add("X-Shopify-Webhook-Id", id);
            add("X-Shopify-Hmac-Sha256", B64.encode(hmac256(secret.as_bytes(), &[body.as_bytes()])));
        }
        "twilio" => add("X-Twilio-Signature", twilio_signature(secret, url, body)),
        "standard" => {
            let key = B64.decode(secret.trim_start_matches("whsec_")).unwrap_or_else(|_| secret.as_bytes().to_vec());
            add(
                "webhook-signature",
                format!("v1,{}", B64.encode(hmac256(&key, &[format!("{id}.{at}.{body}").as_bytes()]))),
            );
            add("webhook-id", id);
            add("webhook-timestamp", at.to_string());
        }
        other => panic!("no recipe for {other}"),
    }
    headers
}

/// Twilio: base64 HMAC-SHA1 of the URL followed by each form parameter, sorted, as name + value.
fn twilio_signature(secret: &str, url: &str, body: &str) -> String {
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    params.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    params.iter().for_each(|(name, value)| mac.update(format!("{name}{value}").as_bytes()));
    B64.encode(mac.finalize().into_bytes())
}

async fn deliver(server: &Server, name: &str, headers: &[(String, String)], body: &str) -> reqwest::Response {
    deliver_to(server, &format!("/webhooks/{name}"), headers, body).await
}

async fn deliver_to(server: &Server, path: &str, headers: &[(String, String)], body: &str) -> reqwest::Response {
    let mut request = server.client.post(server.url(path)).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

async fn events(server: &Server, name: &str) -> Vec<Value> {
    let (status, body) = json(server.admin_get(&format!("/api/webhooks/{name}/events")).await).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

async fn replay(server: &Server, name: &str, cid: &str) -> (u16, Value) {
    let url = server.url(&format!("/api/webhooks/{name}/events/{cid}/replay"));
    json(server.client.post(url).bearer_auth(server.admin_token()).send().await.unwrap()).await
}

/// What the handlers reported to the mock under `/ran/<scheme>`.
async fn reported(mock: &MockServer, scheme: &str) -> Vec<Value> {
    let requests = mock.received_requests().await.unwrap_or_default();
    let path = format!("/ran/{scheme}");
    requests.iter().filter(|r| r.url.path() == path).map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
}

async fn recording_mock() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/ran/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&mock)
        .await;
    mock
}

/// One server per provider, each reporting to `mock`, each with its secret set in the environment.
fn start_hooks(mock: &MockServer, extra: &[&str], with_handler: bool) -> Server {
    let scripts: Vec<(String, String)> = providers()
        .iter()
        .map(|p| {
            let handler = if with_handler { reporting(p.scheme) } else { String::new() };
            (format!("hook_{}", p.scheme), hook_script(p.scheme, &handler))
        })
        .collect();
    let mut env: Vec<(String, String)> = Vec::new();
    for p in providers() {
        let upper = p.scheme.to_uppercase();
        env.push((format!("HOOK_{upper}_SECRET"), p.secret.clone()));
        env.push((format!("HOOK_{upper}_BASE_URL"), mock.uri()));
    }
    let scripts: Vec<(&str, &str)> = scripts.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(&scripts, extra, &env)
}

fn url_of(server: &Server, provider: &Provider) -> String {
    server.url(&format!("/webhooks/hook_{}", provider.scheme))
}

#[tokio::test]
async fn every_scheme_accepts_its_providers_signature_stores_the_event_and_runs_the_handler() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], true);
    for provider in providers() {
        let name = format!("hook_{}", provider.scheme);
        let mut headers = signed(&provider, &provider.secret, provider.body, &url_of(&server, &provider), now());
        headers.push(("Cookie".into(), "session=private".into()));
        let response = deliver(&server, &name, &headers, provider.body).await;
        let event_cid = response.headers().get("x-webhook-event").map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = json(response).await;
        assert_eq!((status, &body), (200, &json!({"handled": provider.id})), "{}", provider.scheme);
        let event_cid = event_cid.expect("X-Webhook-Event names the event");

        let got = reported(&mock, provider.scheme).await;
        assert_eq!(got.len(), 1, "{}: the handler ran once", provider.scheme);
        let event = &got[0];
        assert_eq!(event["id"], provider.id);
        assert_eq!(event["cid"], event_cid);
        assert_eq!(event["body_cid"], switchboard::cid::Cid::of(provider.body.as_bytes()).to_string());
        assert!(event["received_at"].as_str().unwrap().ends_with('Z'), "{event}");
        assert_eq!(event["headers"]["content-type"], provider.content_type);
        assert!(event["headers"].get("cookie").is_none(), "{}: cookies are not the provider's", provider.scheme);
        let parsed = match provider.content_type {
            "application/json" => serde_json::from_str::<Value>(provider.body).unwrap(),
            _ => json!({"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+15005550006", "Body": "hi there"}),
        };
        assert_eq!(event["body"], parsed, "{}", provider.scheme);

        // The raw body and the receipt are blobs; the listing shows the handled event.
        let raw = server.get(&format!("/cid/{}", event["body_cid"].as_str().unwrap())).await.text().await.unwrap();
        assert_eq!(raw, provider.body);
        let (_, receipt) = json(server.get(&format!("/cid/{event_cid}")).await).await;
        assert_eq!(
            (receipt["server"].as_str(), receipt["delivery_id"].as_str()),
            (Some(name.as_str()), Some(provider.id))
        );
        let listed = events(&server, &name).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["cid"], event_cid);
        assert_eq!(listed[0]["delivery_id"], provider.id);
        assert_eq!(listed[0]["status"], "handled");
        assert_eq!(listed[0]["outcome"]["status"], 200);
        assert!(listed[0]["outcome"]["request_id"].is_string(), "the invocation that handled it");
        assert_eq!(listed[0]["attempts"], 1);
    }
}

#[tokio::test]
async fn github_deliveries_verify_against_the_documented_vector() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], true);
    let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let headers = vec![
        ("X-Hub-Signature-256".to_owned(), signature.to_owned()),
        ("X-GitHub-Delivery".to_owned(), "vector".to_owned()),
    ];
    let (status, body) = json(deliver(&server, "hook_github", &headers, "Hello, World!").await).await;
    assert_eq!((status, body), (200, json!({"handled": "vector"})));
    assert_eq!(reported(&mock, "github").await[0]["body"], "Hello, World!");
}

#[tokio::test]
async fn bad_missing_and_stale_signatures_are_refused_and_nothing_is_stored_or_run() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], true);
    for provider in providers() {
        let name = format!("hook_{}", provider.scheme);
        let url = url_of(&server, &provider);
        let good = signed(&provider, &provider.secret, provider.body, &url, now());
        let tampered_body = match provider.content_type {
            "application/json" => format!("{} ", provider.body),
            _ => format!("{}&Extra=1", provider.body),
        };
        let wrong_secret = signed(&provider, "not-the-secret", provider.body, &url, now());
        let without_signature: Vec<(String, String)> = good
            .iter()
            .filter(|(name, _)| !name.to_lowercase().contains("signature") && !name.to_lowercase().contains("hmac"))
            .cloned()
            .collect();
        let mut cases = vec![
            ("tampered body", good.clone(), tampered_body.as_str()),
            ("wrong secret", wrong_secret, provider.body),
            ("missing signature", without_signature, provider.body),
        ];
        let stale = signed(&provider, &provider.secret, provider.body, &url, now() - 600);
        if matches!(provider.scheme, "stripe" | "slack" | "standard") {
            cases.push(("stale timestamp", stale, provider.body));
        }
        for (case, headers, body) in cases {
            let error = expect_error(deliver(&server, &name, &headers, body).await, 401, "unauthorized").await;
            let message = error["message"].as_str().unwrap().to_owned();
            assert!(!message.contains(&provider.secret), "{}: {case}: the secret leaked", provider.scheme);
            if case == "stale timestamp" {
                assert!(message.contains("5 minutes") || message.contains("too old"), "{}: {message}", provider.scheme);
            }
        }
        assert!(events(&server, &name).await.is_empty(), "{}: nothing stored", provider.scheme);
        assert!(reported(&mock, provider.scheme).await.is_empty(), "{}: nothing ran", provider.scheme);
    }
}

#[tokio::test]
async fn a_duplicate_delivery_answers_200_and_runs_nothing_again() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], true);
    for provider in providers() {
        let name = format!("hook_{}", provider.scheme);
        let headers = signed(&provider, &provider.secret, provider.body, &url_of(&server, &provider), now());
        let first = deliver(&server, &name, &headers, provider.body).await;
        let cid = first.headers()["x-webhook-event"].to_str().unwrap().to_owned();
        // The provider retries, signing again a second later.
        let again = signed(&provider, &provider.secret, provider.body, &url_of(&server, &provider), now() + 1);
        let (status, body) = json(deliver(&server, &name, &again, provider.body).await).await;
        assert_eq!((status, body), (200, json!({"cid": cid, "duplicate": true})), "{}", provider.scheme);
        assert_eq!(reported(&mock, provider.scheme).await.len(), 1, "{}: ran once", provider.scheme);
        assert_eq!(events(&server, &name).await.len(), 1);
    }
    // A new delivery is listed first; `limit` bounds the listing.
    let stripe = provider("stripe");
    let body = stripe.body.replace("evt_1", "evt_2");
    let headers = signed(&stripe, &stripe.secret, &body, "", now());
    assert_eq!(deliver(&server, "hook_stripe", &headers, &body).await.status(), 200);
    let url = server.url("/api/webhooks/hook_stripe/events?limit=1");
    let (_, listed) = json(server.client.get(url).bearer_auth(server.admin_token()).send().await.unwrap()).await;
    let ids: Vec<&str> =
        listed["events"].as_array().unwrap().iter().map(|e| e["delivery_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["evt_2"]);
}

#[tokio::test]
async fn a_signed_body_replayed_under_a_new_unsigned_delivery_id_runs_nothing_again() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], true);
    // GitHub and Shopify sign the body alone: their delivery id is a header anyone can change.
    for (scheme, id_header) in [("github", "X-GitHub-Delivery"), ("shopify", "X-Shopify-Webhook-Id")] {
        let provider = provider(scheme);
        let name = format!("hook_{scheme}");
        let headers = signed(&provider, &provider.secret, provider.body, &url_of(&server, &provider), now());
        let first = deliver(&server, &name, &headers, provider.body).await;
        assert_eq!(first.status(), 200);
        let cid = first.headers()["x-webhook-event"].to_str().unwrap().to_owned();
        for fresh in ["replayed-1", "replayed-2"] {
            let replayed: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.clone(), if k == id_header { fresh.to_owned() } else { v.clone() }))
                .collect();
            let (status, body) = json(deliver(&server, &name, &replayed, provider.body).await).await;
            assert_eq!((status, body), (200, json!({"cid": cid, "duplicate": true})), "{scheme} {fresh}");
        }
        assert_eq!(reported(&mock, scheme).await.len(), 1, "{scheme}: ran once");
        assert_eq!(events(&server, &name).await.len(), 1, "{scheme}: stored once");
        // Another body is another event, whatever its id.
        let other = provider.body.replace('}', r#","n":2}"#);
        let headers: Vec<(String, String)> =
            signed(&provider, &provider.secret, &other, &url_of(&server, &provider), now())
                .into_iter()
                .map(|(k, v)| if k == id_header { (k, "next-delivery".to_owned()) } else { (k, v) })
                .collect();
        assert_eq!(deliver(&server, &name, &headers, &other).await.status(), 200);
        assert_eq!(events(&server, &name).await.len(), 2, "{scheme}");
    }
}

#[tokio::test]
async fn concurrent_copies_of_a_delivery_run_the_handler_once() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], true);
    let github = provider("github");
    let headers = signed(&github, &github.secret, github.body, "", now());
    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut request = server.client.post(server.url("/webhooks/hook_github")).body(github.body);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        copies.spawn(request.send());
    }
    let answers = copies.join_all().await.into_iter().map(Result::unwrap);
    let mut duplicates = 0;
    for response in answers {
        let (status, body) = json(response).await;
        assert_eq!(status, 200, "{body}");
        duplicates += usize::from(body["duplicate"] == true);
    }
    assert_eq!(duplicates, 7);
    assert_eq!(reported(&mock, "github").await.len(), 1);
    assert_eq!(events(&server, "hook_github").await.len(), 1);
}

/// A mock whose `/ran/` answers 500 to the first `failures` requests (all of them with `None`), 200 after.
async fn failing_mock(failures: Option<u64>) -> MockServer {
    let mock = MockServer::start().await;
    let failure = Mock::given(method("POST"))
        .and(path_regex("^/ran/"))
        .respond_with(ResponseTemplate::new(500).set_body_string("the handler's downstream is down"));
    match failures {
        Some(n) => failure.up_to_n_times(n).with_priority(1).mount(&mock).await,
        None => failure.mount(&mock).await,
    }
    Mock::given(method("POST")).and(path_regex("^/ran/")).respond_with(ResponseTemplate::new(200)).mount(&mock).await;
    mock
}

/// The event `cid` once the queue has brought it to `status`, on its own time (a minute at most).
async fn once_settled(server: &Server, name: &str, cid: &str, status: &str) -> Value {
    for _ in 0..600 {
        let listed = events(server, name).await;
        if let Some(event) = listed.iter().find(|e| e["cid"] == cid && e["status"] == status) {
            return event.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("event {cid} never became {status}: {:?}", events(server, name).await);
}

/// Delivers GitHub's test event to `hook_github`, expecting the handler to fail: the provider is
/// answered 202 all the same, with the event's CID.
async fn deliver_failing(server: &Server) -> String {
    let github = provider("github");
    let headers = signed(&github, &github.secret, github.body, "", now());
    let response = deliver(server, "hook_github", &headers, github.body).await;
    let cid = response.headers()["x-webhook-event"].to_str().unwrap().to_owned();
    let (status, body) = json(response).await;
    assert_eq!((status, body), (202, json!({"cid": cid, "status": "failed"})));
    cid
}

#[tokio::test]
async fn a_handler_failing_twice_is_retried_until_it_succeeds_with_no_manual_step() {
    let mock = failing_mock(Some(2)).await;
    let server = start_hooks(&mock, &["--webhook-backoff-ms", "50"], true);
    let cid = deliver_failing(&server).await;

    let event = once_settled(&server, "hook_github", &cid, "handled").await;
    assert_eq!((event["attempts"].as_u64(), &event["outcome"]["status"]), (Some(3), &json!(200)));
    assert!(event["outcome"]["request_id"].is_string(), "the outcome names the run's invocation: {event}");
    assert_eq!(event["next_attempt_at"], Value::Null);
    let runs = reported(&mock, "github").await;
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|run| run == &runs[0] && run["cid"] == cid), "every attempt gets the very same event");
    // The provider's own retry is a duplicate: it runs nothing again.
    let github = provider("github");
    let headers = signed(&github, &github.secret, github.body, "", now());
    let (status, body) = json(deliver(&server, "hook_github", &headers, github.body).await).await;
    assert_eq!((status, body), (200, json!({"cid": cid, "duplicate": true})));
    assert_eq!(reported(&mock, "github").await.len(), 3);
}

#[tokio::test]
async fn a_handler_failing_every_attempt_ends_dead_with_its_last_error_and_can_be_replayed() {
    let mock = failing_mock(None).await;
    let server = start_hooks(&mock, &["--webhook-attempts", "3", "--webhook-backoff-ms", "20"], true);
    let cid = deliver_failing(&server).await;

    let event = once_settled(&server, "hook_github", &cid, "dead").await;
    assert_eq!(event["attempts"], 3);
    assert_eq!((event["outcome"]["type"].as_str(), event["outcome"]["status"].as_u64()), (Some("upstream"), Some(500)));
    assert_eq!(event["next_attempt_at"], Value::Null);
    assert_eq!(reported(&mock, "github").await.len(), 3, "three attempts, then none");

    let listing = |status: &str| server.url(&format!("/api/webhooks/hook_github/events?status={status}"));
    let list = |status: &str| server.client.get(listing(status)).bearer_auth(server.admin_token()).send();
    let (code, dead) = json(list("dead").await.unwrap()).await;
    assert_eq!((code, dead["events"][0]["cid"].as_str()), (200, Some(cid.as_str())));
    for status in ["failed", "pending", "handled"] {
        let (code, none) = json(list(status).await.unwrap()).await;
        assert_eq!((code, none["events"].as_array().map(Vec::len)), (200, Some(0)), "{status}");
    }
    let error = expect_error(list("lost").await.unwrap(), 400, "bad_request").await;
    assert!(error["message"].as_str().unwrap().contains("unknown event status 'lost'"), "{error}");

    // Once the downstream is back, an operator replays the dead event.
    mock.reset().await;
    Mock::given(method("POST")).and(path_regex("^/ran/")).respond_with(ResponseTemplate::new(200)).mount(&mock).await;
    let (status, body) = replay(&server, "hook_github", &cid).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["event"]["status"].as_str(), body["event"]["attempts"].as_u64()), (Some("handled"), Some(4)));
    assert_eq!(reported(&mock, "github").await[0]["cid"], cid);
}

#[tokio::test]
async fn waiting_events_are_handled_after_a_restart() {
    let mock = failing_mock(None).await;
    // A run cut short by the stop is due again when its lease ends: the longest run allowed, and a margin.
    let mut server = start_hooks(&mock, &["--webhook-backoff-ms", "300", "--max-timeout-ms", "5000"], true);
    let cid = deliver_failing(&server).await;
    server.stop();
    // Every attempt of the first process failed; the downstream comes back while no process runs.
    let attempts_before = reported(&mock, "github").await.len();
    assert!(attempts_before >= 1);
    mock.reset().await;
    Mock::given(method("POST")).and(path_regex("^/ran/")).respond_with(ResponseTemplate::new(200)).mount(&mock).await;

    let server = server.restart();
    let event = once_settled(&server, "hook_github", &cid, "handled").await;
    assert!(event["attempts"].as_u64().unwrap() > attempts_before as u64, "{event}");
    assert_eq!(reported(&mock, "github").await.len(), 1, "the new process ran it once");
}

#[tokio::test]
async fn without_a_handler_the_event_is_stored_and_answered_with_its_cid() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], false);
    let stripe = provider("stripe");
    let headers = signed(&stripe, &stripe.secret, stripe.body, "", now());
    let (status, body) = json(deliver(&server, "hook_stripe", &headers, stripe.body).await).await;
    assert_eq!(status, 200);
    let listed = events(&server, "hook_stripe").await;
    assert_eq!(body, json!({"cid": listed[0]["cid"]}));
    assert_eq!(listed[0]["status"], "stored");
    let (status, error) = replay(&server, "hook_stripe", listed[0]["cid"].as_str().unwrap()).await;
    assert_eq!((status, error["error"]["type"].as_str()), (400, Some("bad_request")));

    // Slack verifies a URL before it sends events: the challenge is answered even without a handler.
    let slack = provider("slack");
    let challenge =
        r#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let headers = signed(&slack, &slack.secret, challenge, "", now());
    let (status, body) = json(deliver(&server, "hook_slack", &headers, challenge).await).await;
    assert_eq!(
        (status, body["challenge"].as_str()),
        (200, Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"))
    );
}

#[tokio::test]
async fn the_handlers_return_value_is_the_response() {
    let mock = recording_mock().await;
    let handler = r#"fn webhook(event) {
    if event.body.type == "url_verification" { return event.body.challenge; }
    #{ output: "accepted " + event.id, status: 202, content_type: "text/plain" }
}"#;
    let script = hook_script("slack", handler);
    let base_url = mock.uri();
    let env = [("HOOK_SLACK_SECRET", "slack-signing-secret"), ("HOOK_SLACK_BASE_URL", base_url.as_str())];
    let server = Server::start_with(&[("slacker", &script)], &[], &env);
    let slack = provider("slack");
    let response = deliver(&server, "slacker", &signed(&slack, &slack.secret, slack.body, "", now()), slack.body).await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "accepted Ev1");
    let challenge = r#"{"challenge":"c-123","type":"url_verification"}"#;
    let response = deliver(&server, "slacker", &signed(&slack, &slack.secret, challenge, "", now()), challenge).await;
    assert_eq!(response.text().await.unwrap(), "c-123");
}

#[tokio::test]
async fn twilio_signatures_cover_the_public_url() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &["--public-url", "https://hooks.example.com/switchboard"], true);
    let twilio = provider("twilio");
    let public = "https://hooks.example.com/switchboard/webhooks/hook_twilio?tenant=7";
    let headers = signed(&twilio, &twilio.secret, twilio.body, public, now());
    let response = deliver_to(&server, "/webhooks/hook_twilio?tenant=7", &headers, twilio.body).await;
    assert_eq!(json(response).await, (200, json!({"handled": "SM1:delivered"})));
    // Signed for the address the request reached instead of the public one: refused.
    let local = server.url("/webhooks/hook_twilio?tenant=7");
    let headers = signed(&twilio, &twilio.secret, "MessageSid=SM2", &local, now());
    expect_error(
        deliver_to(&server, "/webhooks/hook_twilio?tenant=7", &headers, "MessageSid=SM2").await,
        401,
        "unauthorized",
    )
    .await;

    // A JSON body is bound by its SHA-256 in the signed URL.
    let body = r#"{"MessageSid":"SM3"}"#;
    let query = format!("bodySHA256={}", hex::encode(Sha256::digest(body.as_bytes())));
    let signed_url = format!("https://hooks.example.com/switchboard/webhooks/hook_twilio?{query}");
    let mut headers = signed(&twilio, &twilio.secret, "", &signed_url, now());
    headers[0].1 = "application/json".into();
    let path = format!("/webhooks/hook_twilio?{query}");
    assert_eq!(deliver_to(&server, &path, &headers, body).await.status(), 200);
    let swapped = r#"{"MessageSid":"SM4"}"#;
    expect_error(deliver_to(&server, &path, &headers, swapped).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn events_are_for_the_admin_and_only_webhook_servers_receive() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], true);
    let url = server.url("/api/webhooks/hook_github/events");
    expect_error(server.client.get(&url).send().await.unwrap(), 401, "unauthorized").await;
    let bad_limit = server.client.get(format!("{url}?limit=many")).bearer_auth(server.admin_token());
    expect_error(bad_limit.send().await.unwrap(), 400, "bad_request").await;
    expect_error(server.client.get(&url).bearer_auth("wrong").send().await.unwrap(), 401, "unauthorized").await;
    let replay_url =
        server.url(&format!("/api/webhooks/hook_github/events/{}/replay", switchboard::cid::Cid::of(b"x")));
    expect_error(server.client.post(&replay_url).send().await.unwrap(), 401, "unauthorized").await;
    let (status, _) = replay(&server, "hook_github", &switchboard::cid::Cid::of(b"x").to_string()).await;
    assert_eq!(status, 404);

    let (_, described) = json(server.get("/hook_github").await).await;
    assert_eq!(described["usage"]["webhook"], "POST /webhooks/hook_github");
    expect_error(deliver(&server, "echo", &[], "{}").await, 404, "not_found").await;
    expect_error(deliver(&server, "nobody", &[], "{}").await, 404, "not_found").await;
}

#[tokio::test]
async fn read_only_mode_receives_and_lists_but_does_not_replay() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &["--read-only"], true);
    let github = provider("github");
    let response =
        deliver(&server, "hook_github", &signed(&github, &github.secret, github.body, "", now()), github.body).await;
    let cid = response.headers()["x-webhook-event"].to_str().unwrap().to_owned();
    assert_eq!(response.status(), 200);
    assert_eq!(events(&server, "hook_github").await.len(), 1);
    let (status, body) = replay(&server, "hook_github", &cid).await;
    assert_eq!((status, body["error"]["type"].as_str()), (403, Some("forbidden")));
}

#[tokio::test]
async fn deliveries_need_their_signature_not_an_invocation_token() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &["--invoke-token", "ops-token"], true);
    let github = provider("github");
    let headers = signed(&github, &github.secret, github.body, "", now());
    let (status, body) = json(deliver(&server, "hook_github", &headers, github.body).await).await;
    assert_eq!((status, body), (200, json!({"handled": "gh-1"})));
    expect_error(deliver(&server, "hook_github", &headers[..1], github.body).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_unset_secret_is_named_and_nothing_is_stored() {
    let script = hook_script("github", &reporting("github"));
    let server = Server::start(&[("hook_github", &script)]);
    let github = provider("github");
    let headers = signed(&github, &github.secret, github.body, "", now());
    let error = expect_error(deliver(&server, "hook_github", &headers, github.body).await, 424, "missing_secret").await;
    assert_eq!(error["secret"], "HOOK_GITHUB_SECRET");
    assert!(events(&server, "hook_github").await.is_empty());
}

#[tokio::test]
async fn an_event_the_store_cannot_keep_is_answered_503_so_the_provider_retries() {
    let mock = recording_mock().await;
    let server = start_hooks(&mock, &[], true);
    let github = provider("github");
    let headers = signed(&github, &github.secret, github.body, "", now());
    {
        // Another process holds the store's write lock longer than the server waits for it.
        let lock = rusqlite::Connection::open(server.data_dir().join("store.sqlite")).unwrap();
        lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
        expect_error(deliver(&server, "hook_github", &headers, github.body).await, 503, "unavailable").await;
        lock.execute_batch("ROLLBACK").unwrap();
    }
    assert!(events(&server, "hook_github").await.is_empty());
    assert!(reported(&mock, "github").await.is_empty(), "nothing ran");
    // The provider's retry goes through.
    let (status, body) = json(deliver(&server, "hook_github", &headers, github.body).await).await;
    assert_eq!((status, body), (200, json!({"handled": "gh-1"})));
}

#[tokio::test]
async fn the_readme_example_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Webhooks\n").nth(1).expect("README has a Webhooks section");
    let section = section.split("\n## ").next().unwrap();
    let example = section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .find(|block| block.contains("openssl"))
        .expect("the Webhooks section has a runnable example");
    let server = Server::start_default(&[], &[("GITHUB_WEBHOOK_SECRET", "It's a Secret to Everybody")]);
    let script = example.replace("localhost:8080", server.base.trim_start_matches("http://"));
    let output = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("TOKEN", server.admin_token())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let listed = events(&server, "github").await;
    assert_eq!(listed.len(), 1, "{stdout}");
    assert!(stdout.contains(&format!("{{\"cid\":\"{}\"}}", listed[0]["cid"].as_str().unwrap())), "{stdout}");
    assert!(stdout.contains("\"delivery_id\":\"72d3162e-cc78-11e3-81ab-4c9367dc0958\""), "{stdout}");
}

/// The catalog server receiving each provider's deliveries, and the secret its signature is keyed with.
fn catalog_server(scheme: &str) -> (&'static str, &'static str) {
    match scheme {
        "stripe" => ("stripe", "STRIPE_WEBHOOK_SECRET"),
        "github" => ("github", "GITHUB_WEBHOOK_SECRET"),
        "slack" => ("slack", "SLACK_SIGNING_SECRET"),
        "shopify" => ("shopify", "SHOPIFY_WEBHOOK_SECRET"),
        "twilio" => ("twilio", "TWILIO_AUTH_TOKEN"),
        _ => ("openai_chat", "OPENAI_WEBHOOK_SECRET"),
    }
}

#[tokio::test]
async fn catalog_webhook_servers_forward_each_verified_event_to_the_configured_url() {
    let mock = MockServer::start().await;
    Mock::given(method("POST")).and(path_regex("^/hooks/")).respond_with(ResponseTemplate::new(204)).mount(&mock).await;
    let mut env: Vec<(String, String)> = Vec::new();
    for p in providers() {
        let (name, secret) = catalog_server(p.scheme);
        env.push((secret.to_owned(), p.secret.clone()));
        env.push((format!("{}_WEBHOOK_FORWARD_URL", name.to_uppercase()), format!("{}/hooks/{name}", mock.uri())));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_default(&[], &env);

    for p in providers() {
        let (name, _) = catalog_server(p.scheme);
        let url = server.url(&format!("/webhooks/{name}"));
        let response = deliver(&server, name, &signed(&p, &p.secret, p.body, &url, now()), p.body).await;
        let cid = response.headers()["x-webhook-event"].to_str().unwrap().to_owned();
        let (status, body) = json_or_text(response).await;
        assert_eq!(status, 200, "{name}: {body}");
        let received = mock.received_requests().await.unwrap();
        let forwarded: Vec<Value> = received
            .iter()
            .filter(|r| r.url.path() == format!("/hooks/{name}"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        assert_eq!(forwarded.len(), 1, "{name}");
        assert_eq!((forwarded[0]["id"].as_str(), forwarded[0]["cid"].as_str()), (Some(p.id), Some(cid.as_str())));
        let listed = events(&server, name).await;
        assert_eq!(
            (listed[0]["status"].as_str(), listed[0]["attempts"].as_u64()),
            (Some("handled"), Some(1)),
            "{name}"
        );
    }
}

/// A response's status and body, JSON or not (Twilio's handler answers TwiML).
async fn json_or_text(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn without_a_forward_url_a_catalog_server_keeps_the_event_and_sends_nothing() {
    let github = provider("github");
    let server = Server::start_default(&[], &[("GITHUB_WEBHOOK_SECRET", &github.secret)]);
    let headers = signed(&github, &github.secret, github.body, "", now());
    let response = deliver(&server, "github", &headers, github.body).await;
    let cid = response.headers()["x-webhook-event"].to_str().unwrap().to_owned();
    assert_eq!(json(response).await, (200, json!({"cid": cid})));
    assert_eq!(events(&server, "github").await[0]["status"], "handled");
}

#[tokio::test]
async fn events_handed_to_another_server_run_its_handler() {
    let mock = recording_mock().await;
    let github_script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/github.rhai")).unwrap();
    let triage = "const META = #{ title: \"Triage\", description: \"handles GitHub's events\", base_url: \"http://127.0.0.1:9\" };
fn main(endpoint, method, data) { () }
fn webhook(event) { api::call(global::META, \"/ran/triage\", \"POST\", event); #{ triaged: event.id } }";
    let github = provider("github");
    let base = mock.uri();
    let env = [
        ("GITHUB_WEBHOOK_SECRET", github.secret.as_str()),
        ("GITHUB_WEBHOOK_SERVER", "triage"),
        ("TRIAGE_BASE_URL", base.as_str()),
    ];
    let server = Server::start_with(&[("github", github_script.as_str()), ("triage", triage)], &[], &env);
    let headers = signed(&github, &github.secret, github.body, "", now());
    let (status, body) = json(deliver(&server, "github", &headers, github.body).await).await;
    assert_eq!((status, body), (200, json!({"triaged": "gh-1"})));
    let runs = reported(&mock, "triage").await;
    assert_eq!((runs.len(), runs[0]["body"].clone()), (1, serde_json::from_str::<Value>(github.body).unwrap()));
    assert_eq!(events(&server, "github").await[0]["status"], "handled");
}

#[tokio::test]
async fn the_forward_url_is_a_destination_only_of_servers_that_receive_webhooks() {
    let mock = recording_mock().await;
    let plain =
        "const META = #{ title: \"Plain\", description: \"receives no webhooks\", base_url: \"http://127.0.0.1:9\" };
fn main(endpoint, method, data) { webhook::forward(#{ cid: \"x\" }) }";
    let forward = format!("{}/ran/plain", mock.uri());
    let server = Server::start_with(&[("plain", plain)], &[], &[("PLAIN_WEBHOOK_FORWARD_URL", forward.as_str())]);
    let error = expect_error(server.get("/plain/go").await, 403, "forbidden").await;
    assert!(error["host"].as_str().unwrap().starts_with("127.0.0.1:"), "{error}");
    assert!(mock.received_requests().await.unwrap().is_empty(), "nothing sent");
}

#[tokio::test]
async fn the_readme_forwarding_example_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section =
        readme.split("\n### What the catalog's webhook servers do").nth(1).expect("the README has the section");
    let block = section.split("```sh\n").nth(1).unwrap().split("```").next().unwrap().replace("\\\n", " ");
    let settings: Vec<(String, String)> = block
        .split_whitespace()
        .take_while(|word| *word != "switchboard")
        .map(|word| word.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap())
        .collect();
    let mock = recording_mock().await;
    Mock::given(method("POST"))
        .and(path_regex("^/github-events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let (github, stripe) = (provider("github"), provider("stripe"));
    let mut env: Vec<(String, String)> = settings
        .into_iter()
        .map(|(name, value)| match name.as_str() {
            "GITHUB_WEBHOOK_SECRET" => (name, github.secret.clone()),
            "STRIPE_WEBHOOK_SECRET" => (name, stripe.secret.clone()),
            _ if value.starts_with("https://ci.example.com/") => {
                (name, value.replace("https://ci.example.com", &mock.uri()))
            }
            _ => (name, value),
        })
        .collect();
    env.push(("BILLING_TRIAGE_BASE_URL".into(), mock.uri()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let script =
        |name: &str| std::fs::read_to_string(format!("{}/scripts/{name}.rhai", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let (github_script, stripe_script) = (script("github"), script("stripe"));
    let triage =
        hook_script("stripe", &reporting("billing_triage")).replace("HOOK_STRIPE_SECRET", "STRIPE_WEBHOOK_SECRET");
    let servers =
        [("github", github_script.as_str()), ("stripe", stripe_script.as_str()), ("billing_triage", triage.as_str())];
    let server = Server::start_with(&servers, &[], &env);

    let headers = signed(&github, &github.secret, github.body, "", now());
    assert_eq!(deliver(&server, "github", &headers, github.body).await.status(), 200);
    let headers = signed(&stripe, &stripe.secret, stripe.body, "", now());
    assert_eq!(json(deliver(&server, "stripe", &headers, stripe.body).await).await, (200, json!({"handled": "evt_1"})));
    let received = mock.received_requests().await.unwrap();
    let forwarded: Vec<Value> = received
        .iter()
        .filter(|r| r.url.path() == "/github-events")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!((forwarded.len(), forwarded[0]["id"].as_str()), (1, Some("gh-1")));
    assert_eq!(reported(&mock, "billing_triage").await[0]["id"], "evt_1");
}
