//! The catalog's `mongodb` server against a wire-protocol mock on 127.0.0.1 that answers OP_MSG and records
//! every command the driver sends, and, when `MONGODB_TEST_URL` names one, against a real deployment.

mod common;

use std::sync::{Arc, Mutex};

use common::{Server, json};
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const OP_MSG: i32 = 2013;

/// A MongoDB deployment of one standalone server that answers from `answer` and records each command
/// (its document sequences folded in, as the server itself sees them).
struct Mock {
    address: String,
    commands: Arc<Mutex<Vec<Document>>>,
}

type Answer = fn(&str, &Document) -> Document;

impl Mock {
    async fn start(answer: Answer) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let recorded = commands.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, recorded.clone(), answer));
            }
        });
        Mock { address, commands }
    }

    /// The commands the driver sent, handshakes and monitoring left out.
    fn received(&self) -> Vec<Document> {
        let commands = self.commands.lock().unwrap();
        commands
            .iter()
            .filter(|c| !["hello", "isMaster", "ismaster", "endSessions"].contains(&name(c)))
            .cloned()
            .collect()
    }
}

fn name(command: &Document) -> &str {
    command.keys().next().map(String::as_str).unwrap_or("")
}

async fn serve(mut socket: TcpStream, commands: Arc<Mutex<Vec<Document>>>, answer: Answer) {
    loop {
        let mut header = [0u8; 16];
        if socket.read_exact(&mut header).await.is_err() {
            return;
        }
        let field = |i: usize| i32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().unwrap());
        let (length, request_id, opcode) = (field(0) as usize, field(1), field(3));
        let mut body = vec![0u8; length - 16];
        socket.read_exact(&mut body).await.unwrap();
        assert_eq!(opcode, OP_MSG, "the driver speaks OP_MSG only");
        let command = parse_op_msg(&body[4..]);
        let reply = match name(&command) {
            "hello" | "isMaster" | "ismaster" => hello(),
            "endSessions" => doc! { "ok": 1.0 },
            other => answer(other, &command),
        };
        commands.lock().unwrap().push(command);
        let mut document = Vec::new();
        reply.to_writer(&mut document).unwrap();
        let mut message = Vec::new();
        message.extend_from_slice(&((16 + 4 + 1 + document.len()) as i32).to_le_bytes());
        message.extend_from_slice(&(request_id + 1_000_000).to_le_bytes());
        message.extend_from_slice(&request_id.to_le_bytes());
        message.extend_from_slice(&OP_MSG.to_le_bytes());
        message.extend_from_slice(&0u32.to_le_bytes());
        message.push(0);
        message.extend_from_slice(&document);
        socket.write_all(&message).await.unwrap();
    }
}

/// The body section (kind 0) with each document sequence (kind 1) added under its identifier.
fn parse_op_msg(mut sections: &[u8]) -> Document {
    let mut command = Document::new();
    let mut sequences = Vec::new();
    while !sections.is_empty() {
        let kind = sections[0];
        sections = &sections[1..];
        let size = i32::from_le_bytes(sections[..4].try_into().unwrap()) as usize;
        let (section, rest) = sections.split_at(size);
        sections = rest;
        match kind {
            0 => command = Document::from_reader(section).unwrap(),
            _ => {
                let end = section[4..].iter().position(|b| *b == 0).unwrap() + 4;
                let identifier = String::from_utf8(section[4..end].to_vec()).unwrap();
                let mut documents = &section[end + 1..];
                let mut list = Vec::new();
                while !documents.is_empty() {
                    let length = i32::from_le_bytes(documents[..4].try_into().unwrap()) as usize;
                    list.push(Bson::Document(Document::from_reader(&documents[..length]).unwrap()));
                    documents = &documents[length..];
                }
                sequences.push((identifier, list));
            }
        }
    }
    for (identifier, list) in sequences {
        command.insert(identifier, list);
    }
    command
}

fn hello() -> Document {
    doc! {
        "helloOk": true, "isWritablePrimary": true, "ismaster": true, "maxBsonObjectSize": 16_777_216,
        "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000, "localTime": mongodb::bson::DateTime::now(),
        "logicalSessionTimeoutMinutes": 30, "connectionId": 1, "minWireVersion": 0, "maxWireVersion": 17,
        "readOnly": false, "ok": 1.0,
    }
}

const ADA: &str = "6761a0d2f1e4c2a9b3d5e7f1";

/// What a MongoDB 6 server would answer to each command these tests send.
fn answer(name: &str, command: &Document) -> Document {
    let namespace = format!("{}.{}", command.get_str("$db").unwrap_or(""), command.get_str(name).unwrap_or(""));
    let ada = doc! { "_id": ObjectId::parse_str(ADA).unwrap(), "name": "Ada", "born": 1815, "at": mongodb::bson::DateTime::from_millis(0) };
    match name {
        // More documents than a script's array holds, in one reply well under MongoDB's 16 MiB.
        "find" if namespace.ends_with(".huge") => {
            let batch: Vec<Bson> = (0..100_001).map(|i| Bson::Document(doc! { "i": i })).collect();
            doc! { "cursor": { "firstBatch": batch, "id": 0i64, "ns": namespace }, "ok": 1.0 }
        }
        "find" | "aggregate" => doc! { "cursor": { "firstBatch": [ada], "id": 0i64, "ns": namespace }, "ok": 1.0 },
        "insert" => doc! { "n": command.get_array("documents").map(|d| d.len() as i32).unwrap_or(0), "ok": 1.0 },
        "update" => doc! { "n": 1, "nModified": 1, "ok": 1.0 },
        "delete" | "count" => doc! { "n": 2, "ok": 1.0 },
        "dropDatabase" => {
            doc! { "ok": 0.0, "errmsg": "not authorized on app to execute command", "code": 13, "codeName": "Unauthorized" }
        }
        _ => doc! { "ok": 1.0 },
    }
}

fn start(uri: &str) -> Server {
    Server::start_default(&["--boot", &format!("{ROOT}/boot/default.boot.json")], &[("MONGODB_URI", uri)])
}

async fn call(server: &Server, endpoint: &str, data: Value) -> (u16, Value) {
    let body = json!({"endpoint": endpoint, "method": "POST", "data": data, "timeout_ms": 5000});
    json(server.client.post(server.url("/mongodb")).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn each_action_sends_its_command_with_extended_json_values() {
    let mock = Mock::start(answer).await;
    let server = start(&format!("mongodb://{}/?appName=catalog", mock.address));

    let filter = json!({"born": {"$lt": 1900}, "_id": {"$oid": ADA}});
    let (status, body) = call(&server, "/app/people/find", json!({"filter": filter, "limit": 5})).await;
    let ada = json!({"_id": {"$oid": ADA}, "name": "Ada", "born": 1815, "at": {"$date": "1970-01-01T00:00:00Z"}});
    assert_eq!((status, body), (200, json!([ada])));
    let command = &mock.received()[0];
    assert_eq!(
        (name(command), command.get_str("find").unwrap(), command.get_str("$db").unwrap()),
        ("find", "people", "app")
    );
    // Extended JSON became BSON: an ObjectId, not a map with a "$oid" key.
    let sent = command.get_document("filter").unwrap();
    assert_eq!(sent.get("_id"), Some(&Bson::ObjectId(ObjectId::parse_str(ADA).unwrap())));
    assert_eq!(sent.get_document("born").unwrap(), &doc! { "$lt": 1900 });
    assert_eq!((command.get_i32("limit").ok(), command.get_bool("singleBatch").ok()), (Some(5), Some(true)));

    let grace = json!({"name": "Grace", "born": 1906, "at": {"$date": "2024-01-02T03:04:05Z"}});
    assert_eq!(
        call(&server, "/app/people/insert", json!([grace, {"name": "Alan"}])).await,
        (200, json!({"n": 2, "ok": 1.0}))
    );
    let command = mock.received().pop().unwrap();
    let documents = command.get_array("documents").unwrap();
    assert_eq!(documents.len(), 2);
    let first = documents[0].as_document().unwrap();
    assert!(matches!(first.get("at"), Some(Bson::DateTime(_))), "{first}");

    let change = json!({"filter": {"name": "Ada"}, "update": {"$set": {"born": 1816}}});
    assert_eq!(call(&server, "/app/people/update", change).await.0, 200);
    let command = mock.received().pop().unwrap();
    let update = command.get_array("updates").unwrap()[0].as_document().unwrap().clone();
    assert_eq!(update.get_document("q").unwrap(), &doc! { "name": "Ada" });
    assert_eq!(update.get_document("u").unwrap(), &doc! { "$set": { "born": 1816 } });
    assert_eq!((update.get_bool("upsert").unwrap(), update.get_bool("multi").unwrap()), (false, false));

    assert_eq!(call(&server, "/app/people/delete", json!({"filter": {"name": "Alan"}, "limit": 1})).await.1["n"], 2);
    let command = mock.received().pop().unwrap();
    let delete = command.get_array("deletes").unwrap()[0].as_document().unwrap().clone();
    assert_eq!((delete.get_document("q").unwrap(), delete.get_i32("limit").unwrap()), (&doc! { "name": "Alan" }, 1));

    assert_eq!(call(&server, "/app/people/count", json!({"filter": {"born": {"$gt": 0}}})).await, (200, json!(2)));
    assert_eq!(mock.received().pop().unwrap().get_document("query").unwrap(), &doc! { "born": { "$gt": 0 } });

    let pipeline = json!({"pipeline": [{"$match": {"name": "Ada"}}]});
    assert_eq!(call(&server, "/app/people/aggregate", pipeline).await, (200, json!([ada])));
    let command = mock.received().pop().unwrap();
    assert_eq!(command.get_array("pipeline").unwrap().len(), 1);
    assert!(command.get_document("cursor").is_ok(), "aggregate needs a cursor: {command}");

    let (status, body) =
        call(&server, "/admin/command", json!({"name": "listDatabases", "fields": {"nameOnly": true}})).await;
    assert_eq!((status, body), (200, json!({"ok": 1.0})));
    let command = mock.received().pop().unwrap();
    assert_eq!((name(&command), command.get_str("$db").unwrap()), ("listDatabases", "admin"));
    assert_eq!((command.get_i32("listDatabases").unwrap(), command.get_bool("nameOnly").unwrap()), (1, true));
}

#[tokio::test]
async fn a_refused_command_is_a_script_error_with_the_servers_reason() {
    let mock = Mock::start(answer).await;
    let server = start(&format!("mongodb://{}/", mock.address));
    let (status, body) = call(&server, "/app/command", json!({"name": "dropDatabase"})).await;
    assert_eq!((status, body["error"]["type"].as_str()), (500, Some("script_error")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Unauthorized (13)"), "{body}");
    let (status, body) = call(&server, "/app/people/explode", json!({})).await;
    assert!(status == 500 && body["error"]["message"].as_str().unwrap().contains("unknown action"), "{body}");
}

#[tokio::test]
async fn a_reply_is_counted_before_it_is_converted() {
    let mock = Mock::start(answer).await;
    let server = start(&format!("mongodb://{}/", mock.address));
    let (status, body) = call(&server, "/app/huge/find", json!({})).await;
    assert_eq!((status, body["error"]["type"].as_str()), (500, Some("limit_exceeded")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("more than 100000 rows"), "{body}");
    let (status, _) = call(&server, "/app/people/find", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_missing_uri_or_an_unreachable_deployment_is_the_documented_error() {
    let server = Server::start_default(&["--boot", &format!("{ROOT}/boot/default.boot.json")], &[]);
    let (status, body) = call(&server, "/app/people/find", json!({})).await;
    assert_eq!(
        (status, body["error"]["type"].as_str(), body["error"]["secret"].as_str()),
        (424, Some("missing_secret"), Some("MONGODB_URI"))
    );
    // Port 9 (discard) on the loopback has nothing listening.
    let down = start("mongodb://127.0.0.1:9/");
    let body = json!({"endpoint": "/app/people/find", "method": "POST", "data": {}, "timeout_ms": 1500});
    let (status, body) = json(down.client.post(down.url("/mongodb")).json(&body).send().await.unwrap()).await;
    assert_eq!((status, body["error"]["type"].as_str()), (502, Some("upstream_unreachable")), "{body}");
}

#[tokio::test]
async fn a_uri_the_script_does_not_declare_is_refused_before_anything_is_sent() {
    let mock = Mock::start(answer).await;
    let source = format!(
        "const META = #{{ title: \"t\", description: \"d\", secrets: [\"MONGODB_URI\"], base_url: \"{{MONGODB_URI}}\" }};\n\
         fn main(endpoint, method, data) {{ db::mongo(\"mongodb://{},127.0.0.1:1/\").command(\"app\", \"ping\", 1) }}",
        mock.address
    );
    let declared = format!("mongodb://{}/", mock.address);
    let server = Server::start_with(&[("sneaky", source.as_str())], &[], &[("MONGODB_URI", declared.as_str())]);
    let (status, body) = json(server.client.post(server.url("/sneaky")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["type"].as_str(), body["error"]["host"].as_str()),
        (403, Some("forbidden"), Some("127.0.0.1:1")),
        "{body}"
    );
    assert!(mock.commands.lock().unwrap().is_empty(), "the driver connected");
}

/// A real deployment, when `MONGODB_TEST_URL` names one (none installs on this machine kind).
#[tokio::test]
async fn a_real_deployment_inserts_finds_and_deletes() {
    let Ok(uri) = std::env::var("MONGODB_TEST_URL") else {
        eprintln!("SKIPPED: MONGODB_TEST_URL is not set");
        return;
    };
    let server = start(&uri);
    let collection = format!("/switchboard_test/catalog_{}", std::process::id());
    let documents = json!([{"name": "Ada", "born": 1815}, {"name": "Grace", "born": 1906}]);
    assert_eq!(call(&server, &format!("{collection}/insert"), documents).await.1["n"], 2);
    let (status, found) =
        call(&server, &format!("{collection}/find"), json!({"filter": {"born": {"$lt": 1900}}})).await;
    assert_eq!((status, found.as_array().map(Vec::len), found[0]["name"].as_str()), (200, Some(1), Some("Ada")));
    assert_eq!(call(&server, &format!("{collection}/count"), json!({})).await, (200, json!(2)));
    assert_eq!(call(&server, &format!("{collection}/delete"), json!({"filter": {}})).await.1["n"], 2);
    let drop = json!({"name": "drop", "value": collection.rsplit('/').next().unwrap()});
    assert_eq!(call(&server, "/switchboard_test/command", drop).await.0, 200);
}

#[tokio::test]
async fn the_read_only_image_runs_only_reading_commands() {
    let mock = Mock::start(answer).await;
    let uri = format!("mongodb://{}/", mock.address);
    // The image's MONGODB_READ_ONLY wins over the environment's.
    let env = [("MONGODB_URI", uri.as_str()), ("MONGODB_READ_ONLY", "false")];
    let server = Server::start_default(&["--boot", &format!("{ROOT}/boot/readonly.boot.json")], &env);
    let merge = json!({"pipeline": [{"$match": {}}, {"$merge": {"into": "copy"}}]});
    let writes = [
        ("/app/people/insert", json!({"name": "Eve"})),
        ("/app/people/update", json!({"filter": {}, "update": {"$set": {"x": 1}}})),
        ("/app/people/delete", json!({"filter": {}})),
        ("/app/people/aggregate", merge.clone()),
        ("/app/command", json!({"name": "aggregate", "value": "people", "fields": merge})),
        ("/app/command", json!({"name": "dropDatabase"})),
    ];
    for (endpoint, data) in writes {
        let (status, body) = call(&server, endpoint, data).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(status == 500 && message.contains("read-only"), "{endpoint}: {status} {body}");
    }
    assert!(mock.received().is_empty(), "a write reached the deployment: {:?}", mock.received());
    let (status, _) = call(&server, "/app/people/find", json!({"filter": {}})).await;
    assert_eq!(status, 200);
    let pipeline = json!({"pipeline": [{"$match": {"name": "Ada"}}]});
    assert_eq!(call(&server, "/app/people/aggregate", pipeline).await.0, 200);
    let names: Vec<String> = mock.received().iter().map(|c| name(c).to_owned()).collect();
    assert_eq!(names, ["find", "aggregate"]);
}
