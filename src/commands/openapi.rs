//! `switchboard import-openapi`: an OpenAPI document becomes a server script — printed, written to a
//! file, or bound in the data directory. The difference from a server of that name is shown first.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{DataDirArg, Exit, failed, init_logging, open, usage};
use crate::openapi::{Import, Plan, Selection, import};

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The OpenAPI 3.0 or 3.1 document, JSON or YAML (`-`: standard input). `$ref`s to files beside it
    /// are read too.
    pub spec: PathBuf,
    /// The server's name (its secrets are named after it: NAME_API_KEY, NAME_TOKEN, …).
    #[arg(long)]
    pub name: String,
    /// Import only operations with this tag (repeatable; with --operation, either selects).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Import only this operation: its operationId or imported name (repeatable).
    #[arg(long = "operation", value_name = "ID")]
    pub operations: Vec<String>,
    /// Write the script to FILE instead of standard output.
    #[arg(long, value_name = "FILE", conflicts_with = "apply")]
    pub out: Option<PathBuf>,
    /// Bind the server to the script in the data directory (a new version of it, if it exists).
    #[arg(long)]
    pub apply: bool,
    #[command(flatten)]
    pub state: DataDirArg,
}

pub fn import_openapi(args: ImportArgs) -> Exit {
    init_logging("warn");
    let mut bytes = Vec::new();
    let read = match args.spec.as_os_str() == "-" {
        true => std::io::stdin().read_to_end(&mut bytes).map(drop),
        false => std::fs::read(&args.spec).map(|b| bytes = b),
    };
    read.map_err(|e| usage(format!("cannot read {}: {e}", args.spec.display())))?;
    let directory = (args.spec.as_os_str() != "-").then(|| args.spec.parent().unwrap_or(Path::new(".")));
    let selection = Selection { tags: args.tags, operations: args.operations };
    let settings = args.state.settings();
    // Without a store (and without --apply) there is nothing to compare with: no need to make one.
    if !args.apply && settings.store.is_none() && !settings.data_dir.exists() {
        let import = import(&bytes, directory, &args.name, &selection).map_err(failed)?;
        report(&args.name, &import, None);
        return write(&import.script, args.out.as_deref());
    }
    let runtime = open(settings)?;
    let plan = Plan::new(&runtime, &bytes, directory, &args.name, &selection).map_err(failed)?;
    report(&args.name, &plan.import, Some(&plan));
    if !args.apply {
        return write(&plan.import.script, args.out.as_deref());
    }
    let cid = plan.apply(&runtime).map_err(failed)?;
    eprintln!("bound '{}' to {cid}", plan.name);
    Ok(())
}

/// What was imported, the notes, and what changes from the server of that name, on standard error.
fn report(name: &str, import: &Import, plan: Option<&Plan>) {
    let cid = plan.map(|plan| format!(" ({})", plan.cid)).unwrap_or_default();
    eprintln!("{} operations imported as '{name}'{cid}", import.operations);
    for note in &import.notes {
        eprintln!("  note: {note}");
    }
    if let Some(difference) = plan.and_then(|plan| plan.difference.as_ref()) {
        eprint!("changes to the server '{name}':\n{difference}");
    }
}

fn write(script: &str, out: Option<&Path>) -> Exit {
    match out {
        Some(out) => std::fs::write(out, script).map_err(|e| usage(format!("cannot write {}: {e}", out.display()))),
        None => {
            print!("{script}");
            Ok(())
        }
    }
}
