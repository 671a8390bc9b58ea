//! `switchboard store …`: moving a whole installation from one store to another.

use clap::Subcommand;

use super::{Exit, failed, init_logging, usage};

#[derive(Debug, Clone, Subcommand)]
pub enum StoreCommand {
    /// Copy everything a store holds (blobs, registry and history, variables, sealed secrets, OAuth
    /// connections, webhook events; then the invocation records) into a new, empty one, all or nothing.
    /// Stop the instances on the source first; the target needs the same master key.
    Copy {
        /// The store to copy: sqlite:PATH or postgres://USER@HOST:PORT/DATABASE.
        #[arg(long, value_name = "STORE")]
        from: String,
        /// The empty store to copy into: postgres://USER@HOST:PORT/DATABASE or sqlite:PATH.
        #[arg(long, value_name = "STORE")]
        to: String,
    },
}

/// `switchboard store copy`.
pub fn store(command: StoreCommand) -> Exit {
    init_logging("warn");
    let StoreCommand::Copy { from, to } = command;
    if let Some(path) = from.strip_prefix("sqlite:")
        && !std::path::Path::new(path).exists()
    {
        return Err(usage(format!("there is no store to copy at {path}")));
    }
    // Both locations are explicit: no data directory is read.
    let open = |location: &str| crate::store::open(Some(location), std::path::Path::new("")).map_err(failed);
    let (source, target) = (open(&from)?, open(&to)?);
    let copied = crate::store::copy::copy(source.as_ref(), target.as_ref()).map_err(failed)?;
    eprintln!(
        "copied {} servers, {} bindings, {} blobs, {} secrets, {} connections, {} webhook events, {} invocation records",
        copied.servers,
        copied.bindings,
        copied.blobs,
        copied.secrets,
        copied.connections,
        copied.events,
        copied.records
    );
    Ok(())
}
