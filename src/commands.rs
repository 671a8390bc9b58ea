//! The CLI's commands. `main.rs` parses arguments into these structs and calls the matching function;
//! each returns the process exit code: 0 ok, 1 invocation error, 2 usage error.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::boot::Source;
use crate::cid::Cid;
use crate::engine::Data;
use crate::error::Error;
use crate::invoke::{Invocation, Target};
use crate::runtime::{Runtime, Settings, default_data_dir};

pub const INVOCATION_ERROR: u8 = 1;
pub const USAGE_ERROR: u8 = 2;
/// Invocation tokens from the environment (see [`access`](crate::access)).
pub const INVOKE_TOKENS_ENV: &str = "SWITCHBOARD_INVOKE_TOKENS";

/// Where the state lives; shared by every command that opens it (`--data`, or `--data-dir`).
#[derive(Debug, Clone, Args)]
pub struct DataDirArg {
    /// Data directory (store, keys, per-server databases). Default: $SWITCHBOARD_DATA, else the user's
    /// data directory (~/.local/share/switchboard).
    #[arg(long = "data", visible_alias = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `call`'s data directory: `call` keeps `-d/--data` for the invocation's data, so only `--data-dir`.
#[derive(Debug, Clone, Args)]
pub struct CallDataDirArg {
    /// Data directory (store, keys, per-server databases). Default: $SWITCHBOARD_DATA, else the user's
    /// data directory (~/.local/share/switchboard).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    fn settings(&self) -> Settings {
        Settings::new(self.data_dir.clone().unwrap_or_else(default_data_dir))
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Data directory (same as --data-dir).
    #[arg(long = "data", visible_alias = "data-dir", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Boot source to load (and watch). Default: ./boot/default.boot.json when it exists, else the
    /// data directory's state (a fresh one starts from the embedded default image).
    #[arg(long, value_name = "PATH")]
    pub boot: Option<PathBuf>,
    /// Refuse every management mutation with 403; invocations keep working.
    #[arg(long)]
    pub read_only: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024, value_name = "BYTES")]
    pub max_body: usize,
    /// A browser origin (`https://app.example.com`) that may use /mcp besides this server's own;
    /// repeatable, `*` for any.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// A `Host` (name or `name:port`) /mcp answers besides loopback and the listen address;
    /// repeatable, `*` for any.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// Require `Authorization: Bearer <token>` on invocations: `TOKEN` covers every server,
    /// `TOKEN=stripe+slack` only those. Repeatable; adds to $SWITCHBOARD_INVOKE_TOKENS (same syntax,
    /// comma-separated).
    #[arg(long = "invoke-token", value_name = "TOKEN[=SERVER+…]")]
    pub invoke_token: Vec<String>,
    /// The URL the outside world reaches this server at (behind a proxy or tunnel), e.g.
    /// https://hooks.example.com: OAuth redirect URIs (`{URL}/oauth/{name}/callback`) and webhook
    /// signatures that cover the URL (Twilio) use it. Default: the scheme and Host of the request.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<url::Url>,
}

#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// A server name, a script CID, or a path to a .rhai file (run without registering it).
    pub target: String,
    /// The endpoint passed to main (e.g. /v1/customers?limit=3).
    #[arg(default_value = "")]
    pub endpoint: String,
    /// The method passed to main.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,
    /// The data passed to main: JSON when it parses as JSON, else text; @FILE reads a file, @- stdin.
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// Use the stored blob with this CID as data.
    #[arg(long, value_name = "CID", conflicts_with = "data")]
    pub input: Option<String>,
    /// Store the output and print its CID on stderr.
    #[arg(long)]
    pub store: bool,
    /// Wall-clock limit of this call, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    #[command(flatten)]
    pub state: CallDataDirArg,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("switchboard: {message}");
    ExitCode::from(USAGE_ERROR)
}

fn failed(error: &Error) -> ExitCode {
    eprintln!("{}", error.to_json());
    ExitCode::from(INVOCATION_ERROR)
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// The tokio runtime every command uses. Scripts never run on its thread stacks (they have their own).
fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

fn open(settings: Settings) -> Result<Arc<Runtime>, ExitCode> {
    Runtime::open(settings).map_err(|e| {
        eprintln!("switchboard: cannot open the data directory: {}", e.message());
        ExitCode::from(INVOCATION_ERROR)
    })
}

/// `switchboard serve`.
pub fn serve(args: ServeArgs) -> ExitCode {
    init_logging("info");
    let mut settings = Settings::new(args.data.unwrap_or_else(default_data_dir));
    settings.read_only = args.read_only;
    settings.max_body = args.max_body;
    settings.allowed_origins = args.allowed_origins;
    if !args.listen.ip().is_unspecified() {
        settings.allowed_hosts.push(args.listen.ip().to_string());
    }
    settings.allowed_hosts.extend(args.allowed_hosts);
    let mut token_lists = args.invoke_token.clone();
    token_lists.extend(std::env::var(INVOKE_TOKENS_ENV).ok());
    settings.invoke_access = match crate::access::InvokeAccess::parse(&token_lists) {
        Ok(access) => access,
        Err(problem) => return usage(format!("invocation tokens: {problem}")),
    };
    if let Some(url) = &args.public_url
        && !matches!(url.scheme(), "http" | "https")
    {
        return usage(format!("--public-url takes an http or https URL, not {url}"));
    }
    settings.public_url = args.public_url;
    let boot = args.boot.or_else(|| {
        let local = PathBuf::from("boot/default.boot.json");
        local.exists().then_some(local)
    });
    if let Some(path) = &boot {
        let source = Source::open(path).map_err(|e| vec![e]);
        match source.and_then(|source| Ok((source.read_from_disk(path)?, source.files(path)))) {
            Ok((image, files)) => (settings.boot, settings.boot_files) = (Some(image), files),
            Err(problems) => return usage(format!("cannot load {}: {}", path.display(), problems.join("; "))),
        };
    }
    let watched = boot.zip(settings.boot.clone());
    let tokio = match tokio_runtime() {
        Ok(tokio) => tokio,
        Err(e) => return usage(format!("cannot start: {e}")),
    };
    tokio.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(e) => return usage(format!("cannot listen on {}: {e}", args.listen)),
        };
        let runtime = match open(settings) {
            Ok(runtime) => runtime,
            Err(code) => return code,
        };
        let _watch = match watched {
            Some((path, image)) => match crate::reload::watch(runtime.clone(), path, image) {
                Ok(watch) => Some(watch),
                Err(error) => return failed(&error),
            },
            None => None,
        };
        let address = listener.local_addr().map_or(args.listen, |a| a);
        tracing::info!(data = %runtime.data_dir().display(), servers = runtime.servers().len(), "ready");
        match std::env::var_os(crate::keys::ADMIN_TOKEN_ENV) {
            Some(_) => tracing::info!("admin token: from ${}", crate::keys::ADMIN_TOKEN_ENV),
            None => {
                tracing::info!("admin token: in {}", runtime.data_dir().join(crate::keys::ADMIN_TOKEN_FILE).display())
            }
        }
        match runtime.settings.invoke_access.is_open() {
            true => tracing::info!("invocations: open to every client that reaches {address}"),
            false => tracing::info!("invocations: need an invocation token"),
        }
        println!("switchboard listening on http://{address}");
        let _ = std::io::stdout().flush();
        match crate::http::serve(runtime, listener).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed(&Error::internal("server", e)),
        }
    })
}

fn read_data(text: &str) -> std::io::Result<Data> {
    let bytes = match text.strip_prefix('@') {
        Some("-") => {
            let mut buffer = Vec::new();
            std::io::stdin().read_to_end(&mut buffer)?;
            buffer
        }
        Some(path) => std::fs::read(path)?,
        None => text.as_bytes().to_vec(),
    };
    Ok(Data::Body(bytes.into()))
}

/// A command-line target: a `.rhai` file (compiled, not registered), a CID, or a server name.
fn target(runtime: &Runtime, text: &str) -> Result<Target, ExitCode> {
    if !text.ends_with(".rhai") {
        return Ok(Target::parse(text));
    }
    let source = std::fs::read(text).map_err(|e| usage(format!("cannot read {text}: {e}")))?;
    // The file runs as the server its name suggests (`stripe.rhai` as `stripe`), if that is a valid name.
    let name = std::path::Path::new(text).file_stem().and_then(|s| s.to_str()).map(str::to_owned);
    let name = name.filter(|n| crate::server::validate_name(n).is_ok());
    match runtime.compile(&source) {
        Ok(script) => Ok(Target::Script { script, name }),
        Err(error) => Err(failed(&error)),
    }
}

/// `switchboard describe`: a server's metadata and usage, as `GET /{name}` gives it.
pub fn describe(text: &str, state: DataDirArg) -> ExitCode {
    init_logging("warn");
    let runtime = match open(state.settings()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let described = match target(&runtime, text) {
        Err(code) => return code,
        Ok(Target::Script { script, name }) => crate::server::describe(name.as_deref().unwrap_or(text), &script, None),
        Ok(Target::Cid(cid)) => match runtime.script(&cid) {
            Ok(script) => crate::server::describe(text, &script, None),
            Err(error) => return failed(&error),
        },
        Ok(Target::Name(name)) => match runtime.existing(&name) {
            Err(error) => return failed(&error),
            Ok(server) => match &server.script {
                Ok(script) => crate::server::describe(&name, script, Some(server.enabled)),
                Err(error) => return failed(error),
            },
        },
    };
    println!("{}", serde_json::to_string_pretty(&described).unwrap_or_default());
    ExitCode::SUCCESS
}

/// `switchboard call`: one invocation in-process; the output goes to stdout.
pub fn call(args: CallArgs) -> ExitCode {
    init_logging("warn");
    let state = DataDirArg { data_dir: args.state.data_dir };
    let runtime = match open(state.settings()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let target = match target(&runtime, &args.target) {
        Ok(target) => target,
        Err(code) => return code,
    };
    let mut request = Invocation::new(target);
    request.endpoint = args.endpoint;
    request.method = args.method.to_ascii_uppercase();
    request.store_output = args.store;
    request.timeout = args.timeout_ms.map(Duration::from_millis);
    if let Some(data) = &args.data {
        request.data = match read_data(data) {
            Ok(data) => data,
            Err(e) => return usage(format!("cannot read data {data}: {e}")),
        };
    }
    if let Some(input) = &args.input {
        request.input = match input.parse::<Cid>() {
            Ok(cid) => Some(cid),
            Err(e) => return usage(format!("'{input}' is not a CID: {e}")),
        };
    }
    let tokio = match tokio_runtime() {
        Ok(tokio) => tokio,
        Err(e) => return usage(format!("cannot start: {e}")),
    };
    let invoked = tokio.block_on(runtime.invoke(request));
    match invoked.result {
        Ok(reply) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&reply.output.body);
            if reply.output.content_type != crate::engine::output::BINARY && !reply.output.body.ends_with(b"\n") {
                let _ = stdout.write_all(b"\n");
            }
            if let Some(cid) = reply.output_cid {
                eprintln!("output stored as {cid}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => failed(&error),
    }
}

/// `switchboard cid FILE…`: the CID of each file, as `CID  PATH` lines.
pub fn cid(files: &[PathBuf]) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for file in files {
        match std::fs::read(file) {
            Ok(bytes) => println!("{}  {}", Cid::of(&bytes), file.display()),
            Err(e) => code = usage(format!("cannot read {}: {e}", file.display())),
        }
    }
    code
}

/// `switchboard mcp`: MCP over stdio until the client closes it. Logs go to stderr, never stdout,
/// which carries the protocol.
pub fn mcp(state: DataDirArg) -> ExitCode {
    init_logging("warn");
    let runtime = match open(state.settings()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let tokio = match tokio_runtime() {
        Ok(tokio) => tokio,
        Err(e) => return usage(format!("cannot start: {e}")),
    };
    match tokio.block_on(crate::mcp::stdio::serve(runtime)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => failed(&error),
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServersArgs {
    /// Print the catalog page (Markdown) instead of the list.
    #[arg(long)]
    pub markdown: bool,
    #[command(flatten)]
    pub state: DataDirArg,
}

/// `switchboard servers`: the registry, one server a line (or the catalog page).
pub fn servers(args: ServersArgs) -> ExitCode {
    init_logging("warn");
    let runtime = match open(args.state.settings()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    if !args.markdown {
        match runtime.boot_cid() {
            Ok(cid) => println!("boot CID {cid}"),
            Err(error) => return failed(&error),
        }
    }
    let registry = runtime.servers();
    let mut servers: Vec<_> = registry.values().cloned().collect();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    if args.markdown {
        print!("{}", crate::docs::catalog(&servers));
        return ExitCode::SUCCESS;
    }
    let width = servers.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:8}  {:59}  TITLE", "NAME", "STATE", "CID");
    for server in servers {
        let state = if server.enabled { "enabled" } else { "disabled" };
        let title = match &server.script {
            Ok(script) => script.meta.title.clone(),
            Err(e) => format!("(does not load: {})", e.message()),
        };
        println!("{:width$}  {state:8}  {}  {title}", server.name, server.cid);
    }
    ExitCode::SUCCESS
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SecretCommand {
    /// Store a secret; the value is read from stdin (never from the command line), one trailing
    /// newline dropped.
    Set {
        name: String,
        #[command(flatten)]
        state: DataDirArg,
    },
    /// List the names of stored secrets (never values).
    List(DataDirArg),
    /// Delete a stored secret.
    Rm {
        name: String,
        #[command(flatten)]
        state: DataDirArg,
    },
}

/// `switchboard secret set|list|rm`.
pub fn secret(command: SecretCommand) -> ExitCode {
    init_logging("warn");
    let state = match &command {
        SecretCommand::Set { state, .. } | SecretCommand::List(state) | SecretCommand::Rm { state, .. } => state,
    };
    let runtime = match open(state.settings()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let secrets = runtime.services.secrets();
    let outcome = match &command {
        SecretCommand::Set { name, .. } => {
            if let Err(problem) = crate::secrets::validate_name(name) {
                return usage(problem);
            }
            let mut value = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut value) {
                return usage(format!("cannot read the value from stdin: {e}"));
            }
            secrets.set(name, crate::secrets::without_trailing_newline(&value))
        }
        SecretCommand::List(_) => runtime.secret_names().map(|names| names.iter().for_each(|n| println!("{n}"))),
        SecretCommand::Rm { name, .. } => match secrets.remove(name) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NotFound(format!("no secret named '{name}' in the store"))),
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => failed(&error),
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum OAuthCommand {
    /// Start connecting a server through the browser (authorization code with PKCE): prints the URL to
    /// open. The running server at --public-url finishes the connection; the URL is valid 10 minutes.
    Connect {
        name: String,
        /// The URL browsers reach the running server at (as given to `serve --public-url`).
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
        public_url: url::Url,
        #[command(flatten)]
        state: DataDirArg,
    },
}

/// `switchboard oauth connect`.
pub fn oauth(command: OAuthCommand) -> ExitCode {
    init_logging("warn");
    let OAuthCommand::Connect { name, public_url, state } = command;
    let runtime = match open(state.settings()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match crate::oauth::connect::start(&runtime, &name, public_url.as_str()) {
        Ok(started) => {
            println!("{}", started.authorize_url);
            eprintln!("open this URL within 10 minutes; the provider returns to {}", started.redirect_uri);
            ExitCode::SUCCESS
        }
        Err(error) => failed(&error),
    }
}

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
    crate::runtime::checker().map_err(|error| failed(&error))
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
pub fn boot(command: BootCommand) -> ExitCode {
    init_logging("warn");
    match command {
        BootCommand::Pack { source, output } => {
            let engine = match checker() {
                Ok(engine) => engine,
                Err(code) => return code,
            };
            let image = match checked(&source, None, compile_with(&engine)) {
                Ok(image) => image,
                Err(code) => return code,
            };
            write_image(&image, None, &output)
        }
        BootCommand::Export { output, with_secrets, passphrase, state } => {
            let passphrase = match passphrase.read() {
                Ok(passphrase) => passphrase,
                Err(code) => return code,
            };
            if with_secrets && passphrase.is_none() {
                return usage(
                    "--with-secrets needs a passphrase: --passphrase-file FILE or $SWITCHBOARD_IMAGE_PASSPHRASE",
                );
            }
            let runtime = match open(state.settings()) {
                Ok(runtime) => runtime,
                Err(code) => return code,
            };
            match runtime.snapshot(with_secrets) {
                Ok(image) => write_image(&image, passphrase.as_deref().filter(|_| with_secrets), &output),
                Err(error) => failed(&error),
            }
        }
        BootCommand::Import { image, passphrase, state } => {
            let passphrase = match passphrase.read() {
                Ok(passphrase) => passphrase,
                Err(code) => return code,
            };
            let runtime = match open(state.settings()) {
                Ok(runtime) => runtime,
                Err(code) => return code,
            };
            let image = match checked(&image, passphrase.as_deref(), |s| runtime.compile(s).map(drop)) {
                Ok(image) => image,
                Err(code) => return code,
            };
            match runtime.import(&image, crate::store::Origin::Boot).and_then(|()| runtime.boot_cid()) {
                Ok(cid) => {
                    for server in &image.servers {
                        if let Ok(script) = runtime.compile(&server.script) {
                            eprintln!("  {}: {}", server.name, crate::server::asks_line(&server.name, &script.meta));
                        }
                    }
                    eprintln!("imported {} servers; boot CID {cid}", image.servers.len());
                    ExitCode::SUCCESS
                }
                Err(error) => failed(&error),
            }
        }
        BootCommand::Diff { a, b } => {
            let engine = match checker() {
                Ok(engine) => engine,
                Err(code) => return code,
            };
            let (a, b) = match (checked(&a, None, compile_with(&engine)), checked(&b, None, compile_with(&engine))) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(code), _) | (_, Err(code)) => return code,
            };
            let asks = |name: &str, script: &[u8]| {
                engine.compile(script).ok().map(|script| crate::server::asks_line(name, &script.meta))
            };
            let lines = crate::boot::diff(&a, &b, asks);
            if lines.is_empty() {
                println!("no differences");
            }
            lines.iter().for_each(|line| println!("{line}"));
            ExitCode::SUCCESS
        }
        BootCommand::Verify { image, passphrase } => {
            let passphrase = match passphrase.read() {
                Ok(passphrase) => passphrase,
                Err(code) => return code,
            };
            let engine = match checker() {
                Ok(engine) => engine,
                Err(code) => return code,
            };
            match checked(&image, passphrase.as_deref(), compile_with(&engine)) {
                Ok(checked) => match checked.cid() {
                    Ok(cid) => {
                        println!("ok: {} servers, boot CID {cid}", checked.servers.len());
                        ExitCode::SUCCESS
                    }
                    Err(problem) => failed(&Error::Internal(problem)),
                },
                Err(code) => code,
            }
        }
    }
}

fn write_image(image: &crate::boot::Image, passphrase: Option<&str>, output: &std::path::Path) -> ExitCode {
    let bytes = match crate::boot::pack(image, passphrase) {
        Ok(bytes) => bytes,
        Err(problem) => return failed(&Error::Internal(problem)),
    };
    if let Err(e) = std::fs::write(output, &bytes) {
        return usage(format!("cannot write {}: {e}", output.display()));
    }
    eprintln!(
        "{}: {} servers, {}",
        output.display(),
        image.servers.len(),
        match passphrase {
            Some(_) => "secret values sealed (not reproducible)".to_string(),
            None => format!("boot CID {}", Cid::of(&bytes)),
        }
    );
    ExitCode::SUCCESS
}
