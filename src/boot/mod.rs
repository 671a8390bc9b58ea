//! Boot images: the set of servers, variables and secret names a runtime starts from.
//!
//! A boot *source* is a JSON file that names script files; a *packed* image is one file holding the
//! manifest and every script by CID; an [`Image`] is either, read into memory. The default source is
//! embedded in the binary at build time (see `build.rs`), so a fresh data directory starts from it with
//! no files on the machine.

mod diff;
mod managed;
mod pack;
mod source;

use std::collections::BTreeMap;

pub use diff::diff;
pub use managed::Managed;
pub use pack::{FORMAT, is_packed, pack, unpack};
pub use source::{Source, SourceServer};

/// A boot image with every script's text in hand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub servers: Vec<ImageServer>,
    pub variables: BTreeMap<String, String>,
    /// Names of the secrets the image's servers expect.
    pub secrets: Vec<String>,
    /// Secret values, present only in an image exported with secrets and opened with its passphrase.
    pub secret_values: SecretValues,
    /// The names of the secret values a packed image carries sealed, whether they were opened or not.
    pub sealed_secrets: Vec<String>,
}

/// Secret values by name; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Image {
    /// Every problem that makes this image unfit to import: invalid or duplicate names, scripts that
    /// `compile` refuses, invalid secret names.
    pub fn check(&self, compile: impl Fn(&[u8]) -> Result<(), crate::error::Error>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for server in &self.servers {
            if let Err(e) = crate::server::validate_name(&server.name) {
                problems.push(e);
            }
            if !seen.insert(server.name.as_str()) {
                problems.push(format!("server '{}' is listed twice", server.name));
            }
            if let Err(e) = compile(&server.script) {
                problems.push(format!("server '{}': {}", server.name, e.message()));
            }
        }
        for name in self.secrets.iter().chain(self.secret_values.0.keys()) {
            if let Err(e) = crate::secrets::validate_name(name) {
                problems.push(e);
            }
        }
        problems
    }

    /// Why this image must not be imported as it was read: it carries sealed secret values that no
    /// passphrase opened, and an import would drop them without a word. The caller says how to give the
    /// passphrase, or to import without them.
    pub fn unopened_secrets(&self) -> Option<String> {
        let unopened: Vec<&str> = self
            .sealed_secrets
            .iter()
            .filter(|name| !self.secret_values.0.contains_key(*name))
            .map(String::as_str)
            .collect();
        (!unopened.is_empty()).then(|| {
            format!(
                "the image carries the sealed values of {} secret(s) ({}) and no passphrase opened them: give its \
                 passphrase to import them, or say to import without them",
                unopened.len(),
                unopened.join(", ")
            )
        })
    }

    /// What `boot verify` says about the secret values an image carries.
    pub fn secrets_line(&self) -> Option<String> {
        if self.sealed_secrets.is_empty() {
            return None;
        }
        let opened = match self.unopened_secrets() {
            None => "opened with the passphrase",
            Some(_) => "not opened (no passphrase given)",
        };
        Some(format!(
            "carries the sealed values of {} secret(s) ({}): {opened}",
            self.sealed_secrets.len(),
            self.sealed_secrets.join(", ")
        ))
    }

    /// The CID of this image packed without secret values: the boot CID.
    pub fn cid(&self) -> Result<crate::cid::Cid, String> {
        let mut public = self.clone();
        public.secret_values = SecretValues::default();
        public.sealed_secrets.clear();
        pack(&public, None).map(|bytes| crate::cid::Cid::of(&bytes))
    }

    /// Reads a packed image or a boot source file, checking what can be checked without a runtime.
    pub fn open(path: &std::path::Path, passphrase: Option<&str>) -> (Image, Vec<String>) {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => return (Image::default(), vec![format!("{}: {e}", path.display())]),
        };
        if is_packed(&bytes) {
            return unpack(&bytes, passphrase);
        }
        let text = String::from_utf8_lossy(&bytes);
        match Source::parse(&text).map_err(|e| vec![e]).and_then(|source| source.read_from_disk(path)) {
            Ok(image) => (image, Vec::new()),
            Err(problems) => (Image::default(), problems),
        }
    }
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
