//! A server's OAuth connection as the store keeps it: the last token and its refresh token, sealed
//! under the master key like a secret (bound to the server's name), so the data directory never holds
//! a token in the clear. A rotated refresh token is written here before it is used or returned.

use serde::{Deserialize, Serialize};

use super::token::Token;
use crate::error::{Error, Result};
use crate::modules::services::Services;
use crate::store::{Change, Op};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub token: Token,
    /// For a pasted refresh token: a digest of the secret it grew from, so that pasting a new one
    /// replaces this connection.
    #[serde(default)]
    pub seed: Option<String>,
}

/// The name a connection is sealed under: opening it under another server's name fails.
fn sealed_as(server: &str) -> String {
    format!("oauth:{server}")
}

/// A digest of a pasted secret, to recognise it later without keeping it.
pub fn fingerprint(value: &str) -> String {
    blake3::hash(value.as_bytes()).to_hex().to_string()
}

pub fn load(services: &Services, server: &str) -> Result<Option<Connection>> {
    let Some(sealed) = services.store.connection(server)? else { return Ok(None) };
    let json = services.vault.open(&sealed_as(server), &sealed)?;
    serde_json::from_str(&json)
        .map(Some)
        .map_err(|_| Error::Internal(format!("the connection of '{server}' is unreadable")))
}

pub fn save(services: &Services, server: &str, connection: &Connection) -> Result<()> {
    let json = serde_json::to_string(connection).map_err(|e| Error::internal("connection", e))?;
    let sealed = services.vault.seal(&sealed_as(server), &json);
    let mut change = Change::default();
    change.op(Op::SetConnection { server: server.into(), sealed: Some(sealed) });
    services.store.commit(&change)
}

pub fn remove(services: &Services, server: &str) -> Result<()> {
    let mut change = Change::default();
    change.op(Op::SetConnection { server: server.into(), sealed: None });
    services.store.commit(&change)
}
