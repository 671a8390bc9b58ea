//! An import as the CLI and the management API carry it out: the script written, compiled as the
//! runtime would load it, and compared with the server of that name, before anything is bound.

use std::path::Path;

use serde_json::{Value, json};

use super::diff::{Difference, diff};
use super::{Import, Selection, import};
use crate::cid::Cid;
use crate::error::Error;
use crate::runtime::Runtime;
use crate::store::Origin;

/// A checked import, not yet applied.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub import: Import,
    pub cid: Cid,
    /// The script it would replace, when the server exists and its script loads.
    pub replaces: Option<Cid>,
    /// How it differs from the server's current script; `None` when there is no such server (or its
    /// script does not load).
    pub difference: Option<Difference>,
}

impl Plan {
    /// Imports the document, compiles the script and compares it with the server `name`.
    pub fn new(
        runtime: &Runtime,
        bytes: &[u8],
        directory: Option<&Path>,
        name: &str,
        selection: &Selection,
    ) -> Result<Plan, Error> {
        let import = import(bytes, directory, name, selection)?;
        let script = runtime.load(import.script.as_bytes())?;
        let current = runtime.servers().get(name).and_then(|server| server.script.as_ref().ok().cloned());
        let difference = current.as_ref().map(|current| diff(&current.meta, &script.meta));
        let replaces = current.map(|current| current.cid);
        Ok(Plan { name: name.to_owned(), import, cid: script.cid, replaces, difference })
    }

    /// Binds the server to the imported script, as an edit through the management API would.
    pub fn apply(&self, runtime: &Runtime) -> Result<Cid, Error> {
        let cid = runtime.put_script(&self.name, self.import.script.as_bytes(), Origin::Api)?;
        tracing::info!(server = %self.name, cid = %cid, operations = self.import.operations, "imported from OpenAPI");
        Ok(cid)
    }

    /// What the management API answers.
    pub fn to_json(&self, applied: bool) -> Value {
        json!({
            "name": self.name,
            "cid": self.cid,
            "operations": self.import.operations,
            "notes": self.import.notes,
            "replaces": self.replaces,
            "difference": self.difference,
            "applied": applied,
            "script": self.import.script,
        })
    }
}
