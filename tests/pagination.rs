//! `api::all` and "all pages": each pagination style against a recording mock that pages 25 items the
//! way the real API does, checking the items arrive in order, the requests the mock saw, and the bounds.

mod common;

use common::{Server, expect_error, json};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOTAL: usize = 25;
const TOKEN: &str = "pg-tok-58a1";

fn item(n: usize) -> Value {
    json!({ "id": format!("i{n}") })
}

fn param(request: &Request, name: &str) -> Option<String> {
    request.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn number(request: &Request, name: &str, default: usize) -> usize {
    param(request, name).map_or(default, |v| v.parse().unwrap())
}

/// Items `start+1 ..= start+size`, within the 25.
fn slice(start: usize, size: usize) -> (Vec<Value>, usize) {
    let end = (start + size).min(TOTAL);
    ((start + 1..=end).map(item).collect(), end)
}

/// One mock, paging the same 25 items in each provider's style by path.
async fn pager() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(|request: &Request| {
            let json = |body: Value| ResponseTemplate::new(200).set_body_json(body);
            match request.url.path() {
                // Slack: `cursor` in, `response_metadata.next_cursor` out ("" on the last page).
                "/v1/users.list" => {
                    let start = param(request, "cursor").map_or(0, |c| c.trim_start_matches('c').parse().unwrap());
                    let (items, end) = slice(start, number(request, "limit", 5));
                    let next = if end < TOTAL { format!("c{end}") } else { String::new() };
                    json(json!({ "ok": true, "members": items, "response_metadata": { "next_cursor": next } }))
                }
                // Stripe: `starting_after` the last id, `has_more`.
                "/v1/customers" => {
                    let start = param(request, "starting_after").map_or(0, |id| id[1..].parse().unwrap());
                    let (items, end) = slice(start, number(request, "limit", 10));
                    json(json!({ "object": "list", "data": items, "has_more": end < TOTAL }))
                }
                "/v1/offset" => {
                    let (items, _) = slice(number(request, "offset", 0), number(request, "limit", 10));
                    json(json!({ "items": items, "total": TOTAL }))
                }
                "/v1/page" => {
                    let size = number(request, "per_page", 10);
                    let (items, _) = slice((number(request, "page", 1) - 1) * size, size);
                    json(json!({ "results": items, "tags": [] }))
                }
                // GitHub: the body is the array, the next page is in `Link`.
                "/v1/issues" => {
                    let (page, size) = (number(request, "page", 1), number(request, "per_page", 30));
                    let (items, end) = slice((page - 1) * size, size);
                    let mut response = json(Value::Array(items));
                    let mut link = format!("<{}v1/issues?page=1&per_page={size}>; rel=\"first\"", base(request));
                    if end < TOTAL {
                        link = format!(
                            "<{}v1/issues?per_page={size}&page={}>; rel=\"next\", {link}",
                            base(request),
                            page + 1
                        );
                    }
                    response = response.insert_header("link", link.as_str());
                    response
                }
                "/v1/stuck" => json(json!({ "data": [item(1)], "next": "same" })),
                "/v1/astray" => ResponseTemplate::new(200)
                    .set_body_json(json!([item(1)]))
                    .insert_header("link", "<http://127.0.0.2:9/v1/astray?page=2>; rel=\"next\""),
                _ => ResponseTemplate::new(404),
            }
        })
        .mount(&mock)
        .await;
    mock
}

fn base(request: &Request) -> String {
    format!("http://{}/", request.headers.get("host").unwrap().to_str().unwrap())
}

fn script(spec: &str, body: &str) -> String {
    format!(
        r#"const META = #{{ title: "Pages", description: "d", secrets: ["PG_TOKEN"], auth: "bearer",
    base_url: "https://api.pages.invalid/v1", api: #{{ pagination: {spec} }} }};
fn main(endpoint, method, data) {{ {body} }}"#
    )
}

const ALL: &str = "api::all(global::META, endpoint, method, data)";

fn ids(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect()
}

fn expected(count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("i{n}")).collect()
}

/// The requests the mock received at `path`, as the values of `names` in each.
async fn seen(mock: &MockServer, path: &str, names: &[&str]) -> Vec<Vec<Option<String>>> {
    let received = mock.received_requests().await.unwrap();
    received
        .iter()
        .filter(|r| r.url.path() == path)
        .map(|r| {
            assert_eq!(r.headers.get("authorization").unwrap(), &format!("Bearer {TOKEN}"), "every page carries auth");
            names.iter().map(|name| param(r, name)).collect()
        })
        .collect()
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| (!v.is_empty()).then(|| v.to_string())).collect()
}

struct Setup {
    server: Server,
    mock: MockServer,
}

async fn setup(servers: &[(&str, String)]) -> Setup {
    let mock = pager().await;
    let uri = mock.uri();
    let mut env: Vec<(String, String)> = vec![("PG_TOKEN".into(), TOKEN.into())];
    env.extend(servers.iter().map(|(name, _)| (format!("{}_BASE_URL", name.to_uppercase()), uri.clone())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let scripts: Vec<(&str, &str)> = servers.iter().map(|(name, source)| (*name, source.as_str())).collect();
    Setup { server: Server::start_with(&scripts, &[], &env), mock }
}

#[tokio::test]
async fn every_style_gathers_all_items_in_order() {
    let slack = r#"#{ style: "cursor", cursor: "response_metadata.next_cursor", param: "cursor", limit_param: "limit", limit: 10 }"#;
    let stripe = r#"#{ style: "cursor", items: "data", has_more: "has_more", last_item: "id", param: "starting_after", limit_param: "limit", limit: 10 }"#;
    let offset = r#"#{ style: "offset", items: "items", param: "offset", limit_param: "limit", limit: 10 }"#;
    let page = r#"#{ style: "page", items: "results", param: "page", limit_param: "per_page", limit: 10 }"#;
    let link = r#"#{ style: "link", limit_param: "per_page", limit: 10 }"#;
    let s = setup(&[
        ("slack", script(slack, ALL)),
        ("stripe", script(stripe, ALL)),
        ("offsets", script(offset, ALL)),
        ("pages", script(page, ALL)),
        ("github", script(link, ALL)),
    ])
    .await;
    for (server, endpoint) in [
        ("slack", "/users.list"),
        ("stripe", "/customers"),
        ("offsets", "/offset"),
        ("pages", "/page"),
        ("github", "/issues"),
    ] {
        let (status, body) = json(s.server.get(&format!("/{server}{endpoint}")).await).await;
        assert_eq!(status, 200, "{server}: {body}");
        assert_eq!(ids(&body), expected(TOTAL), "{server}");
    }
    let m = &s.mock;
    assert_eq!(
        seen(m, "/v1/users.list", &["cursor", "limit"]).await,
        [some(&["", "10"]), some(&["c10", "10"]), some(&["c20", "10"])]
    );
    assert_eq!(
        seen(m, "/v1/customers", &["starting_after", "limit"]).await,
        [some(&["", "10"]), some(&["i10", "10"]), some(&["i20", "10"])]
    );
    // A short page is the last: no fourth request.
    assert_eq!(
        seen(m, "/v1/offset", &["offset", "limit"]).await,
        [some(&["0", "10"]), some(&["10", "10"]), some(&["20", "10"])]
    );
    assert_eq!(
        seen(m, "/v1/page", &["page", "per_page"]).await,
        [some(&["1", "10"]), some(&["2", "10"]), some(&["3", "10"])]
    );
    assert_eq!(
        seen(m, "/v1/issues", &["page", "per_page"]).await,
        [some(&["", "10"]), some(&["2", "10"]), some(&["3", "10"])]
    );
}

#[tokio::test]
async fn max_pages_and_max_items_bound_the_walk() {
    let pages = r#"#{ style: "offset", items: "items", limit_param: "limit", limit: 10, max_pages: 2 }"#;
    let items = r#"#{ style: "cursor", cursor: "response_metadata.next_cursor", limit_param: "limit", limit: 10, max_items: 15 }"#;
    let per_call = r#"api::all(global::META, endpoint, method, data, #{ pagination: #{ max_items: 3 } })"#;
    let s =
        setup(&[("twopages", script(pages, ALL)), ("fifteen", script(items, ALL)), ("three", script(items, per_call))])
            .await;
    let (_, body) = json(s.server.get("/twopages/offset").await).await;
    assert_eq!(ids(&body), expected(20));
    assert_eq!(seen(&s.mock, "/v1/offset", &["offset"]).await, [some(&["0"]), some(&["10"])]);
    let (_, body) = json(s.server.get("/fifteen/users.list").await).await;
    assert_eq!(ids(&body), expected(15));
    let (_, body) = json(s.server.get("/three/users.list").await).await;
    assert_eq!(ids(&body), expected(3));
    // 15 items took two pages of 10, 3 items one page.
    assert_eq!(seen(&s.mock, "/v1/users.list", &["cursor"]).await, [some(&[""]), some(&["c10"]), some(&[""])]);
}

#[tokio::test]
async fn callers_ask_for_all_pages_of_a_plain_call() {
    let slack = r#"#{ style: "cursor", cursor: "response_metadata.next_cursor", limit_param: "limit", limit: 10 }"#;
    let plain = "api::call(global::META, endpoint, method, data)";
    let s = setup(&[("slack", script(slack, plain))]).await;
    // Without the flag, one page as the API answered it.
    let (_, one) = json(s.server.get("/slack/users.list?limit=4").await).await;
    assert_eq!(one["members"].as_array().unwrap().len(), 4);
    let proxy = s.server.client.get(s.server.url("/slack/users.list")).header("X-All-Pages", "1").send().await.unwrap();
    assert_eq!(ids(&json(proxy).await.1), expected(TOTAL));
    // The caller's own page size gives way to the declared one rather than going out twice.
    let call_style = s.server.get("/slack?endpoint=/users.list%3Flimit%3D4&all=1").await;
    assert_eq!(ids(&json(call_style).await.1), expected(TOTAL));
    let posted = s.server.client.post(s.server.url("/slack")).json(&json!({"endpoint": "/users.list", "all": true}));
    assert_eq!(ids(&json(posted.send().await.unwrap()).await.1), expected(TOTAL));
    expect_error(s.server.get("/slack?endpoint=/users.list&all=maybe").await, 400, "bad_request").await;
    assert_eq!(seen(&s.mock, "/v1/users.list", &["cursor"]).await.len(), 1 + 3 * 3);
    let received = s.mock.received_requests().await.unwrap();
    assert!(received.iter().skip(1).all(|r| r.url.query_pairs().filter(|(k, _)| k == "limit").count() == 1));
}

#[tokio::test]
async fn a_server_without_pagination_refuses_all_pages() {
    let source = r#"const META = #{ title: "Flat", description: "d", base_url: "https://flat.invalid" };
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;
    let server = Server::start_with(&[("flat", source)], &[], &[]);
    let error = expect_error(server.get("/flat?endpoint=/x&all=1").await, 400, "bad_request").await;
    assert!(error["message"].as_str().unwrap().contains("declares no pagination"), "{error}");
    // Also when the script never calls `api`: the caller's request is refused, not ignored.
    let proxy = server.client.get(server.url("/echo/x")).header("x-all-pages", "1").send().await.unwrap();
    for response in [server.get("/echo?endpoint=/x&all=1").await, proxy] {
        let error = expect_error(response, 400, "bad_request").await;
        assert!(error["message"].as_str().unwrap().contains("declares no pagination"), "{error}");
    }
}

#[tokio::test]
async fn a_next_link_that_leaves_the_api_is_refused() {
    let s = setup(&[("astray", script(r#"#{ style: "link" }"#, ALL))]).await;
    let error = expect_error(s.server.get("/astray/astray").await, 502, "invalid_response").await;
    assert!(error["message"].as_str().unwrap().contains("leads outside the API"), "{error}");
    assert_eq!(s.mock.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_cursor_that_does_not_move_ends_the_walk_with_an_error() {
    let s = setup(&[("stuck", script(r#"#{ style: "cursor", items: "data", cursor: "next" }"#, ALL))]).await;
    let error = expect_error(s.server.get("/stuck/stuck").await, 502, "invalid_response").await;
    assert!(error["message"].as_str().unwrap().contains("same next cursor"), "{error}");
    assert_eq!(seen(&s.mock, "/v1/stuck", &["cursor"]).await, [some(&[""]), some(&["same"])]);
}

#[tokio::test]
async fn a_bad_pagination_spec_is_refused_when_the_script_loads_or_is_called() {
    let token = "adm-pg-1f2e3d";
    let server = Server::start_with(&[], &[], &[("SWITCHBOARD_ADMIN_TOKEN", token)]);
    for (spec, says) in [
        (r#"#{ style: "scroll" }"#, "unknown style 'scroll'"),
        (r#"#{ style: "cursor", param: "cursor" }"#, "exactly one of 'cursor'"),
        (r#"#{ style: "offset", limit: 0, limit_param: "limit" }"#, "'limit' must be a whole number"),
        (r#"#{ style: "link", every: 2 }"#, "unknown key 'every'"),
    ] {
        let put = server.client.put(server.url("/api/servers/bad")).bearer_auth(token).body(script(spec, ALL));
        let (status, body) = json(put.send().await.unwrap()).await;
        assert_eq!(status, 422, "{spec}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{spec}: {body}");
    }
    let at_call = r#"api::all(global::META, endpoint, method, data, #{ pagination: #{ max_pages: -1 } })"#;
    let put = server.client.put(server.url("/api/servers/percall")).bearer_auth(token);
    let put = put.body(script(r#"#{ style: "page" }"#, at_call)).send().await.unwrap();
    assert!(put.status().is_success());
    let error = expect_error(server.get("/percall/x").await, 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("'max_pages' must be a whole number"), "{error}");
}

/// The README's Pagination section: its script pages a ticket list, and its three calls run as written.
#[tokio::test]
async fn the_readme_pagination_example_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n### Pagination: `api::all`").nth(1).unwrap().split("\n### ").next().unwrap();
    let block = |fence: &str| section.split(fence).nth(1).unwrap().split("```").next().unwrap().to_owned();
    let (source, shell) = (block("```rhai\n"), block("```sh\n"));

    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::path("/v2/tickets"))
        .respond_with(|request: &Request| {
            let start: usize = param(request, "after").map_or(0, |a| a.parse().unwrap());
            let end = (start + number(request, "limit", 10)).min(250);
            let status = param(request, "status").unwrap_or_default();
            let tickets: Vec<Value> = (start + 1..=end).map(|n| json!({ "id": n, "status": status })).collect();
            let next = (end < 250).then(|| end.to_string());
            ResponseTemplate::new(200).set_body_json(json!({ "tickets": tickets, "meta": { "next": next } }))
        })
        .mount(&mock)
        .await;
    let uri = mock.uri();
    let env = [("TICKETS_TOKEN", "tk-0a9b8c"), ("TICKETS_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("tickets", &source)], &[], &env);
    let mut checked = 0;
    for line in shell.lines().filter(|line| line.starts_with("curl")) {
        let path = line.split("localhost:8080").nth(1).unwrap().split(['\'', ' ']).next().unwrap();
        let mut request = server.client.get(server.url(path));
        if line.contains("X-All-Pages: 1") {
            request = request.header("X-All-Pages", "1");
        }
        let (status, body) = json(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "{line}: {body}");
        let tickets = body.as_array().unwrap();
        let ids: Vec<u64> = tickets.iter().map(|t| t["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, (1..=250).collect::<Vec<u64>>(), "{line}");
        let wanted = if line.contains("status=closed") {
            "closed"
        } else if path.ends_with("/open") {
            "open"
        } else {
            ""
        };
        assert!(tickets.iter().all(|t| t["status"] == wanted), "{line}");
        checked += 1;
    }
    assert_eq!(checked, 3);
    let received = mock.received_requests().await.unwrap();
    assert_eq!(received.len(), 9, "three pages of 100 for each call");
    assert!(received.iter().all(|r| r.headers.get("authorization").unwrap() == "Bearer tk-0a9b8c"));
}

/// Without a declared page size the API's own default decides: an offset walk goes on from the items it
/// got, a page walk from the page number, and both end at the first empty page.
#[tokio::test]
async fn without_a_page_size_walks_end_at_an_empty_page() {
    let s = setup(&[
        ("offsets", script(r#"#{ style: "offset", items: "items" }"#, ALL)),
        ("pages", script(r#"#{ style: "page", items: "results" }"#, ALL)),
    ])
    .await;
    assert_eq!(ids(&json(s.server.get("/offsets/offset").await).await.1), expected(TOTAL));
    assert_eq!(ids(&json(s.server.get("/pages/page").await).await.1), expected(TOTAL));
    let offsets = seen(&s.mock, "/v1/offset", &["offset", "limit"]).await;
    assert_eq!(offsets, [some(&["0", ""]), some(&["10", ""]), some(&["20", ""]), some(&["25", ""])]);
    let pages = seen(&s.mock, "/v1/page", &["page"]).await;
    assert_eq!(pages, [some(&["1"]), some(&["2"]), some(&["3"]), some(&["4"])]);
}
