//! Key material the runtime keeps for itself: the master key that seals secrets at rest, and the admin
//! token that guards the management API.
//!
//! Each comes from an environment variable when set, else from a file in the data directory created
//! on first use with mode 0600. Neither value is ever logged; only the file's path is.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::RngCore;

use crate::error::{Error, Result};

pub const MASTER_KEY_ENV: &str = "SWITCHBOARD_MASTER_KEY";
pub const ADMIN_TOKEN_ENV: &str = "SWITCHBOARD_ADMIN_TOKEN";
pub const MASTER_KEY_FILE: &str = "master.key";
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Reads `path`, or creates it (mode 0600) holding `fresh()`. Two processes racing to create it end up
/// with the same content: the loser reads what the winner wrote.
fn read_or_create(path: &Path, fresh: impl FnOnce() -> String) -> Result<String> {
    let problem = |e: std::io::Error| Error::internal(&format!("{}", path.display()), e);
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            let value = fresh();
            file.write_all(value.as_bytes()).and_then(|()| file.sync_all()).map_err(problem)?;
            Ok(value)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(problem)
        }
        Err(e) => Err(problem(e)),
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The 32-byte master key: `$SWITCHBOARD_MASTER_KEY` (64 hex digits) or `<data>/master.key`.
pub fn master_key(data_dir: &Path) -> Result<[u8; 32]> {
    let (text, origin) = match std::env::var(MASTER_KEY_ENV) {
        Ok(text) => (text, MASTER_KEY_ENV.to_string()),
        Err(_) => {
            let path = data_dir.join(MASTER_KEY_FILE);
            (read_or_create(&path, random_hex)?, path.display().to_string())
        }
    };
    let bytes = hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.ok_or_else(|| Error::Internal(format!("the master key in {origin} is not 64 hexadecimal digits")))
}

/// The admin token: `$SWITCHBOARD_ADMIN_TOKEN` or `<data>/admin-token`. A variable that is set but
/// empty is refused: whoever set it meant something (most likely "no token"), and quietly using the file's
/// token instead would leave every mutation refused for a reason nobody sees.
pub fn admin_token(data_dir: &Path) -> Result<String> {
    match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(token) if token.trim().is_empty() => Err(Error::BadRequest(format!(
            "{ADMIN_TOKEN_ENV} is set but empty: give it a token, or unset it to use the one in {}",
            data_dir.join(ADMIN_TOKEN_FILE).display()
        ))),
        Ok(token) => Ok(token.trim().to_owned()),
        Err(_) => read_or_create(&data_dir.join(ADMIN_TOKEN_FILE), random_hex),
    }
}

/// The admin token as a client of a running server finds it: `$SWITCHBOARD_ADMIN_TOKEN`, else the
/// data directory's file, which is never created here (a new token would match no server).
pub fn existing_admin_token(data_dir: &Path) -> std::result::Result<String, String> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        _ => std::fs::read_to_string(&path).map(|token| token.trim().to_owned()).map_err(|e| {
            format!("no admin token: ${ADMIN_TOKEN_ENV} is not set and {} cannot be read ({e})", path.display())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_files_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = read_or_create(&dir.path().join("k"), random_hex).unwrap();
        let again = read_or_create(&dir.path().join("k"), || unreachable!("must not regenerate")).unwrap();
        assert_eq!(first, again);
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(dir.path().join("k")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
