//! Boot images: the set of servers, variables and secret names a runtime starts from.
//!
//! A boot *source* is a JSON file that names script files; an [`Image`] is the same content with the
//! scripts read in. The default source is embedded in the binary at build time (see `build.rs`), so a
//! fresh data directory starts from it with no files on the machine.

mod source;

use std::collections::BTreeMap;

pub use source::{Source, SourceServer};

/// A boot image with every script's text in hand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub servers: Vec<ImageServer>,
    pub variables: BTreeMap<String, String>,
    /// Names of the secrets the image's servers expect; never values.
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageServer {
    pub name: String,
    pub script: Vec<u8>,
    pub enabled: bool,
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_boot.rs"));
}

/// The default image compiled into this binary.
pub fn embedded() -> Result<Image, Vec<String>> {
    let source = Source::parse(embedded::SOURCE).map_err(|e| vec![e])?;
    source.read(|path| {
        embedded::FILES
            .iter()
            .find(|(name, _)| *name == path)
            .map(|(_, bytes)| bytes.to_vec())
            .ok_or_else(|| format!("{path} is not embedded"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_image_holds_echo() {
        let image = super::embedded().unwrap();
        assert!(image.servers.iter().any(|s| s.name == "echo" && s.enabled));
    }
}
