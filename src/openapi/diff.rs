//! What a re-import changes: operations added, removed and changed, and the other `META` fields that
//! differ, compared on the declarations as the runtime reads them (so formatting never counts).

use serde::Serialize;
use serde_json::Value;

use crate::meta::Meta;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Difference {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Other `META` fields whose values differ (`base_url`, `auth`, …).
    pub meta: Vec<String>,
}

impl Difference {
    pub fn is_empty(&self) -> bool {
        *self == Difference::default()
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no change");
        }
        for (sign, names) in [("+", &self.added), ("-", &self.removed), ("~", &self.changed)] {
            for name in names {
                writeln!(f, "{sign} {name}")?;
            }
        }
        for key in &self.meta {
            writeln!(f, "~ META.{key}")?;
        }
        Ok(())
    }
}

/// How `new` differs from `old`.
pub fn diff(old: &Meta, new: &Meta) -> Difference {
    let find = |meta: &Meta, name: &str| meta.operations.iter().find(|op| op.name == name).cloned();
    let mut difference = Difference::default();
    for op in &new.operations {
        match find(old, &op.name) {
            None => difference.added.push(op.name.clone()),
            Some(before) if before != *op => difference.changed.push(op.name.clone()),
            Some(_) => {}
        }
    }
    difference.removed =
        old.operations.iter().filter(|op| find(new, &op.name).is_none()).map(|op| op.name.clone()).collect();
    let empty = serde_json::Map::new();
    let (before, after) = (old.json.as_object().unwrap_or(&empty), new.json.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).filter(|k| *k != "operations").collect();
    keys.sort();
    keys.dedup();
    difference.meta = keys
        .into_iter()
        .filter(|key| before.get(*key).unwrap_or(&Value::Null) != after.get(*key).unwrap_or(&Value::Null))
        .cloned()
        .collect();
    difference
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(base_url: &str, operations: Value) -> Meta {
        Meta::from_json(json!({ "title": "t", "description": "d", "base_url": base_url, "operations": operations }))
            .unwrap()
    }

    #[test]
    fn added_removed_and_changed_operations_are_named() {
        let old = meta(
            "https://a",
            json!({
                "keep": { "description": "d", "endpoint": "/k" },
                "gone": { "description": "d", "endpoint": "/g" },
                "moved": { "description": "d", "endpoint": "/m" },
            }),
        );
        let new = meta(
            "https://b",
            json!({
                "keep": { "description": "d", "endpoint": "/k" },
                "moved": { "description": "d", "endpoint": "/m2" },
                "fresh": { "description": "d", "endpoint": "/f" },
            }),
        );
        let difference = diff(&old, &new);
        assert_eq!(difference.added, ["fresh"]);
        assert_eq!(difference.removed, ["gone"]);
        assert_eq!(difference.changed, ["moved"]);
        assert_eq!(difference.meta, ["base_url"]);
        assert_eq!(difference.to_string(), "+ fresh\n- gone\n~ moved\n~ META.base_url\n");
        assert!(diff(&new, &new).is_empty());
    }
}
