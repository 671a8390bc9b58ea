//! The boot source format: JSON naming servers, their script files, variables and secret names.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Image, ImageServer};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub servers: Vec<SourceServer>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceServer {
    pub name: String,
    /// Path of the script, relative to the source file.
    pub script: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl Source {
    pub fn parse(text: &str) -> Result<Source, String> {
        serde_json::from_str(text).map_err(|e| format!("boot source is not valid: {e}"))
    }

    /// Reads a source file from disk.
    pub fn open(path: &Path) -> Result<Source, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Source::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads every script through `read` (given the path as the source spells it). Reports every
    /// script that cannot be read, not just the first.
    pub fn read(&self, read: impl Fn(&str) -> Result<Vec<u8>, String>) -> Result<Image, Vec<String>> {
        let mut problems = Vec::new();
        let mut servers = Vec::new();
        for server in &self.servers {
            match read(&server.script) {
                Ok(script) => servers.push(ImageServer { name: server.name.clone(), script, enabled: server.enabled }),
                Err(e) => problems.push(format!("server '{}': {e}", server.name)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Image { servers, variables: self.variables.clone(), secrets: self.secrets.clone(), ..Image::default() })
    }

    /// The script file of every server, for the source file at `path`.
    pub fn files(&self, path: &Path) -> BTreeMap<String, std::path::PathBuf> {
        let dir = path.parent().unwrap_or(Path::new("."));
        self.servers.iter().map(|server| (server.name.clone(), dir.join(&server.script))).collect()
    }

    /// Reads every script relative to the directory of the source file at `path`.
    pub fn read_from_disk(&self, path: &Path) -> Result<Image, Vec<String>> {
        let dir = path.parent().unwrap_or(Path::new("."));
        self.read(|script| {
            let file = dir.join(script);
            std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))
        })
    }
}
