//! The command line as users run it: output on stdout, errors on stderr, the documented exit codes.

mod common;

use std::process::{Command, Output};

use common::{BIN, script};

fn switchboard(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("SWITCHBOARD_DATA", data).output().expect("switchboard runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn call_runs_a_server_by_name_and_prints_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let output = switchboard(dir.path(), &["call", "echo", "/hello?x=1", "-X", "post", "-d", r#"{"a":1}"#]);
    assert!(output.status.success(), "{output:?}");
    let body: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(body, serde_json::json!({"endpoint": "/hello?x=1", "method": "POST", "data": {"a": 1}}));
}

#[test]
fn call_runs_a_file_without_registering_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("try.rhai");
    std::fs::write(&file, script("Try", r#"    `tried ${endpoint} with ${data}`"#)).unwrap();
    let output = switchboard(&dir.path().join("data"), &["call", file.to_str().unwrap(), "/x", "-d", "words"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "tried /x with words\n");
    let listed = switchboard(&dir.path().join("data"), &["servers"]);
    assert!(!stdout(&listed).contains("try"), "the file was registered");
}

/// The README's quickest try: a file with only `fn main`, no metadata. It reads no secret and reaches
/// no host, and says so.
#[test]
fn call_runs_a_file_without_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n### Ad-hoc scripts\n").nth(1).expect("the README has the section");
    let source = section.split("```rhai\n").nth(1).unwrap().split("```").next().unwrap();
    let file = dir.path().join("hello.rhai");
    std::fs::write(&file, source).unwrap();
    let data = dir.path().join("data");
    let output = switchboard(&data, &["call", file.to_str().unwrap(), "/world"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "hello /world\n");

    for (body, says) in
        [(r#"secret::get("HOME_TOKEN")"#, "HOME_TOKEN"), (r#"http::get("http://127.0.0.1:9/").status"#, "forbidden")]
    {
        std::fs::write(&file, format!("fn main(endpoint, method, data) {{ {body} }}\n")).unwrap();
        let output = switchboard(&data, &["call", file.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{body}: {output:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(says), "{body}: {output:?}");
    }
    std::fs::write(&file, "let META = #{ title: \"t\" };\nfn main(endpoint, method, data) { 1 }\n").unwrap();
    let output = switchboard(&data, &["call", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("META must be a constant"), "{output:?}");
}

#[test]
fn call_runs_a_script_by_cid_and_stores_output() {
    let dir = tempfile::tempdir().unwrap();
    let echo = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai");
    let cid = stdout(&switchboard(dir.path(), &["cid", echo]));
    let cid = cid.split_whitespace().next().unwrap();
    let output = switchboard(dir.path(), &["call", cid, "/by-cid", "--store"]);
    assert!(output.status.success(), "{output:?}");
    let printed = stdout(&output);
    let stored = String::from_utf8_lossy(&output.stderr);
    let output_cid = switchboard::cid::Cid::of(printed.trim_end().as_bytes()).to_string();
    assert!(stored.contains(&output_cid), "{stored}");
    let chained = switchboard(dir.path(), &["call", "echo", "/next", "--input", &output_cid]);
    let body: serde_json::Value = serde_json::from_str(&stdout(&chained)).unwrap();
    assert_eq!(body["data"]["endpoint"], "/by-cid");
}

#[test]
fn an_invocation_error_exits_1_with_the_json_error_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let output = switchboard(dir.path(), &["call", "nobody"]);
    assert_eq!(output.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["error"]["type"], "not_found");

    let file = dir.path().join("broken.rhai");
    std::fs::write(&file, "fn main(endpoint, method, data) { let = ; }").unwrap();
    let output = switchboard(dir.path(), &["call", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["error"]["type"], "invalid_script");
    assert_eq!(error["error"]["line"], 1);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(switchboard(dir.path(), &["call"]).status.code(), Some(2));
    assert_eq!(switchboard(dir.path(), &["frobnicate"]).status.code(), Some(2));
    assert_eq!(switchboard(dir.path(), &["call", "/no/such/file.rhai"]).status.code(), Some(2));
    assert_eq!(switchboard(dir.path(), &["call", "echo", "--input", "not-a-cid"]).status.code(), Some(2));
    assert_eq!(switchboard(dir.path(), &["cid", "/no/such/file"]).status.code(), Some(2));
}

#[test]
fn cid_prints_the_reference_cid_of_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let hello = dir.path().join("hello.txt");
    std::fs::write(&hello, "hello").unwrap();
    let output = switchboard(dir.path(), &["cid", hello.to_str().unwrap()]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output),
        format!("bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4  {}\n", hello.display())
    );
}

#[test]
fn servers_lists_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let output = switchboard(dir.path(), &["servers"]);
    assert!(output.status.success());
    let listing = stdout(&output);
    let mut lines = listing.lines();
    assert!(lines.next().unwrap().starts_with("boot CID bafkr4i"), "{listing}");
    assert!(lines.next().unwrap().starts_with("NAME"));
    assert!(listing.lines().any(|l| l.starts_with("echo") && l.contains("enabled") && l.contains("Echo")), "{listing}");
}

#[test]
fn help_explains_every_command() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    let help = stdout(&output);
    for command in ["serve", "call", "cid", "servers"] {
        assert!(help.contains(command), "{help}");
    }
}

/// `switchboard servers | head -1`: the reader goes away, the command ends quietly with 0. The pipe's
/// read end is closed before the command starts, so every write meets a closed pipe.
#[test]
fn every_command_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let image = dir.path().join("state.image");
    assert!(switchboard(&data, &["boot", "export", "-o", image.to_str().unwrap()]).status.success());
    assert!(common::cli(&data, &["secret", "set", "PIPE_TEST"], "value").status.success());
    let image = image.to_str().unwrap();
    let commands: [&[&str]; 8] = [
        &["servers"],
        &["servers", "--markdown"],
        &["describe", "echo"],
        &["call", "echo", "/x"],
        &["cid", image],
        &["secret", "list"],
        &["boot", "verify", image],
        &["boot", "diff", image, image],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(BIN)
            .args(args)
            .env("SWITCHBOARD_DATA", &data)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn secret_set_and_rm_say_what_they_did_and_refuse_an_empty_value() {
    let dir = tempfile::tempdir().unwrap();
    let set = common::cli(dir.path(), &["secret", "set", "STRIPE_API_KEY"], "sk_test_1\n");
    assert!(set.status.success(), "{set:?}");
    assert_eq!(stdout(&set), "stored secret STRIPE_API_KEY; declared by stripe\n");
    let again = common::cli(dir.path(), &["secret", "set", "STRIPE_API_KEY"], "sk_test_2");
    assert_eq!(stdout(&again), "replaced secret STRIPE_API_KEY; declared by stripe\n");
    let typo = common::cli(dir.path(), &["secret", "set", "STRIPE_APIKEY"], "sk_test_3");
    assert_eq!(stdout(&typo), "stored secret STRIPE_APIKEY; no registered server declares it\n");
    assert!(!String::from_utf8_lossy(&set.stderr).contains("sk_test"), "{set:?}");

    for empty in ["", "\n"] {
        let refused = common::cli(dir.path(), &["secret", "set", "EMPTY_ONE"], empty);
        assert_eq!(refused.status.code(), Some(2), "{refused:?}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--allow-empty"), "{refused:?}");
    }
    let listed = stdout(&switchboard(dir.path(), &["secret", "list"]));
    assert_eq!(listed, "STRIPE_APIKEY\nSTRIPE_API_KEY\n", "an empty value was stored");
    let allowed = common::cli(dir.path(), &["secret", "set", "EMPTY_ONE", "--allow-empty"], "");
    assert_eq!(stdout(&allowed), "stored secret EMPTY_ONE; no registered server declares it\n");

    let removed = switchboard(dir.path(), &["secret", "rm", "STRIPE_APIKEY"]);
    assert_eq!(stdout(&removed), "removed secret STRIPE_APIKEY; no registered server declares it\n");
    let again = switchboard(dir.path(), &["secret", "rm", "STRIPE_APIKEY"]);
    assert_eq!(again.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&again.stderr).unwrap();
    assert_eq!(error["error"]["type"], "not_found");
}

#[test]
fn an_unknown_server_suggests_the_closest_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = switchboard(dir.path(), &["call", "strpe"]);
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["error"]["type"], "not_found");
    assert_eq!(error["error"]["message"], "no server named 'strpe': did you mean 'stripe'?");
    let output = switchboard(dir.path(), &["describe", "githb"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("did you mean 'github'?"), "{output:?}");
    let output = switchboard(dir.path(), &["call", "zzzzzzzz"]);
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["error"]["message"], "no server named 'zzzzzzzz'");
}

/// Zendesk needs three secrets; with none set, the first call names all three and how to set one.
#[test]
fn missing_secret_names_every_missing_secret_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let output = switchboard(dir.path(), &["call", "zendesk", "/tickets.json"]);
    assert_eq!(output.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    let mut secrets: Vec<String> = serde_json::from_value(error["error"]["secrets"].clone()).unwrap();
    secrets.sort();
    assert_eq!(secrets, ["ZENDESK_API_TOKEN", "ZENDESK_EMAIL", "ZENDESK_SUBDOMAIN"], "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("switchboard secret set NAME"), "{message}");

    assert!(common::cli(dir.path(), &["secret", "set", "ZENDESK_SUBDOMAIN"], "acme").status.success());
    let output = switchboard(dir.path(), &["call", "zendesk", "/tickets.json"]);
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    let mut secrets: Vec<String> = serde_json::from_value(error["error"]["secrets"].clone()).unwrap();
    secrets.sort();
    assert_eq!(secrets, ["ZENDESK_API_TOKEN", "ZENDESK_EMAIL"], "{error}");
}
