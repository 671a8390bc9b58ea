//! Multipart bodies: what the upstream receives is parsed by a real multipart parser (`multer`), part by
//! part — names, file names, content types and bytes, text and blob data alike.

mod common;

use common::{Server, expect_error, json};
use serde_json::json;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One part as the upstream parsed it: name, file name, content type, bytes.
type Parsed = (String, Option<String>, Option<String>, Vec<u8>);

async fn parse(request: &wiremock::Request) -> Vec<Parsed> {
    let content_type = request.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("multipart/form-data"), "{content_type}");
    let boundary = multer::parse_boundary(content_type).unwrap();
    let body = bytes::Bytes::from(request.body.clone());
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    while let Some(field) = multipart.next_field().await.unwrap() {
        let name = field.name().unwrap().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(|m| m.to_string());
        parts.push((name, filename, content_type, field.bytes().await.unwrap().to_vec()));
    }
    parts
}

fn text(name: &str, value: &str) -> Parsed {
    (name.into(), None, None, value.as_bytes().to_vec())
}

fn file(name: &str, filename: &str, content_type: &str, data: &[u8]) -> Parsed {
    (name.into(), Some(filename.into()), Some(content_type.into()), data.to_vec())
}

const UPLOADS: &str = r#"const META = #{ title: "Uploads", description: "d", secrets: ["UP_TOKEN"], auth: "bearer",
    base_url: "https://api.uploads.invalid/v1", api: #{ body: "multipart", body_fields: #{ source: "switchboard" } } };
fn main(endpoint, method, data) {
    if endpoint == "/blob" {
        let bytes = blob(3, 0xff);
        bytes[1] = 0;
        data.image = #{ filename: "p.bin", content_type: "application/octet-stream", data: bytes };
    }
    api::call(global::META, endpoint, method, data)
}"#;

/// The `uploads` server, sending to a mock that answers every request with 200.
async fn uploads() -> (MockServer, Server) {
    let mock = common::ok_upstream().await;
    let uri = mock.uri();
    let env = [("UP_TOKEN", "up-tok-3b4c"), ("UPLOADS_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("uploads", UPLOADS)], &[], &env);
    (mock, server)
}

#[tokio::test]
async fn text_and_blob_file_parts_arrive_as_multipart_form_data() {
    let (mock, server) = uploads().await;
    let data = json!({
        "channels": "C1",
        "note": 7,
        "meta": { "k": "v" },
        "skipped": null,
        "file": { "filename": "a.txt", "content_type": "text/plain", "data": "hello\r\n--not a boundary" },
        "tags": ["x", { "filename": "b.csv", "data": "1,2" }],
    });
    let response = server.client.post(server.url("/uploads/blob")).json(&data).send().await.unwrap();
    assert_eq!(json(response).await, (200, json!({ "ok": true })));

    let received = &mock.received_requests().await.unwrap()[0];
    assert_eq!(received.headers.get("authorization").unwrap(), "Bearer up-tok-3b4c");
    let mut parts = parse(received).await;
    parts.sort();
    let mut expected = vec![
        text("source", "switchboard"),
        text("channels", "C1"),
        text("note", "7"),
        text("meta", r#"{"k":"v"}"#),
        file("file", "a.txt", "text/plain", b"hello\r\n--not a boundary"),
        text("tags", "x"),
        ("tags".into(), Some("b.csv".into()), None, b"1,2".to_vec()),
        file("image", "p.bin", "application/octet-stream", &[0xff, 0, 0xff]),
    ];
    expected.sort();
    assert_eq!(parts, expected);
}

#[tokio::test]
async fn a_file_name_cannot_start_a_header_or_a_part_of_its_own() {
    let (mock, server) = uploads().await;
    let injected = "a.txt\"\r\nX-Injected: 1\r\n\r\nforged\r\n--boundary\r\n";
    let data = json!({ "file": { "filename": injected, "content_type": "text/plain", "data": "real" } });
    let response = server.client.post(server.url("/uploads/up")).json(&data).send().await.unwrap();
    assert_eq!(json(response).await, (200, json!({ "ok": true })));
    let received = &mock.received_requests().await.unwrap()[0];
    let body = String::from_utf8_lossy(&received.body);
    assert!(!body.contains("\r\nX-Injected"), "{body:?}");
    let parts = parse(received).await;
    let file: Vec<&Parsed> = parts.iter().filter(|part| part.0 == "file").collect();
    assert_eq!(file.len(), 1, "{parts:?}");
    assert_eq!(file[0].1.as_deref(), Some("a.txt%22%0D%0AX-Injected: 1%0D%0A%0D%0Aforged%0D%0A--boundary%0D%0A"));
    assert_eq!((file[0].2.as_deref(), &file[0].3[..]), (Some("text/plain"), &b"real"[..]));
}

#[tokio::test]
async fn a_bad_part_is_refused_before_anything_is_sent() {
    let mock = common::ok_upstream().await;
    let uri = mock.uri();
    let env = [("UP_TOKEN", "up-tok-3b4c"), ("UPLOADS_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("uploads", UPLOADS)], &[], &env);
    for (data, says) in [
        (json!({ "file": { "filename": "a.txt" } }), "a file part needs 'data'"),
        (json!({ "file": { "data": "x", "mime": "text/plain" } }), "unknown key 'mime'"),
        (json!({ "file": { "data": "x", "content_type": "not a type" } }), "'not a type' is not a content type"),
        (json!({ "file": { "data": 42 } }), "'data' must be text or a blob"),
        (json!({ "file": { "data": "x", "filename": 3 } }), "'filename' must be a string"),
        (json!({ "files": [["nested"]] }), "not arrays"),
    ] {
        let response = server.client.post(server.url("/uploads/x")).json(&data).send().await.unwrap();
        let error = expect_error(response, 400, "bad_request").await;
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("multipart part") && message.contains(says), "{data}: {message}");
    }
    assert!(mock.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn catalog_uploads_go_multipart_to_their_upload_hosts() {
    let (telegram, api, upload) =
        (common::ok_upstream().await, common::ok_upstream().await, common::ok_upstream().await);
    let token = "123456:tg-test-token";
    let (telegram_uri, api_uri, upload_uri) = (telegram.uri(), api.uri(), upload.uri());
    let env = [
        ("TELEGRAM_BOT_TOKEN", token),
        ("TELEGRAM_BASE_URL", telegram_uri.as_str()),
        ("BOX_ACCESS_TOKEN", "box-tok-9f8e"),
        ("BOX_BASE_URL", api_uri.as_str()),
        ("BOX_UPLOAD_BASE_URL", upload_uri.as_str()),
    ];
    let server = Server::start_default(&[], &env);

    let document =
        json!({ "chat_id": 42, "document": { "filename": "r.txt", "content_type": "text/plain", "data": "report" } });
    let sent = server.client.post(server.url("/telegram/sendDocument")).json(&document).send().await.unwrap();
    assert_eq!(sent.status(), 200);
    let message = json!({ "chat_id": 42, "text": "hi" });
    assert_eq!(
        server.client.post(server.url("/telegram/sendMessage")).json(&message).send().await.unwrap().status(),
        200
    );
    let received = telegram.received_requests().await.unwrap();
    assert_eq!(received[0].url.path(), format!("/bot{token}/sendDocument"));
    assert_eq!(parse(&received[0]).await, [text("chat_id", "42"), file("document", "r.txt", "text/plain", b"report")]);
    // A call without a file stays JSON.
    assert_eq!(received[1].headers.get("content-type").unwrap(), "application/json");

    let upload_data = json!({ "attributes": { "name": "a.txt", "parent": { "id": "0" } },
                              "file": { "filename": "a.txt", "data": "contents" } });
    let uploaded = server.client.post(server.url("/box/files/content")).json(&upload_data).send().await.unwrap();
    assert_eq!(uploaded.status(), 200);
    let received = &upload.received_requests().await.unwrap()[0];
    assert_eq!(received.url.path(), "/api/2.0/files/content");
    assert_eq!(received.headers.get("authorization").unwrap(), "Bearer box-tok-9f8e");
    let mut parts = parse(received).await;
    parts.sort();
    assert_eq!(
        parts,
        [
            text("attributes", r#"{"name":"a.txt","parent":{"id":"0"}}"#),
            ("file".into(), Some("a.txt".into()), None, b"contents".to_vec()),
        ]
    );
    assert!(api.received_requests().await.unwrap().is_empty(), "uploads never reach the API host");
}

/// An array of maps sends its parts in the array's order, after the server's fixed fields; a map sends
/// them in key order; an array holding anything but maps is refused before anything is sent.
#[tokio::test]
async fn parts_go_in_the_order_given_by_an_array_of_maps() {
    let (mock, server) = uploads().await;
    let ordered =
        json!([{ "zeta": "1" }, { "file": { "filename": "z.txt", "data": "z" } }, { "alpha": "2", "beta": "3" }]);
    let response = server.client.post(server.url("/uploads/ordered")).json(&ordered).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let keyed = json!({ "zeta": "1", "alpha": "2" });
    let response = server.client.post(server.url("/uploads/keyed")).json(&keyed).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let received = mock.received_requests().await.unwrap();
    let names = |parts: Vec<Parsed>| parts.into_iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(names(parse(&received[0]).await), ["source", "zeta", "file", "alpha", "beta"]);
    assert_eq!(names(parse(&received[1]).await), ["alpha", "source", "zeta"]);

    let response = server.client.post(server.url("/uploads/bad")).json(&json!([{ "a": "1" }, "loose"])).send();
    let error = expect_error(response.await.unwrap(), 400, "bad_request").await;
    assert!(error["message"].as_str().unwrap().contains("multipart item 1"), "{error}");
    assert_eq!(mock.received_requests().await.unwrap().len(), 2);
}

/// The README's multipart section: its script and its curl line, parsed at the mock.
#[tokio::test]
async fn the_readme_multipart_example_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n### Multipart uploads\n").nth(1).unwrap().split("\n### ").next().unwrap();
    let block = |fence: &str| section.split(fence).nth(1).unwrap().split("```").next().unwrap().to_owned();
    let (source, shell) = (block("```rhai\n"), block("```sh\n"));
    let path = shell.split("localhost:8080").nth(1).unwrap().split_whitespace().next().unwrap();
    let body = shell.split("-d '").nth(1).unwrap().split('\'').next().unwrap();

    let mock = common::ok_upstream().await;
    let uri = mock.uri();
    let env = [("DOCS_TOKEN", "docs-tok-2a"), ("DOCS_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("docs", &source)], &[], &env);
    let request = server.client.post(server.url(path)).header("content-type", "application/json");
    assert_eq!(request.body(body.to_owned()).send().await.unwrap().status(), 200);
    let plain = server.client.post(server.url("/docs/notes")).json(&json!({ "title": "t" })).send().await.unwrap();
    assert_eq!(plain.status(), 200);

    let received = mock.received_requests().await.unwrap();
    assert_eq!(received[0].url.path(), "/v1/upload");
    // In the order given, which is not the keys' order.
    let parts = parse(&received[0]).await;
    assert_eq!(parts, [text("folder", "inbox"), file("file", "a.txt", "text/plain", b"hello")]);
    assert_eq!(received[1].body, br#"{"title":"t"}"#);
}

/// Slack's external upload: the URL it hands out, the file sent there as multipart, then completion.
#[tokio::test]
async fn slack_uploads_a_file_in_its_three_steps() {
    let (api, files) = (MockServer::start().await, MockServer::start().await);
    Mock::given(wiremock::matchers::path("/api/files.getUploadURLExternal"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "upload_url": "https://files.slack.com/upload/v1/ABC123", "file_id": "F0123"
        })))
        .mount(&api)
        .await;
    Mock::given(wiremock::matchers::path("/api/files.completeUploadExternal"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "files": [{ "id": "F0123" }] })))
        .mount(&api)
        .await;
    Mock::given(wiremock::matchers::path("/upload/v1/ABC123"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK - 11"))
        .mount(&files)
        .await;
    let (api_uri, files_uri) = (api.uri(), files.uri());
    let env = [
        ("SLACK_BOT_TOKEN", "xoxb-test-7a6b"),
        ("SLACK_BASE_URL", api_uri.as_str()),
        ("SLACK_FILES_BASE_URL", files_uri.as_str()),
    ];
    let server = Server::start_default(&[], &env);
    let data = json!({ "channel_id": "C42", "initial_comment": "the report",
                       "file": { "filename": "r.txt", "content_type": "text/plain", "data": "hello world" } });
    let response = server.client.post(server.url("/slack/files.upload")).json(&data).send().await.unwrap();
    assert_eq!(json(response).await, (200, json!({ "ok": true, "files": [{ "id": "F0123" }] })));

    let calls = api.received_requests().await.unwrap();
    assert_eq!(calls[0].url.path(), "/api/files.getUploadURLExternal");
    let query: Vec<(String, String)> = calls[0].url.query_pairs().into_owned().collect();
    assert_eq!(query, [("filename".to_owned(), "r.txt".to_owned()), ("length".to_owned(), "11".to_owned())]);
    let uploaded = &files.received_requests().await.unwrap()[0];
    assert_eq!(parse(uploaded).await, [file("file", "r.txt", "text/plain", b"hello world")]);
    let completed: serde_json::Value = serde_json::from_slice(&calls[1].body).unwrap();
    assert_eq!(
        completed,
        json!({ "files": [{ "id": "F0123", "title": "r.txt" }], "channel_id": "C42", "initial_comment": "the report" })
    );
    assert!(calls.iter().all(|c| c.headers.get("authorization").unwrap() == "Bearer xoxb-test-7a6b"));
}
