//! Boot images: deterministic packing, export and import (CLI and API), diff and verify, refusal of
//! every kind of bad image with nothing changed, and imports killed at random moments.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{BIN, Server, boot_dir, json, script};

fn run(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env("SWITCHBOARD_DATA", data);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("switchboard runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The boot CID of the data directory's state, as `switchboard servers` reports it.
fn state_of(data: &Path) -> String {
    state_with(data, &[])
}

/// The boot CID of the state `switchboard servers` reports with `env`.
fn state_with(data: &Path, env: &[(&str, &str)]) -> String {
    let output = run(data, &["servers"], env);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output).lines().next().unwrap().trim_start_matches("boot CID ").to_owned()
}

fn source(dir: &Path, servers: &[(&str, &str)]) -> PathBuf {
    boot_dir(dir, servers)
}

fn pack(dir: &Path, source: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let output =
        run(&dir.join("unused"), &["boot", "pack", source.to_str().unwrap(), "-o", out.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    out
}

#[test]
fn packing_is_deterministic_and_the_boot_cid_is_the_file_cid() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (script("A", "1"), script("B", "2"));
    let first = source(&dir.path().join("one"), &[("alpha", &a), ("beta", &b)]);
    let second = source(&dir.path().join("two"), &[("beta", &b), ("alpha", &a)]);
    let (x, y) = (pack(dir.path(), &first, "x.image"), pack(dir.path(), &second, "y.image"));
    assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
    let verified = run(dir.path(), &["boot", "verify", x.to_str().unwrap()], &[]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let cid =
        stdout(&run(dir.path(), &["cid", x.to_str().unwrap()], &[])).split_whitespace().next().unwrap().to_owned();
    assert_eq!(stdout(&verified).trim(), format!("ok: 2 servers, boot CID {cid}"));
}

#[test]
fn the_image_tools_leave_the_working_directory_as_they_found_it() {
    let (dir, cwd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let image = pack(dir.path(), &source(&dir.path().join("src"), &[("alpha", &script("A", "1"))]), "a.image");
    for args in [
        vec!["boot", "verify", image.to_str().unwrap()],
        vec!["boot", "diff", image.to_str().unwrap(), image.to_str().unwrap()],
    ] {
        let output = Command::new(BIN).args(&args).current_dir(cwd.path()).output().expect("switchboard runs");
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the image tools left {left:?} behind");
}

#[test]
fn the_image_tools_accept_exactly_what_serve_accepts() {
    // A top level that uses a native helper loads in `serve`, so the image tools accept it too; one
    // that reaches the network is refused by both.
    let dir = tempfile::tempdir().unwrap();
    let helper = r#"const META = #{ title: "H", description: "d" };
const GREETING = base64::encode("hi");
fn main(endpoint, method, data) { global::GREETING }"#;
    let network = r#"const META = #{ title: "N", description: "d" };
const ANSWER = http::get("http://127.0.0.1:9/");
fn main(endpoint, method, data) { 1 }"#;
    let good = source(&dir.path().join("good"), &[("helper", helper)]);
    let image = pack(dir.path(), &good, "good.image");
    let verified = run(dir.path(), &["boot", "verify", image.to_str().unwrap()], &[]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let bad = source(&dir.path().join("bad"), &[("network", network)]);
    let refused = run(dir.path(), &["boot", "verify", bad.to_str().unwrap()], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("top-level code"), "{}", stderr(&refused));
}

#[test]
fn export_then_import_reproduces_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let image = dir.path().join("state.image");
    assert!(run(&one, &["boot", "export", "-o", image.to_str().unwrap()], &[]).status.success());
    let imported = run(&two, &["boot", "import", image.to_str().unwrap()], &[]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(state_of(&one), state_of(&two));
    let cid =
        stdout(&run(dir.path(), &["cid", image.to_str().unwrap()], &[])).split_whitespace().next().unwrap().to_owned();
    assert_eq!(state_of(&one), cid);
}

#[test]
fn secret_values_travel_only_sealed_and_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two, three) = (dir.path().join("one"), dir.path().join("two"), dir.path().join("three"));
    let mut set = Command::new(BIN)
        .args(["secret", "set", "TRAVELLING"])
        .env("SWITCHBOARD_DATA", &one)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(set.stdin.as_mut().unwrap(), b"very-secret-value").unwrap();
    assert!(set.wait().unwrap().success());
    let plain = dir.path().join("plain.image");
    let sealed = dir.path().join("sealed.image");
    let pass = [("SWITCHBOARD_IMAGE_PASSPHRASE", "correct horse battery")];
    assert!(run(&one, &["boot", "export", "-o", plain.to_str().unwrap()], &[]).status.success());
    assert!(
        !run(&one, &["boot", "export", "--with-secrets", "-o", sealed.to_str().unwrap()], &[]).status.success(),
        "exported secrets without a passphrase"
    );
    assert!(run(&one, &["boot", "export", "--with-secrets", "-o", sealed.to_str().unwrap()], &pass).status.success());
    for file in [&plain, &sealed] {
        assert!(!String::from_utf8_lossy(&std::fs::read(file).unwrap()).contains("very-secret-value"));
    }
    // The plain image names the secret; the sealed one carries its value for whoever has the passphrase.
    assert!(String::from_utf8_lossy(&std::fs::read(&plain).unwrap()).contains("TRAVELLING"));
    assert!(run(&two, &["boot", "import", sealed.to_str().unwrap()], &pass).status.success());
    let file = dir.path().join("show.rhai");
    std::fs::write(
        &file,
        r#"const META = #{ title: "S", description: "d", secrets: ["TRAVELLING"] };
fn main(endpoint, method, data) { secret::require("TRAVELLING") }"#,
    )
    .unwrap();
    assert_eq!(stdout(&run(&two, &["call", file.to_str().unwrap()], &[])), "very-secret-value\n");
    let wrong =
        run(&three, &["boot", "import", sealed.to_str().unwrap()], &[("SWITCHBOARD_IMAGE_PASSPHRASE", "wrong")]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("wrong passphrase"), "{}", stderr(&wrong));
}

/// An image exported with secrets, imported without its passphrase: refused with nothing changed, unless
/// the importer says `--without-secrets`; `verify` says what the image carries.
#[test]
fn an_image_carrying_secrets_is_refused_without_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    assert!(common::cli(&one, &["secret", "set", "TRAVELLING"], "very-secret-value").status.success());
    let sealed = dir.path().join("sealed.image");
    let pass = [("SWITCHBOARD_IMAGE_PASSPHRASE", "correct horse battery")];
    assert!(run(&one, &["boot", "export", "--with-secrets", "-o", sealed.to_str().unwrap()], &pass).status.success());
    let image = sealed.to_str().unwrap();

    let verified = run(dir.path(), &["boot", "verify", image], &[]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stdout(&verified).contains("carries the sealed values of 1 secret(s) (TRAVELLING): not opened"));
    let verified = run(dir.path(), &["boot", "verify", image], &pass);
    assert!(stdout(&verified).contains("(TRAVELLING): opened with the passphrase"), "{}", stdout(&verified));

    let before = state_of(&two);
    let refused = run(&two, &["boot", "import", image], &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("sealed values of 1 secret(s) (TRAVELLING)"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--without-secrets"), "{}", stderr(&refused));
    assert!(!stderr(&refused).contains("imported"), "{}", stderr(&refused));
    assert_eq!(state_of(&two), before, "a refused import changed the state");

    let without = run(&two, &["boot", "import", "--without-secrets", image], &[]);
    assert!(without.status.success(), "{}", stderr(&without));
    assert_eq!(stdout(&run(&two, &["secret", "list"], &[])), "");
}

#[tokio::test]
async fn the_api_refuses_an_image_carrying_secrets_without_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    assert!(common::cli(&one, &["secret", "set", "TRAVELLING"], "very-secret-value").status.success());
    let sealed = dir.path().join("sealed.image");
    let pass = [("SWITCHBOARD_IMAGE_PASSPHRASE", "correct horse battery")];
    assert!(run(&one, &["boot", "export", "--with-secrets", "-o", sealed.to_str().unwrap()], &pass).status.success());
    let bytes = std::fs::read(&sealed).unwrap();
    let server = Server::start(&[]);
    let import = |query: &str| {
        let url = server.url(&format!("/api/boot/import{query}"));
        server.client.post(url).bearer_auth(server.admin_token()).body(bytes.clone()).send()
    };
    let (status, body) = json(import("").await.unwrap()).await;
    assert_eq!((status, body["error"]["type"].as_str()), (422, Some("invalid_image")), "{body}");
    assert!(body["error"]["problems"][0].as_str().unwrap().contains("without_secrets=1"), "{body}");
    assert_eq!(json(server.get("/health").await).await.1["servers"], 1, "a refused import changed the state");
    let (status, body) = json(import("?without_secrets=1").await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(json(server.get("/health").await).await.1["servers"].as_u64().unwrap() > 1);
    assert_eq!(json(server.get("/api/secrets").await).await.1["secrets"], serde_json::json!([]));
}

#[test]
fn diff_lists_added_removed_and_rebound_servers_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (a1, a2, b) = (script("A", "1"), script("A", "2"), script("B", "2"));
    let old = source(&dir.path().join("old"), &[("alpha", &a1), ("gone", &b)]);
    let new = source(&dir.path().join("new"), &[("alpha", &a2), ("fresh", &b)]);
    let packed = pack(dir.path(), &new, "new.image");
    let output = run(dir.path(), &["boot", "diff", old.to_str().unwrap(), packed.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let cid = |s: &str| switchboard::cid::Cid::of(s.as_bytes()).to_string();
    assert_eq!(
        stdout(&output),
        format!(
            "~ server alpha {} -> {}\n{asks}+ server fresh {}\n{asks}- server gone {}\n",
            cid(&a1),
            cid(&a2),
            cid(&b),
            cid(&b),
            asks = "    secrets: none; hosts: none\n"
        )
    );
    assert_eq!(
        stdout(&run(dir.path(), &["boot", "diff", old.to_str().unwrap(), old.to_str().unwrap()], &[])),
        "no differences\n"
    );
}

/// Writes `image` after `edit` changes its JSON.
fn edited(dir: &Path, image: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(image).unwrap()).unwrap();
    edit(&mut value);
    let out = dir.join(name);
    std::fs::write(&out, serde_json::to_vec(&value).unwrap()).unwrap();
    out
}

#[test]
fn every_bad_image_is_refused_naming_the_problem_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let before = state_of(&data);
    let good = pack(
        dir.path(),
        &source(&dir.path().join("src"), &[("alpha", &script("A", "1")), ("beta", &script("B", "2"))]),
        "good.image",
    );
    let alpha_cid = switchboard::cid::Cid::of(script("A", "1").as_bytes()).to_string();

    let bytes = std::fs::read(&good).unwrap();
    let mut tampered = bytes.clone();
    let at = String::from_utf8_lossy(&bytes).find("Y29uc3Qg").unwrap() + 10; // inside a base64 blob
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered_path = dir.path().join("tampered.image");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let truncated = dir.path().join("truncated.image");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let missing = edited(dir.path(), &good, "missing.image", |v| {
        v["blobs"].as_object_mut().unwrap().remove(&alpha_cid);
    });
    let broken_script = "fn main(endpoint, method, data) { let = ; }";
    let broken_cid = switchboard::cid::Cid::of(broken_script.as_bytes()).to_string();
    let broken = edited(dir.path(), &good, "broken.image", |v| {
        use base64::Engine as _;
        v["blobs"][&broken_cid] = base64::engine::general_purpose::STANDARD.encode(broken_script).into();
        v["manifest"]["servers"][0]["cid"] = broken_cid.clone().into();
    });
    let duplicate = edited(dir.path(), &good, "duplicate.image", |v| {
        v["manifest"]["servers"][1]["name"] = "alpha".into();
    });
    let invalid = edited(dir.path(), &good, "invalid.image", |v| {
        v["manifest"]["servers"][0]["name"] = "Not Valid".into();
    });
    let cases = [
        (&tampered_path, "does not match its CID"),
        (&truncated, "truncated"),
        (&missing, "which the image does not hold"),
        (&broken, "server 'alpha'"),
        (&duplicate, "listed twice"),
        (&invalid, "is not a valid server name"),
    ];
    for (image, problem) in cases {
        let output = run(&data, &["boot", "import", image.to_str().unwrap()], &[]);
        assert_eq!(output.status.code(), Some(1), "{} was accepted", image.display());
        assert!(stderr(&output).contains(problem), "{}: {}", image.display(), stderr(&output));
        assert_eq!(state_of(&data), before, "{} changed the store", image.display());
        let verify = run(&data, &["boot", "verify", image.to_str().unwrap()], &[]);
        assert_eq!(verify.status.code(), Some(1), "verify accepted {}", image.display());
    }
}

#[tokio::test]
async fn the_api_exports_and_imports_images_behind_the_token() {
    let server = Server::start(&[]);
    let export = server.get("/api/boot/export").await;
    let boot_cid = export.headers()["x-boot-cid"].to_str().unwrap().to_string();
    let image = export.bytes().await.unwrap();
    assert_eq!(boot_cid, switchboard::cid::Cid::of(&image).to_string());
    let (_, health) = json(server.get("/health").await).await;
    assert_eq!(health["boot_cid"], boot_cid.as_str());
    // A secret's name is part of the state: the boot CID follows it.
    let put = server.client.put(server.url("/api/secrets/NEW_KEY")).bearer_auth(server.admin_token()).body("v");
    assert!(put.send().await.unwrap().status().is_success());
    let (_, health) = json(server.get("/health").await).await;
    let exported = server.get("/api/boot/export").await;
    assert_ne!(health["boot_cid"], boot_cid.as_str());
    assert_eq!(health["boot_cid"], exported.headers()["x-boot-cid"].to_str().unwrap());
    let remove = server.client.delete(server.url("/api/secrets/NEW_KEY")).bearer_auth(server.admin_token());
    assert!(remove.send().await.unwrap().status().is_success());
    let (_, health) = json(server.get("/health").await).await;
    assert_eq!(health["boot_cid"], boot_cid.as_str());

    let other = Server::start(&[("extra", &script("Extra", "1"))]);
    let refused = other.client.post(other.url("/api/boot/import")).body(image.clone()).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let response = other
        .client
        .post(other.url("/api/boot/import"))
        .bearer_auth(other.admin_token())
        .body(image.clone())
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!((status, body["boot_cid"].as_str()), (200, Some(boot_cid.as_str())), "{body}");
    assert_eq!(other.get("/extra/").await.status(), 404);

    let bad = other
        .client
        .post(other.url("/api/boot/import"))
        .bearer_auth(other.admin_token())
        .body(image[..20].to_vec())
        .send()
        .await
        .unwrap();
    let (status, body) = json(bad).await;
    assert_eq!((status, body["error"]["type"].as_str()), (422, Some("invalid_image")), "{body}");
    assert!(body["error"]["problems"][0].as_str().unwrap().contains("truncated"));
}

#[test]
fn an_import_killed_at_any_moment_leaves_the_old_state_or_the_new() {
    imports_killed_at_any_moment(&[]);
}

#[test]
fn an_import_into_postgresql_killed_at_any_moment_leaves_the_old_state_or_the_new() {
    let Some(database) = common::postgres::Database::fresh() else { return };
    imports_killed_at_any_moment(&[("SWITCHBOARD_STORE", &database.url)]);
}

/// Imports into the store `env` names, killed (SIGKILL) all along: each leaves the old state or the new.
fn imports_killed_at_any_moment(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old = state_with(&data, env); // the embedded default image
    let mut servers: Vec<(String, String)> =
        (0..40).map(|n| (format!("s{n}"), script(&format!("S{n}"), &format!("{n}")))).collect();
    servers.push((
        "echo".into(),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap(),
    ));
    let refs: Vec<(&str, &str)> = servers.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    let image = pack(dir.path(), &source(&dir.path().join("src"), &refs), "new.image");
    let back = dir.path().join("old.image");
    assert!(run(&data, &["boot", "export", "-o", back.to_str().unwrap()], env).status.success());

    // How long a whole import takes, so that kills land all along it.
    let started = Instant::now();
    assert!(run(&data, &["boot", "import", image.to_str().unwrap()], env).status.success());
    let span = started.elapsed().as_micros() as u64;
    let new = state_with(&data, env);
    assert_ne!(old, new);

    let mut killed = 0;
    for round in 0..30u64 {
        let (from, target) = if round % 2 == 0 { (&new, &back) } else { (&old, &image) };
        assert_eq!(&state_with(&data, env), from);
        let mut child = Command::new(BIN)
            .args(["boot", "import", target.to_str().unwrap()])
            .env("SWITCHBOARD_DATA", &data)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(span * ((round * 7919) % 100) / 100));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        let after = state_with(&data, env);
        assert!(after == old || after == new, "round {round}: the store holds a mix ({after})");
        // Finish the round's import, so the next round starts from a known state.
        if &after == from {
            assert!(run(&data, &["boot", "import", target.to_str().unwrap()], env).status.success());
        }
    }
    assert!(killed >= 10, "only {killed} imports were killed mid-way");
    let verify = run(&data, &["boot", "export", "-o", dir.path().join("final.image").to_str().unwrap()], env);
    assert!(verify.status.success(), "the store does not export cleanly: {}", stderr(&verify));
}

/// The boot CID of the state a command line's store holds.
fn state_at(data: &Path, store: &[&str]) -> String {
    let output = run(data, &[&["servers"], store].concat(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output).lines().next().unwrap().trim_start_matches("boot CID ").to_owned()
}

#[test]
fn an_image_moves_from_sqlite_to_postgresql_and_back_with_the_same_boot_cid() {
    let Some(database) = common::postgres::Database::fresh() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, keys, back) = (dir.path().join("sqlite"), dir.path().join("keys"), dir.path().join("back"));
    let boot_cid = state_of(&sqlite);
    let image = dir.path().join("state.image");
    let exported = run(&sqlite, &["boot", "export", "-o", image.to_str().unwrap()], &[]);
    assert!(exported.status.success(), "{}", stderr(&exported));

    let postgres = ["--store", database.url.as_str()];
    let imported = run(&keys, &[&["boot", "import", image.to_str().unwrap()], &postgres[..]].concat(), &[]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(state_at(&keys, &postgres), boot_cid);

    let again = dir.path().join("again.image");
    let exported = run(&keys, &[&["boot", "export", "-o", again.to_str().unwrap()], &postgres[..]].concat(), &[]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&image).unwrap());
    let imported = run(&back, &["boot", "import", again.to_str().unwrap()], &[]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(state_of(&back), boot_cid);
}

#[test]
fn store_copy_moves_an_installation_with_its_secrets_to_postgresql() {
    let Some(database) = common::postgres::Database::fresh() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let set = common::cli(&data, &["secret", "set", "MOVED_KEY"], "moved-value\n");
    assert!(set.status.success(), "{set:?}");
    let boot_cid = state_of(&data);
    let called = run(&data, &["call", "echo", "/before-the-move"], &[]);
    assert!(called.status.success(), "{}", stderr(&called));
    let from = format!("sqlite:{}", data.join("store.sqlite").display());
    let copied = run(&data, &["store", "copy", "--from", &from, "--to", &database.url], &[]);
    assert!(copied.status.success(), "{}", stderr(&copied));
    assert!(stderr(&copied).contains("1 secrets"), "{}", stderr(&copied));
    assert!(stderr(&copied).contains(", 1 invocation records"), "{}", stderr(&copied));
    let all = switchboard::store::RecordFilter { limit: 10, ..Default::default() };
    let records = |store: &dyn switchboard::store::Store| store.records(&all).unwrap();
    let source = switchboard::store::SqliteStore::open(&data.join("store.sqlite")).unwrap();
    let target = switchboard::store::PostgresStore::open(&database.url).unwrap();
    assert_eq!(records(&target), records(&source), "the call's record moved with the installation");
    assert_eq!(records(&target)[0].server.as_deref(), Some("echo"));

    // The same data directory (its master key) on the copy: the same state, the secret opens.
    let postgres = ["--store", database.url.as_str()];
    assert_eq!(state_at(&data, &postgres), boot_cid);
    let listed = run(&data, &[&["secret", "list"], &postgres[..]].concat(), &[]);
    assert_eq!(stdout(&listed), "MOVED_KEY\n");
    let file = dir.path().join("show.rhai");
    let shows = r#"const META = #{ title: "S", description: "d", secrets: ["MOVED_KEY"] };
fn main(endpoint, method, data) { secret::require("MOVED_KEY") }"#;
    std::fs::write(&file, shows).unwrap();
    let shown = run(&data, &["call", file.to_str().unwrap(), "--store-url", &database.url], &[]);
    assert_eq!(stdout(&shown), "moved-value\n", "{}", stderr(&shown));
    // Another master key is refused, saying why.
    let stranger = run(&dir.path().join("stranger"), &[&["servers"], &postgres[..]].concat(), &[]);
    assert!(!stranger.status.success());
    assert!(stderr(&stranger).contains("master key does not open the store's secrets"), "{}", stderr(&stranger));
    // A copy into a store that is not empty is refused.
    let again = run(&data, &["store", "copy", "--from", &from, "--to", &database.url], &[]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already holds servers"), "{}", stderr(&again));
}

/// The README's Boot images section as written: its source file, then its `switchboard` lines run by
/// a shell in a fresh directory (the curl lines are the API's, tested above).
#[test]
fn the_readme_boot_image_commands_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Boot images\n").nth(1).unwrap().split("\n## ").next().unwrap();
    let block = |fence: &str| section.split(fence).nth(1).unwrap().split("```").next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("boot")).unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("boot/stripe.boot.json"), block("```json\n")).unwrap();
    let stripe = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stripe.rhai")).unwrap();
    std::fs::write(dir.path().join("scripts/stripe.rhai"), stripe).unwrap();
    let shell = block("```sh\n");
    let commands: Vec<&str> = shell.lines().filter(|l| l.starts_with("switchboard ")).collect();
    assert_eq!(commands.len(), 5, "the section's commands changed");
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let data = dir.path().join("data");
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &commands.join("\n")])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("SWITCHBOARD_DATA", &data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("- server echo"), "diff: {}", stdout(&output));
    assert!(stdout(&output).contains("ok: 1 servers, boot CID bafkr4i"), "verify: {}", stdout(&output));
    let listed = stdout(&run(&data, &["servers"], &[]));
    let names: Vec<&str> = listed.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, ["stripe"], "{listed}");
}
