//! Secret values: sealed at rest with XChaCha20-Poly1305 under the master key, bound to their name.
//!
//! A sealed value is `version (1) | nonce (24) | ciphertext+tag`, with the secret's name as associated
//! data, so a sealed value copied under another name does not open. Values come from the store first,
//! then from the process environment variable of the same name (never a reserved one).
//!
//! Scripts read secrets on the hot path, so they never reach the store or the cipher there: every
//! stored secret is opened once per change of the store into an [`Opened`] snapshot that readers load
//! without a lock and that is swapped whole when the store changes (here, or in another process).

use std::collections::HashMap;
use std::fmt;

use arc_swap::ArcSwap;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::error::{Error, Result};
use crate::store::{Change, Op, Store};

const VERSION: u8 = 1;
const NONCE: usize = 24;

/// Checks a secret name: upper-case letters, digits and `_`, starting with a letter, at most 128, and
/// not a name of the runtime's or the host's (no script could read it, and a stored
/// `SWITCHBOARD_ADMIN_TOKEN` would only look like it configured something).
pub fn validate_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(format!("'{name}' is not a secret name: upper-case letters, digits and '_'"));
    }
    crate::environment::refusal(name).map_or(Ok(()), Err)
}

/// A value as typed at a prompt or piped from `echo`: without the one newline that ends it.
pub fn without_trailing_newline(value: &str) -> &str {
    value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(value)
}

/// The value to store from what was given (stdin, a request body): one trailing newline dropped, and an
/// empty result refused unless `allow_empty` — an empty stdin or body is far more often a slip (a
/// variable that was not set, a file that was not there) than a wish, and would replace a good value.
pub fn given_value(raw: &str, allow_empty: bool) -> std::result::Result<&str, String> {
    let value = without_trailing_newline(raw);
    match value.is_empty() && !allow_empty {
        true => Err("the value is empty: nothing stored".into()),
        false => Ok(value),
    }
}

/// Seals and opens values under one key.
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl Vault {
    pub fn new(key: &[u8; 32]) -> Vault {
        Vault { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    pub fn seal(&self, name: &str, value: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: name.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption of an in-memory value cannot fail");
        let mut sealed = Vec::with_capacity(1 + NONCE + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<String> {
        let broken = || Error::Internal(format!("secret '{name}' cannot be opened with this master key"));
        if sealed.len() < 1 + NONCE || sealed[0] != VERSION {
            return Err(broken());
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: name.as_bytes() })
            .map_err(|_| broken())?;
        String::from_utf8(plain).map_err(|_| broken())
    }
}

/// The fact that proves which master key a store's secrets are sealed under: a value sealed under it.
const KEY_CHECK: &str = "master_key_check";

/// Makes sure `vault` opens the secrets of `store`: the first key to use a store leaves a value sealed
/// under it, which every later opener must open. Several instances share one store only with one key,
/// and one started with another is refused with the reason, before it serves anything it could not
/// open.
pub fn claim(store: &dyn Store, vault: &Vault) -> Result<()> {
    match store.fact(KEY_CHECK)? {
        Some(sealed) => {
            let opens = hex::decode(&sealed).ok().is_some_and(|sealed| vault.open(KEY_CHECK, &sealed).is_ok());
            opens.then_some(()).ok_or_else(|| {
                Error::Internal(format!(
                    "this master key does not open the store's secrets: start every instance on this store with \
                     the key it was created with (${} or the data directory's {})",
                    crate::keys::MASTER_KEY_ENV,
                    crate::keys::MASTER_KEY_FILE
                ))
            })
        }
        None => {
            let mut change = Change::default();
            change.op(Op::SetFact { key: KEY_CHECK.into(), value: hex::encode(vault.seal(KEY_CHECK, KEY_CHECK)) });
            store.commit(&change)
        }
    }
}

/// Every stored secret, opened: what scripts read. It has no way to list or print its values; its
/// `Debug` shows names only.
#[derive(Default)]
pub struct Opened(HashMap<String, Option<String>>);

impl Opened {
    /// Opens every sealed value of the store. A value that does not open under this key is kept as
    /// such, so reading it fails with the name and never falls back to the environment.
    fn of(store: &dyn Store, vault: &Vault) -> Result<Opened> {
        let mut opened = HashMap::new();
        for (name, sealed) in store.sealed_secrets()? {
            let value = vault.open(&name, &sealed);
            if let Err(error) = &value {
                tracing::error!("{}", error.message());
            }
            opened.insert(name, value.ok());
        }
        Ok(Opened(opened))
    }
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Reading and writing secrets: writes go to the store, reads come from the opened snapshot.
pub struct Secrets<'a> {
    pub store: &'a dyn Store,
    pub vault: &'a Vault,
    pub opened: &'a ArcSwap<Opened>,
}

impl Secrets<'_> {
    /// The value of `name`: from the store (as last opened), else from the environment (within the
    /// rule of [`environment`](crate::environment)).
    pub fn get(&self, name: &str) -> Result<Option<String>> {
        match self.opened.load().0.get(name) {
            Some(Some(value)) => Ok(Some(value.clone())),
            Some(None) => Err(Error::Internal(format!("secret '{name}' cannot be opened with this master key"))),
            None => Ok(crate::environment::var(name)),
        }
    }

    /// Re-opens every stored secret into the snapshot readers see.
    pub fn reload(&self) -> Result<()> {
        self.opened.store(Opened::of(self.store, self.vault)?.into());
        Ok(())
    }

    pub fn set(&self, name: &str, value: &str) -> Result<()> {
        validate_name(name).map_err(Error::BadRequest)?;
        let mut change = Change::default();
        change.op(Op::SetSecret { name: name.into(), sealed: self.vault.seal(name, value) });
        self.store.commit(&change)?;
        self.reload()
    }

    /// Removes `name` from the store; says whether it was there.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let existed = self.store.secret(name)?.is_some();
        if existed {
            let mut change = Change::default();
            change.op(Op::RemoveSecret { name: name.into() });
            self.store.commit(&change)?;
            self.reload()?;
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_name_and_key() {
        let vault = Vault::new(&[7; 32]);
        let sealed = vault.seal("API_KEY", "s3cr3t-value");
        assert!(!sealed.windows(12).any(|w| w == b"s3cr3t-value"), "the value is visible in the sealed bytes");
        assert_eq!(vault.open("API_KEY", &sealed).unwrap(), "s3cr3t-value");
        assert!(vault.open("OTHER", &sealed).is_err());
        assert!(Vault::new(&[8; 32]).open("API_KEY", &sealed).is_err());
        let err = vault.open("API_KEY", &sealed[..10]).unwrap_err();
        assert!(!err.message().contains("s3cr3t"));
    }

    #[test]
    fn the_opened_snapshot_shows_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(&dir.path().join("store.sqlite")).unwrap();
        let (vault, opened) = (Vault::new(&[7; 32]), ArcSwap::default());
        let secrets = Secrets { store: &store, vault: &vault, opened: &opened };
        secrets.set("API_KEY", "s3cr3t-value").unwrap();
        assert_eq!(secrets.get("API_KEY").unwrap().as_deref(), Some("s3cr3t-value"));
        let shown = format!("{:?} {:#?}", opened.load(), opened.load());
        assert!(shown.contains("API_KEY") && !shown.contains("s3cr3t"), "{shown}");
        // A value sealed under another key is reported by name, never taken from the environment.
        let mut change = Change::default();
        change.op(Op::SetSecret { name: "PATH".into(), sealed: Vault::new(&[8; 32]).seal("PATH", "x") });
        store.commit(&change).unwrap();
        secrets.reload().unwrap();
        assert!(secrets.get("PATH").unwrap_err().message().contains("PATH"));
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(validate_name("STRIPE_API_KEY").is_ok());
        assert!(validate_name("A1").is_ok());
        for bad in ["", "lower", "1A", "_A", "A-B", "A B"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        for reserved in ["SWITCHBOARD_ADMIN_TOKEN", "SWITCHBOARD_X", "PATH", "HOME", "LD_PRELOAD"] {
            assert!(validate_name(reserved).unwrap_err().contains("belongs to the runtime or the host"), "{reserved}");
        }
    }
}
