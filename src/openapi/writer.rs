//! The script an import writes: a comment saying where it came from, `META`, and the generic `main`.
//!
//! `META` is written as a Rhai object-map literal from its JSON form: every string quoted and escaped,
//! `null` as `()`, numbers as Rhai reads them. Each operation stands on its own line, so a re-import's
//! change shows as a change of that line. The script is ordinary: edit it, and it is served, versioned
//! and reloaded like any other.

use std::fmt::Write;

use serde_json::{Map, Value};

/// The whole script.
/// `meta`'s own keys are the declaration layer's words (`title`, `base_url`, …), written bare.
pub fn script(header: &[String], meta: &Map<String, Value>) -> String {
    let mut out = String::new();
    for line in header {
        for line in line.lines() {
            let _ = writeln!(out, "// {line}");
        }
    }
    out.push_str("const META = #{\n");
    for (key, value) in meta {
        match (key.as_str(), value) {
            ("operations", Value::Object(operations)) => {
                out.push_str("    operations: #{\n");
                for (name, operation) in operations {
                    let _ = write!(out, "        {}: ", quoted(name));
                    literal(&mut out, operation);
                    out.push_str(",\n");
                }
                out.push_str("    },\n");
            }
            _ => {
                let _ = write!(out, "    {key}: ");
                literal(&mut out, value);
                out.push_str(",\n");
            }
        }
    }
    out.push_str("};\n\nfn main(endpoint, method, data) {\n    api::call(global::META, endpoint, method, data)\n}\n");
    out
}

/// A JSON value as a Rhai literal.
fn literal(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("()"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(out, n),
        Value::String(s) => out.push_str(&quoted(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                literal(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("#{");
            for (i, (key, item)) in map.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                out.push_str(&quoted(key));
                out.push_str(": ");
                literal(out, item);
            }
            out.push_str(if map.is_empty() { "}" } else { " }" });
        }
    }
}

/// Integers that fit Rhai's `i64` as they are; anything else as a float Rhai reads back.
fn number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
        return;
    }
    let f = n.as_f64().unwrap_or_default();
    let text = format!("{f:e}");
    // Rhai reads `1.5e3` but not `1e3`: give the mantissa a fraction.
    match text.split_once('e') {
        Some((mantissa, exponent)) if !mantissa.contains('.') => {
            let _ = write!(out, "{mantissa}.0e{exponent}");
        }
        _ => out.push_str(&text),
    }
}

/// A Rhai string literal: `"…"` with quotes, backslashes and control characters escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_reads_back_the_same_from_rhai() {
        let value = json!({ "s": "a \"q\" \\ \n\t\u{7} ✓ ${x} `b`", "n": null, "b": true, "i": -12, "big": 18446744073709551615u64,
                            "f": 1.5, "e": 1e300, "tiny": 2.5e-8, "a": [1, [], {}], "key with spaces": {} });
        let mut text = String::new();
        literal(&mut text, &value);
        let engine = rhai::Engine::new();
        let back: rhai::Dynamic = engine.eval(&text).unwrap();
        let back: Value = rhai::serde::from_dynamic(&back).unwrap();
        assert_eq!(back["s"], value["s"]);
        assert_eq!(back["n"], Value::Null);
        assert_eq!((back["i"].as_i64(), back["f"].as_f64(), back["e"].as_f64()), (Some(-12), Some(1.5), Some(1e300)));
        assert_eq!(back["tiny"].as_f64(), Some(2.5e-8));
        assert_eq!(back["big"].as_f64(), Some(18446744073709551615.0));
        assert_eq!(back["a"], json!([1, [], {}]));
        assert!(back.get("key with spaces").is_some());
    }
}
