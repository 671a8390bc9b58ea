//! The `switchboard` command: parses arguments and hands them to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;
use switchboard::commands::{
    self, BootCommand, CallArgs, DataDirArg, ImportArgs, McpArgs, OAuthCommand, SecretCommand, ServeArgs, ServersArgs,
    StoreCommand,
};
use switchboard::engine::leak::Counting;

/// Counting, so that what a script's stack overflow leaves behind is known (see `engine::leak`).
#[global_allocator]
static ALLOCATOR: Counting<MiMalloc> = Counting(MiMalloc);

/// Switchboard serves integration servers — small Rhai scripts, one per external API — over HTTP,
/// pinned by content hash (CID) and editable live.
#[derive(Parser)]
#[command(name = "switchboard", version, propagate_version = true)]
enum Cli {
    /// Serve the registry over HTTP (with no data directory yet, starts from the embedded default image).
    Serve(ServeArgs),
    /// Run one invocation in-process and print its output.
    ///
    /// Examples: `switchboard call echo /hello -X POST -d '{"a":1}'`,
    /// `switchboard call ./scripts/my.rhai`, `switchboard call bafkr4i…`.
    Call(CallArgs),
    /// Print the CID of each file.
    Cid {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the registered servers (or, with --markdown, print the catalog page).
    Servers(ServersArgs),
    /// Show a server's metadata and usage (a name, a CID or a .rhai file).
    Describe {
        target: String,
        #[command(flatten)]
        state: DataDirArg,
    },
    /// Serve every server as an MCP tool over stdio (for desktop AI clients that start it themselves).
    Mcp(McpArgs),
    /// Manage secrets: set (value from stdin), list (names only), rm.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// OAuth connections: `connect NAME` prints the URL that connects a server through the browser.
    #[command(subcommand)]
    Oauth(OAuthCommand),
    /// Boot images: pack a source, export or import the state, diff, verify.
    #[command(subcommand)]
    Boot(BootCommand),
    /// Turn an OpenAPI 3.0/3.1 document into a server script: printed, written (--out) or bound (--apply).
    ///
    /// Example: `switchboard import-openapi petstore.yaml --name pets --apply`.
    ImportOpenapi(ImportArgs),
    /// Stores: `copy --from sqlite:PATH --to postgres://…` moves a whole installation.
    #[command(subcommand)]
    Store(StoreCommand),
}

fn main() -> ExitCode {
    let exit = match Cli::parse() {
        Cli::Serve(args) => commands::serve(args),
        Cli::Call(args) => commands::call(args),
        Cli::Cid { files } => commands::cid(&files),
        Cli::Servers(args) => commands::servers(args),
        Cli::Describe { target, state } => commands::describe(&target, state),
        Cli::Mcp(state) => commands::mcp(state),
        Cli::Secret(command) => commands::secret(command),
        Cli::Oauth(command) => commands::oauth(command),
        Cli::Boot(command) => commands::boot(command),
        Cli::ImportOpenapi(args) => commands::import_openapi(args),
        Cli::Store(command) => commands::store(command),
    };
    exit.err().unwrap_or(ExitCode::SUCCESS)
}
