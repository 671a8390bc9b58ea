//! What native modules share: one HTTP client, database connections, OAuth tokens and outbound
//! schedules per server, and the snapshots of variables and opened secrets that scripts read without
//! touching the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::db::Databases;
use super::http::{HttpClient, HttpSettings};
use super::throttle::Throttles;
use crate::error::Error;
use crate::oauth::tokens::Tokens;
use crate::observe::metrics::Metrics;
use crate::secrets::{Opened, Secrets, Vault};
use crate::store::Store;

/// What native modules share: the store (for writing secrets only), the vault, one HTTP client,
/// database connections, and snapshots of the variables and opened secrets that scripts read without
/// touching the store.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub http: HttpClient,
    /// The process's metrics, which the modules count their work in.
    pub metrics: Arc<Metrics>,
    pub databases: Databases,
    /// The registry's variables, refreshed whenever the store changes.
    pub variables: ArcSwap<BTreeMap<String, String>>,
    /// Every stored secret, opened, refreshed whenever the store changes.
    opened: ArcSwap<Opened>,
    /// OAuth access tokens, per server.
    pub oauth: Tokens,
    /// Outbound rate limits, per server.
    pub throttles: Throttles,
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Vault,
        databases: Databases,
        http: HttpSettings,
    ) -> Result<Services, Error> {
        let metrics = Arc::new(Metrics::new());
        Ok(Services {
            store,
            vault,
            http: HttpClient::new(http, metrics.clone())?,
            metrics,
            databases,
            variables: ArcSwap::default(),
            opened: ArcSwap::default(),
            oauth: Tokens::default(),
            throttles: Throttles::default(),
        })
    }

    pub fn secrets(&self) -> Secrets<'_> {
        Secrets { store: self.store.as_ref(), vault: &self.vault, opened: &self.opened }
    }

    /// A variable of the registry, else the process environment variable of the same name (never a
    /// reserved one: see [`environment`](crate::environment)).
    pub fn variable(&self, name: &str) -> Option<String> {
        crate::environment::variable(&self.variables.load(), name)
    }
}
