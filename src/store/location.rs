//! Where the store is: the SQLite file in the data directory unless `--store` (or `$SWITCHBOARD_STORE`)
//! names another file (`sqlite:PATH`) or a PostgreSQL database (`postgres://…`).

use std::path::Path;
use std::sync::Arc;

use super::{PostgresStore, SqliteStore, Store};
use crate::error::{Error, Result};

/// The variable that names the store when `--store` is not given.
pub const STORE_ENV: &str = "SWITCHBOARD_STORE";

/// Opens the store `location` names, or the SQLite file of `data_dir` when it names none.
pub fn open(location: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>> {
    let Some(location) = location else {
        return Ok(Arc::new(SqliteStore::open(&data_dir.join("store.sqlite"))?));
    };
    if is_postgres(location) {
        return Ok(Arc::new(PostgresStore::open(location)?));
    }
    match location.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => Ok(Arc::new(SqliteStore::open(Path::new(path))?)),
        _ => Err(Error::BadRequest(format!(
            "the store must be postgres://USER@HOST:PORT/DATABASE or sqlite:PATH, not '{}'",
            super::postgres::without_password(location)
        ))),
    }
}

/// Whether `location` names a PostgreSQL database.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}
