//! What the console says about a server at a glance: enabled, its secrets set or missing, its OAuth
//! connection, and whether its script loads — one reading, shared by the list and the server page.

use crate::meta::oauth2::Grant;
use crate::runtime::Runtime;
use crate::server::Server;

/// One declared secret (or set of alternatives) and whether any of its names has a value.
pub struct Secret {
    pub names: Vec<String>,
    pub set: bool,
}

pub struct State {
    pub enabled: bool,
    pub secrets: Vec<Secret>,
    /// `Some(connected)` for a server that needs a connection it obtains through the browser.
    pub oauth: Option<bool>,
    /// Why the script does not load, or why the last edit or reload was refused.
    pub error: Option<String>,
}

impl State {
    pub fn missing(&self) -> usize {
        self.secrets.iter().filter(|secret| !secret.set).count()
    }
}

/// Reads the state of `server`; this may read the store (OAuth connections), so call it off the workers.
pub fn of(runtime: &Runtime, server: &Server) -> State {
    let secrets = runtime.services.secrets();
    let has = |name: &String| secrets.get(name).ok().flatten().is_some();
    let (declared, oauth) = match &server.script {
        Ok(script) => {
            let declared =
                script.meta.secrets.iter().map(|names| Secret { set: names.iter().any(has), names: names.clone() });
            // Only a connection made through the browser is the operator's to make; other grants obtain
            // their tokens from secrets.
            let needs_connection =
                script.meta.oauth2.as_ref().is_some_and(|spec| spec.grant == Grant::AuthorizationCode);
            let oauth = needs_connection.then(|| {
                crate::oauth::connections::status(runtime, &server.name).is_ok_and(|status| status["connected"] == true)
            });
            (declared.collect(), oauth)
        }
        Err(_) => (Vec::new(), None),
    };
    let error = match &server.script {
        Err(error) => Some(error.message()),
        Ok(_) => runtime.last_error(&server.name).map(|error| error.message()),
    };
    State { enabled: server.enabled, secrets: declared, oauth, error }
}
