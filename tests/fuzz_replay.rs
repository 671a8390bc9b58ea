//! The fuzz targets' properties on stable Rust, in every `cargo test`: the checked-in corpus under
//! `fuzz/corpus/` is replayed, and proptest generates more cases. `cargo +nightly fuzz run dispatch`
//! (or `image`) explores further where a nightly toolchain exists; see `fuzz/README.md`.

#[path = "harness/dispatch.rs"]
mod dispatch;
#[path = "harness/envelope.rs"]
mod envelope;
#[path = "harness/image.rs"]
mod image;
#[path = "harness/multipart.rs"]
mod multipart;
#[path = "harness/serving.rs"]
mod serving;

use proptest::collection::vec;
use proptest::prelude::*;
use switchboard::boot::{Image, ImageServer, pack};

/// Every file of a corpus directory.
fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|path| (path.display().to_string(), std::fs::read(&path).unwrap())).collect()
}

/// Runs every input of the corpus `name` (at least `least` of them) through `run`.
fn replay(name: &str, least: usize, run: impl Fn(&[u8])) {
    let inputs = corpus(name);
    assert!(inputs.len() >= least, "the corpus is missing");
    for (file, input) in inputs {
        eprintln!("{file}");
        run(&input);
    }
}

#[test]
fn the_dispatch_corpus_gets_answers_and_json_errors() {
    let dispatcher = dispatch::Dispatcher::new();
    replay("dispatch", 10, |input| dispatcher.run(input));
}

#[test]
fn the_image_corpus_round_trips() {
    replay("image", 3, image::run);
}

#[test]
fn the_envelope_corpus_is_framed_by_the_runtime() {
    let wire = envelope::Wire::new();
    replay("envelope", 8, |input| wire.run(input));
}

#[test]
fn the_multipart_corpus_keeps_every_part_in_its_place() {
    let inputs = corpus("multipart");
    assert!(inputs.len() >= 4, "the corpus is missing");
    for (name, input) in inputs {
        eprintln!("{name}");
        multipart::run(&input);
    }
}

thread_local! {
    static DISPATCHER: dispatch::Dispatcher = dispatch::Dispatcher::new();
    static WIRE: envelope::Wire = envelope::Wire::new();
}

/// One request in the harness's line form.
fn encode(method: &str, target: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut input = format!("{method}\n{target}\n").into_bytes();
    for (name, value) in headers {
        input.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    input.push(b'\n');
    input.extend_from_slice(body);
    input
}

fn script(title: &str, body: &str) -> Vec<u8> {
    format!("const META = #{{ title: {title:?}, description: \"d\" }};\nfn main(endpoint, method, data) {{ {body} }}\n")
        .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_requests_get_answers_and_json_errors(
        method in prop_oneof!["GET", "POST", "PUT", "DELETE", "[a-zA-Z]{1,40}"],
        target in prop_oneof![
            "/echo(/[a-zA-Z0-9%._~-]{0,12}){0,4}(\\?[a-z=&%0-9]{0,30})?",
            "/(api|cid|health|echo|x)(/[ -~&&[^ #?]]{0,20}){0,3}",
            "/[^ ]{0,40}",
        ],
        headers in vec(("content-type|x-input-cid|x-store-output|x-timeout-ms|accept|[a-z-]{1,12}",
                        "application/json|text/html|1|0|[ -~]{0,30}"), 0..5),
        body in prop_oneof![
            vec(any::<u8>(), 0..256),
            "\\{\"endpoint\":\"[ -~]{0,20}\",\"method\":\"[a-zA-Z]{0,25}\",\"data\":[0-9e.+-]{1,25}\\}".prop_map(String::into_bytes),
        ],
    ) {
        DISPATCHER.with(|dispatcher| dispatcher.run(&encode(&method, &target, &headers, &body)));
    }

}

/// A header name a script might return: a framing one in any case, or another.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(&envelope::FRAMING[..]).prop_map(str::to_owned),
        proptest::sample::select(&envelope::FRAMING[..]).prop_map(|n| n.to_ascii_uppercase()),
        "x-[a-z]{1,10}",
        "[a-zA-Z-]{1,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_envelopes_are_framed_by_the_runtime(
        status in prop_oneof![100i64..600, Just(101), Just(204), Just(304), any::<i64>()],
        headers in proptest::collection::btree_map(header_name(), "[ -~]{0,20}", 0..4),
        output in prop_oneof![
            "[ -~\r\n]{0,200}".prop_map(serde_json::Value::from),
            Just(serde_json::json!({ "a": [1, 2] })),
            Just(serde_json::Value::Null),
        ],
        content_type in proptest::option::of("text/html|application/json|[ -~]{0,20}"),
    ) {
        let mut envelope = serde_json::json!({ "output": output, "status": status, "headers": headers });
        if let Some(content_type) = content_type {
            envelope["content_type"] = content_type.into();
        }
        let input = serde_json::to_vec(&envelope).unwrap();
        WIRE.with(|wire| wire.run(&input));
    }
}

proptest! {
    // Each case opens two runtimes on fresh stores: fewer cases, so that `cargo test` stays quick.
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn generated_images_round_trip(
        servers in vec(("[a-z][a-z0-9_]{0,8}", "[ -~\u{e9}\u{4e2d}]{0,20}", "[0-9]{1,5}|\"[a-z]{0,8}\"|#\\{\\}|\\[\\]", any::<bool>()), 0..4),
        variables in proptest::collection::btree_map("[A-Z_]{1,8}", "[ -~]{0,16}", 0..3),
        secrets in vec("[A-Z][A-Z_]{0,8}", 0..3),
    ) {
        let mut image = Image { variables, secrets, ..Image::default() };
        for (name, title, body, enabled) in servers {
            if image.servers.iter().all(|s| s.name != name) {
                image.servers.push(ImageServer { name, script: script(&title, &body), enabled });
            }
        }
        if let Ok(bytes) = pack(&image, None) {
            image::run(&bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn generated_multipart_parts_stay_in_their_place(
        parts in vec((
            "[ -~\r\n\t\u{e9}\u{85}]{0,12}",
            "|[ -~\r\n\t\u{0}-\u{1f}\u{7f}\u{e9}\u{85}]{1,16}",
            "|text/plain|application/octet-stream|[ -~\r\n]{1,12}",
            vec(any::<u8>(), 0..64),
        ), 0..5),
    ) {
        let mut input = Vec::new();
        for (name, filename, content_type, data) in parts {
            for field in [name.as_bytes(), filename.as_bytes(), content_type.as_bytes()] {
                input.extend(field.iter().filter(|&&b| b != 0 && b != 1));
                input.push(0);
            }
            input.extend(data.iter().filter(|&&b| b != 1));
            input.extend_from_slice(b"\n\x01");
        }
        multipart::run(&input);
    }
}
