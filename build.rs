//! Embeds the default boot image: the source file and every script it names, so that the binary serves
//! the full default image on a machine with no files. The runtime parses the embedded source with the
//! same code it uses for a source file on disk.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let boot = Path::new(&manifest_dir).join("boot/default.boot.json");
    println!("cargo:rerun-if-changed={}", boot.display());
    println!("cargo:rerun-if-changed={manifest_dir}/scripts");

    let text = std::fs::read_to_string(&boot).expect("boot/default.boot.json is readable");
    let source: serde_json::Value = serde_json::from_str(&text).expect("boot/default.boot.json is JSON");
    let servers = source["servers"].as_array().expect("boot/default.boot.json lists servers");

    let mut generated = String::new();
    writeln!(generated, "pub static SOURCE: &str = include_str!({:?});", boot.display().to_string()).unwrap();
    generated.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for server in servers {
        let relative = server["script"].as_str().expect("every server names its script");
        let path = boot.parent().unwrap().join(relative);
        let path = path.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(generated, "    ({relative:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    generated.push_str("];\n");

    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_boot.rs");
    std::fs::write(out, generated).expect("OUT_DIR is writable");
}
