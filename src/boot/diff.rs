//! What changes between two images: servers added, removed, rebound (with CIDs) or switched on or off,
//! variables and secret names changed. Each added or rebound server is followed by what it asks for
//! (its secrets and hosts), so an operator sees what an image would be allowed to read and reach.

use std::collections::{BTreeMap, BTreeSet};

use super::Image;
use crate::cid::Cid;

/// The differences from `a` to `b`, one line each (empty when they hold the same state). `asks` says
/// what a server's script asks for (see [`crate::server::asks_line`]).
pub fn diff(a: &Image, b: &Image, asks: impl Fn(&str, &[u8]) -> Option<String>) -> Vec<String> {
    let scripts: BTreeMap<&str, &[u8]> = b.servers.iter().map(|s| (s.name.as_str(), s.script.as_slice())).collect();
    let asked = |name: &str| scripts.get(name).and_then(|script| asks(name, script)).map(|line| format!("    {line}"));
    let servers = |image: &Image| -> BTreeMap<String, (Cid, bool)> {
        image.servers.iter().map(|s| (s.name.clone(), (Cid::of(&s.script), s.enabled))).collect()
    };
    let (before, after) = (servers(a), servers(b));
    let mut lines = Vec::new();
    for (name, (cid, enabled)) in &after {
        match before.get(name) {
            None => {
                lines.push(format!("+ server {name} {cid}{}", if *enabled { "" } else { " (disabled)" }));
                lines.extend(asked(name));
            }
            Some((old, was_enabled)) => {
                if old != cid {
                    lines.push(format!("~ server {name} {old} -> {cid}"));
                    lines.extend(asked(name));
                }
                if was_enabled != enabled {
                    lines.push(format!("~ server {name} {}", if *enabled { "enabled" } else { "disabled" }));
                }
            }
        }
    }
    for (name, (cid, _)) in &before {
        if !after.contains_key(name) {
            lines.push(format!("- server {name} {cid}"));
        }
    }
    for (name, value) in &b.variables {
        match a.variables.get(name) {
            None => lines.push(format!("+ variable {name} = {value}")),
            Some(old) if old != value => lines.push(format!("~ variable {name} = {old} -> {value}")),
            Some(_) => {}
        }
    }
    for name in a.variables.keys().filter(|n| !b.variables.contains_key(*n)) {
        lines.push(format!("- variable {name}"));
    }
    let (old, new): (BTreeSet<_>, BTreeSet<_>) = (a.secrets.iter().collect(), b.secrets.iter().collect());
    lines.extend(new.difference(&old).map(|name| format!("+ secret {name}")));
    lines.extend(old.difference(&new).map(|name| format!("- secret {name}")));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::ImageServer;

    fn server(name: &str, script: &str, enabled: bool) -> ImageServer {
        ImageServer { name: name.into(), script: script.as_bytes().to_vec(), enabled }
    }

    #[test]
    fn every_kind_of_change_is_listed() {
        let a = Image {
            servers: vec![server("kept", "1", true), server("moved", "1", true), server("gone", "1", true)],
            variables: BTreeMap::from([("V".into(), "1".into()), ("OLD".into(), "x".into())]),
            secrets: vec!["S1".into()],
            ..Image::default()
        };
        let b = Image {
            servers: vec![server("kept", "1", false), server("moved", "2", true), server("new", "3", true)],
            variables: BTreeMap::from([("V".into(), "2".into())]),
            secrets: vec!["S2".into()],
            ..Image::default()
        };
        let asks = |name: &str, script: &[u8]| (script == b"3").then(|| format!("{name} asks"));
        let lines = diff(&a, &b, asks);
        let (one, two, three) = (Cid::of(b"1"), Cid::of(b"2"), Cid::of(b"3"));
        assert_eq!(
            lines,
            vec![
                "~ server kept disabled".to_string(),
                format!("~ server moved {one} -> {two}"),
                format!("+ server new {three}"),
                "    new asks".into(),
                format!("- server gone {one}"),
                "~ variable V = 1 -> 2".into(),
                "- variable OLD".into(),
                "+ secret S2".into(),
                "- secret S1".into(),
            ]
        );
        assert!(diff(&a, &a, asks).is_empty());
    }
}
