//! Which servers a boot source manages: the file is the truth for them.
//!
//! A server named in the boot source that `serve` loads is bound from its script file at every start
//! and whenever the file changes. An edit through the management API would be silently undone by the
//! next start, so the API refuses every change to such a server (`conflict`, naming the file) and the
//! file stays the one place to edit it. Servers created through the API are not managed and persist.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;

use crate::error::Error;

/// Server name → the script file the boot source binds it to.
#[derive(Debug, Default)]
pub struct Managed(RwLock<BTreeMap<String, PathBuf>>);

impl Managed {
    pub fn new(files: BTreeMap<String, PathBuf>) -> Managed {
        Managed(RwLock::new(files))
    }

    /// Replaces the managed set (the boot source was reloaded).
    pub fn set(&self, files: BTreeMap<String, PathBuf>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = files;
    }

    pub fn file(&self, name: &str) -> Option<PathBuf> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// `conflict` when `name` is managed by the boot source.
    pub fn check(&self, name: &str) -> Result<(), Error> {
        match self.file(name) {
            None => Ok(()),
            Some(file) => Err(Error::Conflict {
                message: format!(
                    "server '{name}' is managed by the boot source: edit {} instead (an API change would be undone at the next start)",
                    file.display()
                ),
                file: file.display().to_string(),
            }),
        }
    }
}
