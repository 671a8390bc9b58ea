//! `switchboard boot …`: packing a boot source into an image, exporting and importing the running state,
//! comparing and verifying images. Every image is checked whole before anything is changed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{DataDirArg, Exit, INVOCATION_ERROR, failed, init_logging, open, stdout, usage};
use crate::cid::Cid;
use crate::error::Error;

/// Where a passphrase for sealed secret values comes from: a file, or `$SWITCHBOARD_IMAGE_PASSPHRASE`.
#[derive(Debug, Clone, Args)]
pub struct PassphraseArg {
    /// Read the passphrase for secret values from this file (else $SWITCHBOARD_IMAGE_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl PassphraseArg {
    fn read(&self) -> Result<Option<String>, ExitCode> {
        match &self.passphrase_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|text| Some(crate::secrets::without_trailing_newline(&text).to_owned()))
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display()))),
            None => Ok(std::env::var("SWITCHBOARD_IMAGE_PASSPHRASE").ok().filter(|p| !p.is_empty())),
        }
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BootCommand {
    /// Pack a boot source (JSON naming script files) into one image file.
    Pack {
        source: PathBuf,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Export the data directory's running state as an image file.
    Export {
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Include secret values, sealed under a passphrase (--passphrase-file or $SWITCHBOARD_IMAGE_PASSPHRASE).
        #[arg(long)]
        with_secrets: bool,
        #[command(flatten)]
        passphrase: PassphraseArg,
        #[command(flatten)]
        state: DataDirArg,
    },
    /// Replace the data directory's state with an image, after checking all of it.
    Import {
        image: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArg,
        /// Import an image that carries sealed secret values without them (without this, such an image
        /// is refused unless its passphrase opens them).
        #[arg(long)]
        without_secrets: bool,
        #[command(flatten)]
        state: DataDirArg,
    },
    /// Show what changes from one image (or boot source) to another.
    Diff { a: PathBuf, b: PathBuf },
    /// Check an image (or boot source): every blob against its CID, every reference, every script.
    Verify {
        image: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArg,
    },
}

/// The runtime's engine, for checking scripts without a data directory.
fn checker() -> Result<crate::engine::ScriptEngine, ExitCode> {
    crate::runtime::checker().map_err(failed)
}

/// Reads an image or source and checks it whole; every problem is printed.
fn checked(
    path: &std::path::Path,
    passphrase: Option<&str>,
    compile: impl Fn(&[u8]) -> Result<(), Error>,
) -> Result<crate::boot::Image, ExitCode> {
    let (image, mut problems) = crate::boot::Image::open(path, passphrase);
    problems.extend(image.check(compile));
    if problems.is_empty() {
        return Ok(image);
    }
    eprintln!("{}: refused, {} problem(s):", path.display(), problems.len());
    for problem in &problems {
        eprintln!("  - {problem}");
    }
    Err(ExitCode::from(INVOCATION_ERROR))
}

fn compile_with(engine: &crate::engine::ScriptEngine) -> impl Fn(&[u8]) -> Result<(), Error> + '_ {
    move |source| engine.compile(source).map(drop)
}

/// `switchboard boot pack|export|import|diff|verify`.
pub fn boot(command: BootCommand) -> Exit {
    init_logging("warn");
    match command {
        BootCommand::Pack { source, output } => {
            let engine = checker()?;
            write_image(&checked(&source, None, compile_with(&engine))?, None, &output)
        }
        BootCommand::Export { output, with_secrets, passphrase, state } => {
            let passphrase = passphrase.read()?;
            if with_secrets && passphrase.is_none() {
                return Err(usage(
                    "--with-secrets needs a passphrase: --passphrase-file FILE or $SWITCHBOARD_IMAGE_PASSPHRASE",
                ));
            }
            let image = open(state.settings())?.snapshot(with_secrets).map_err(failed)?;
            write_image(&image, passphrase.as_deref().filter(|_| with_secrets), &output)
        }
        BootCommand::Import { image, passphrase, without_secrets, state } => {
            import(&image, passphrase.read()?.as_deref(), without_secrets, state)
        }
        BootCommand::Diff { a, b } => diff(&a, &b),
        BootCommand::Verify { image, passphrase } => {
            let passphrase = passphrase.read()?;
            let checked = checked(&image, passphrase.as_deref(), compile_with(&checker()?))?;
            let cid = checked.cid().map_err(|problem| failed(Error::Internal(problem)))?;
            let secrets = checked.secrets_line().map(|line| format!("; {line}")).unwrap_or_default();
            stdout::line(format!("ok: {} servers, boot CID {cid}{secrets}", checked.servers.len()))
        }
    }
}

/// `switchboard boot import`: the image replaces the state only when all of it checks, and never drops
/// the secret values it carries unless told to.
fn import(path: &std::path::Path, passphrase: Option<&str>, without_secrets: bool, state: DataDirArg) -> Exit {
    let runtime = open(state.settings())?;
    let mut image = checked(path, passphrase, |s| runtime.compile(s).map(drop))?;
    if without_secrets {
        image.secret_values = crate::boot::SecretValues::default();
    } else if let Some(problem) = image.unopened_secrets() {
        eprintln!(
            "{}: refused: {problem} (--passphrase-file FILE or $SWITCHBOARD_IMAGE_PASSPHRASE; --without-secrets)",
            path.display()
        );
        return Err(ExitCode::from(INVOCATION_ERROR));
    }
    let cid = runtime.import(&image, crate::store::Origin::Boot).and_then(|()| runtime.boot_cid()).map_err(failed)?;
    for server in &image.servers {
        if let Ok(script) = runtime.compile(&server.script) {
            eprintln!("  {}: {}", server.name, crate::server::asks_line(&server.name, &script.meta));
        }
    }
    eprintln!("imported {} servers; boot CID {cid}", image.servers.len());
    Ok(())
}

/// `switchboard boot diff`: both sides are checked (and their problems printed) before comparing.
fn diff(a: &std::path::Path, b: &std::path::Path) -> Exit {
    let engine = checker()?;
    let (a, b) = (checked(a, None, compile_with(&engine)), checked(b, None, compile_with(&engine)));
    let (a, b) = (a?, b?);
    let asks = |name: &str, script: &[u8]| {
        engine.compile(script).ok().map(|script| crate::server::asks_line(name, &script.meta))
    };
    let lines = crate::boot::diff(&a, &b, asks);
    match lines.is_empty() {
        true => stdout::line("no differences"),
        false => stdout::print(lines.iter().map(|line| format!("{line}\n")).collect::<String>()),
    }
}

fn write_image(image: &crate::boot::Image, passphrase: Option<&str>, output: &std::path::Path) -> Exit {
    let bytes = crate::boot::pack(image, passphrase).map_err(|problem| failed(Error::Internal(problem)))?;
    std::fs::write(output, &bytes).map_err(|e| usage(format!("cannot write {}: {e}", output.display())))?;
    eprintln!(
        "{}: {} servers, {}",
        output.display(),
        image.servers.len(),
        match passphrase {
            Some(_) => "secret values sealed (not reproducible)".to_string(),
            None => format!("boot CID {}", Cid::of(&bytes)),
        }
    );
    Ok(())
}
