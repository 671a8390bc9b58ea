//! `xml::parse`: XML documents as maps, for the APIs that answer in XML (S3, Azure Storage).
//!
//! ```rhai
//! let listing = xml::parse(text, ["Contents", "CommonPrefixes"]);
//! listing.ListBucketResult.Contents[0].Key
//! ```
//! The root element is the one key of the result. An element holding only text is that text (`""` when
//! empty); otherwise a map of its children by name, attributes as `@name` and its own text as `#text`.
//! A child that occurs more than once becomes an array; the names in `lists` are arrays however often
//! they occur, so a listing of one item has the shape of a listing of many. Namespaces are dropped from
//! names; a DTD is refused.

use rhai::{Array, Dynamic, EvalAltResult, Map, Module};

use super::native::{arg_error, func};

/// The document in `text` as a map, or why it is not XML.
pub fn parse(text: &str, lists: &[String]) -> Result<Map, String> {
    let document = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = document.root_element();
    let mut map = Map::new();
    map.insert(root.tag_name().name().into(), element(root, lists));
    Ok(map)
}

fn element(node: roxmltree::Node<'_, '_>, lists: &[String]) -> Dynamic {
    let children: Vec<_> = node.children().filter(|c| c.is_element()).collect();
    let attributes: Vec<_> = node.attributes().collect();
    let text: String = node.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect();
    if children.is_empty() && attributes.is_empty() {
        return text.into();
    }
    let mut map = Map::new();
    for attribute in attributes {
        map.insert(format!("@{}", attribute.name()).into(), attribute.value().into());
    }
    for child in children {
        let name = child.tag_name().name();
        let value = element(child, lists);
        match map.get_mut(name) {
            Some(existing) if existing.is_array() => existing.write_lock::<Array>().expect("an array").push(value),
            Some(existing) => {
                let first = std::mem::take(existing);
                *existing = Dynamic::from_array(vec![first, value]);
            }
            None if lists.iter().any(|l| l == name) => {
                map.insert(name.into(), Dynamic::from_array(vec![value]));
            }
            None => {
                map.insert(name.into(), value);
            }
        }
    }
    if !text.trim().is_empty() {
        map.insert("#text".into(), text.trim().into());
    }
    map.into()
}

fn parse_script(text: &str, lists: Array) -> Result<Map, Box<EvalAltResult>> {
    let lists: Vec<String> = lists.iter().map(|l| l.to_string()).collect();
    parse(text, &lists).map_err(|e| arg_error(&format!("not XML: {e}")))
}

pub fn module() -> Module {
    let mut module = Module::new();
    func("parse").set_into_module(&mut module, |text: &str| parse_script(text, Array::new()));
    func("parse").set_into_module(&mut module, |text: &str, lists: Array| parse_script(text, lists));
    module
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(map: Map) -> serde_json::Value {
        serde_json::to_value(Dynamic::from(map)).unwrap()
    }

    #[test]
    fn a_listing_of_one_has_the_shape_of_a_listing_of_many() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>
            <Contents><Key>a.txt</Key><Size>3</Size></Contents></ListBucketResult>"#;
        let value = json(parse(text, &["Contents".into()]).unwrap());
        assert_eq!(
            value,
            serde_json::json!({"ListBucketResult": {"Name": "b", "Prefix": "", "Contents": [{"Key": "a.txt", "Size": "3"}]}})
        );
    }

    #[test]
    fn repeated_children_become_arrays_and_attributes_are_kept() {
        let text = r#"<EnumerationResults ContainerName="c"><Blobs><Blob><Name>x</Name></Blob><Blob><Name>y</Name></Blob></Blobs></EnumerationResults>"#;
        let value = json(parse(text, &[]).unwrap());
        assert_eq!(
            value,
            serde_json::json!({"EnumerationResults": {"@ContainerName": "c", "Blobs": {"Blob": [{"Name": "x"}, {"Name": "y"}]}}})
        );
    }

    #[test]
    fn malformed_xml_and_dtds_are_refused() {
        assert!(parse("<ListBucketResult><Name>half", &[]).is_err());
        assert!(parse(r#"<!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>"#, &[]).is_err());
    }
}
