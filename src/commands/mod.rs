//! The CLI's commands. `main.rs` parses arguments into these structs and calls the matching function;
//! each returns `Ok` (exit 0) or the exit code after printing why: 1 invocation error, 2 usage error.

use std::io::Read;
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
use crate::observe::records::Retention;
use crate::runtime::{Runtime, Settings, default_data_dir};

mod boot;
mod logging;
mod oauth;
mod open_files;
mod openapi;
mod stdout;
mod store;
pub use boot::{BootCommand, PassphraseArg, boot};
pub use logging::LogFormat;
pub use oauth::{OAuthCommand, oauth};
pub use openapi::{ImportArgs, import_openapi};
pub use store::{StoreCommand, store};

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
    /// The store, when not the data directory's SQLite file: postgres://USER@HOST:PORT/DATABASE (shared
    /// by several instances) or sqlite:PATH. Default: $SWITCHBOARD_STORE.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

/// `call`'s data directory: `call` keeps `-d/--data` for the invocation's data, so only `--data-dir`.
#[derive(Debug, Clone, Args)]
pub struct CallDataDirArg {
    /// Data directory (store, keys, per-server databases). Default: $SWITCHBOARD_DATA, else the user's
    /// data directory (~/.local/share/switchboard).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store (`--store` of the other commands, which `call --store` is not). Default:
    /// $SWITCHBOARD_STORE.
    #[arg(long = "store-url", value_name = "URL")]
    pub store_url: Option<String>,
}

impl DataDirArg {
    fn settings(&self) -> Settings {
        let mut settings = Settings::new(self.data_dir.clone().unwrap_or_else(default_data_dir));
        settings.store = store_location(self.store.clone());
        settings
    }
}

/// The store a command was given, else the one `$SWITCHBOARD_STORE` names.
fn store_location(given: Option<String>) -> Option<String> {
    given.or_else(|| std::env::var(crate::store::STORE_ENV).ok()).filter(|location| !location.is_empty())
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Data directory (same as --data-dir).
    #[arg(long = "data", visible_alias = "data-dir", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The store, when not the data directory's SQLite file: postgres://USER@HOST:PORT/DATABASE (shared
    /// by several instances) or sqlite:PATH. Default: $SWITCHBOARD_STORE.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
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
    /// The longest any invocation may run, whatever its server's META.timeout_ms or its caller asks.
    #[arg(long, default_value_t = 600_000, value_name = "MS")]
    pub max_timeout_ms: u64,
    /// Memory the process may lose to scripts that overflow their stacks before it runs no more scripts.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    pub max_overflow_loss_mib: usize,
    /// A browser origin (`https://app.example.com`) whose pages may call this server besides its own;
    /// repeatable, `*` for any.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// A `Host` (name or `name:port`) this server answers to besides loopback, the listen address and
    /// the --public-url host; repeatable, `*` for any.
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
    /// How many times a webhook handler runs before its event is `dead` (the first run included).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub webhook_attempts: u32,
    /// The wait before a failed webhook handler's first retry; each later one doubles it (at most an
    /// hour), with jitter.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub webhook_backoff_ms: u64,
    /// List every enabled server as an MCP tool, not only those whose secrets or OAuth connection are set.
    #[arg(long)]
    pub mcp_all_tools: bool,
    /// Log lines as text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Require `Authorization: Bearer <token>` on GET /metrics (open by default, like /health).
    #[arg(long, value_name = "TOKEN")]
    pub metrics_token: Option<String>,
    /// Invocation records kept (the newest); 0 records none.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub records_max: usize,
    /// Days an invocation record is kept.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub records_max_age_days: u64,
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

/// How a command ends: `Ok` exits 0; `Err` carries the exit code, the reason already printed.
pub type Exit = Result<(), ExitCode>;

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("switchboard: {message}");
    ExitCode::from(USAGE_ERROR)
}

fn failed(error: impl std::borrow::Borrow<Error>) -> ExitCode {
    eprintln!("{}", error.borrow().to_json());
    ExitCode::from(INVOCATION_ERROR)
}

fn init_logging(default: &str) {
    logging::init(default, LogFormat::Text);
}

/// The tokio runtime every command uses. Scripts never run on its thread stacks (they have their own).
fn tokio_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| usage(format!("cannot start: {e}")))
}

fn open(settings: Settings) -> Result<Arc<Runtime>, ExitCode> {
    Runtime::open(settings).map_err(|e| {
        eprintln!("switchboard: cannot start: {}", e.message());
        ExitCode::from(INVOCATION_ERROR)
    })
}

/// `switchboard serve`.
pub fn serve(args: ServeArgs) -> Exit {
    logging::init("info", args.log_format);
    open_files::raise();
    let mut settings = Settings::new(args.data.unwrap_or_else(default_data_dir));
    settings.metrics_token = args.metrics_token.filter(|token| !token.is_empty());
    settings.records = Retention {
        max: args.records_max,
        max_age: Duration::from_secs(args.records_max_age_days.saturating_mul(86_400)),
        prune: true,
    };
    settings.store = store_location(args.store);
    settings.read_only = args.read_only;
    settings.max_body = args.max_body;
    settings.limits.max_timeout = Duration::from_millis(args.max_timeout_ms.max(1));
    settings.limits.overflow_loss = args.max_overflow_loss_mib.saturating_mul(1 << 20);
    settings.allowed_origins = args.allowed_origins;
    if !args.listen.ip().is_unspecified() {
        settings.allowed_hosts.push(args.listen.ip().to_string());
    }
    settings.allowed_hosts.extend(args.allowed_hosts);
    let mut token_lists = args.invoke_token.clone();
    token_lists.extend(std::env::var(INVOKE_TOKENS_ENV).ok());
    settings.invoke_access = crate::access::InvokeAccess::parse(&token_lists)
        .map_err(|problem| usage(format!("invocation tokens: {problem}")))?;
    if let Some(url) = &args.public_url
        && !matches!(url.scheme(), "http" | "https")
    {
        return Err(usage(format!("--public-url takes an http or https URL, not {url}")));
    }
    settings.public_url = args.public_url;
    settings.mcp_all_tools = args.mcp_all_tools;
    settings.webhook_retry.attempts = args.webhook_attempts;
    settings.webhook_retry.base = Duration::from_millis(args.webhook_backoff_ms.max(1));
    let boot = args.boot.or_else(|| {
        let local = PathBuf::from("boot/default.boot.json");
        local.exists().then_some(local)
    });
    if let Some(path) = &boot {
        let source = Source::open(path).map_err(|e| vec![e]);
        let (image, files) = source
            .and_then(|source| Ok((source.read_from_disk(path)?, source.files(path))))
            .map_err(|problems| usage(format!("cannot load {}: {}", path.display(), problems.join("; "))))?;
        (settings.boot, settings.boot_files) = (Some(image), files);
    }
    let watched = boot.zip(settings.boot.clone());
    tokio_runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| usage(format!("cannot listen on {}: {e}", args.listen)))?;
        let runtime = open(settings)?;
        let _watch = watched
            .map(|(path, image)| crate::reload::watch(runtime.clone(), path, image))
            .transpose()
            .map_err(failed)?;
        tokio::spawn(crate::webhooks::queue::worker(runtime.clone()));
        let address = listener.local_addr().map_or(args.listen, |a| a);
        tracing::info!(data = %runtime.data_dir().display(), servers = runtime.servers().len(), "ready");
        match std::env::var_os(crate::keys::ADMIN_TOKEN_ENV) {
            Some(_) => tracing::info!("admin token: from ${}", crate::keys::ADMIN_TOKEN_ENV),
            None => {
                tracing::info!("admin token: in {}", runtime.data_dir().join(crate::keys::ADMIN_TOKEN_FILE).display())
            }
        }
        stdout::line(format!("switchboard listening on http://{address}"))?;
        let served = crate::http::serve(runtime.clone(), listener).await;
        // The calls answered last are still in the record writer's batch.
        runtime.observer.flush();
        served.map_err(|e| failed(Error::internal("server", e)))
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
    let script = runtime.compile(&source).map_err(failed)?;
    Ok(Target::Script { script, name })
}

/// `switchboard describe`: a server's metadata and usage, as `GET /{name}` gives it.
pub fn describe(text: &str, state: DataDirArg) -> Exit {
    init_logging("warn");
    let runtime = open(state.settings())?;
    let described = match target(&runtime, text)? {
        Target::Script { script, name } => crate::server::describe(name.as_deref().unwrap_or(text), &script, None),
        Target::Cid(cid) => {
            let script = runtime.runner(&cid).and_then(|_| runtime.script(&cid)).map_err(failed)?;
            crate::server::describe(text, &script, None)
        }
        Target::Name(name) => {
            let server = runtime.existing(&name).map_err(failed)?;
            let script = server.script.as_ref().map_err(failed)?;
            crate::server::describe(&name, script, Some(server.enabled))
        }
    };
    stdout::line(serde_json::to_string_pretty(&described).unwrap_or_default())
}

/// `switchboard call`: one invocation in-process; the output goes to stdout.
pub fn call(args: CallArgs) -> Exit {
    init_logging("warn");
    let runtime = open(DataDirArg { data_dir: args.state.data_dir, store: args.state.store_url }.settings())?;
    let mut request = Invocation::new(target(&runtime, &args.target)?);
    request.endpoint = args.endpoint;
    request.method = args.method.to_ascii_uppercase();
    request.store_output = args.store;
    request.timeout = args.timeout_ms.map(Duration::from_millis);
    if let Some(data) = &args.data {
        request.data = read_data(data).map_err(|e| usage(format!("cannot read data {data}: {e}")))?;
    }
    if let Some(input) = &args.input {
        request.input = Some(input.parse::<Cid>().map_err(|e| usage(format!("'{input}' is not a CID: {e}")))?);
    }
    let invoked = tokio_runtime()?.block_on(runtime.invoke(request));
    // The record is written before the process ends.
    runtime.observer.flush();
    let reply = invoked.result.map_err(failed)?;
    let mut output = reply.output.body.to_vec();
    if reply.output.content_type != crate::engine::output::BINARY && !output.ends_with(b"\n") {
        output.push(b'\n');
    }
    if let Some(cid) = reply.output_cid {
        eprintln!("output stored as {cid}");
    }
    stdout::print(output)
}

/// `switchboard cid FILE…`: the CID of each file, as `CID  PATH` lines.
pub fn cid(files: &[PathBuf]) -> Exit {
    let mut outcome = Ok(());
    for file in files {
        match std::fs::read(file) {
            Ok(bytes) => stdout::line(format!("{}  {}", Cid::of(&bytes), file.display()))?,
            Err(e) => outcome = Err(usage(format!("cannot read {}: {e}", file.display()))),
        }
    }
    outcome
}

/// `switchboard mcp`: MCP over stdio until the client closes it. Logs go to stderr, never stdout,
/// which carries the protocol.
#[derive(Debug, Clone, Args)]
pub struct McpArgs {
    /// List every enabled server as a tool, not only those whose secrets or OAuth connection are set.
    #[arg(long)]
    pub all_tools: bool,
    #[command(flatten)]
    pub state: DataDirArg,
}

/// `switchboard mcp`: MCP over stdio.
pub fn mcp(args: McpArgs) -> Exit {
    init_logging("warn");
    let mut settings = args.state.settings();
    settings.mcp_all_tools = args.all_tools;
    let runtime = open(settings)?;
    let served = tokio_runtime()?.block_on(crate::mcp::stdio::serve(runtime.clone()));
    runtime.observer.flush();
    served.map_err(failed)
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
pub fn servers(args: ServersArgs) -> Exit {
    init_logging("warn");
    let runtime = open(args.state.settings())?;
    let registry = runtime.servers();
    let mut servers: Vec<_> = registry.values().cloned().collect();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    if args.markdown {
        return stdout::print(crate::docs::catalog(&servers));
    }
    let mut listing = format!("boot CID {}\n", runtime.boot_cid().map_err(failed)?);
    let width = servers.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    listing += &format!("{:width$}  {:8}  {:59}  TITLE\n", "NAME", "STATE", "CID");
    for server in servers {
        let state = if server.enabled { "enabled" } else { "disabled" };
        let title = match &server.script {
            Ok(script) => script.meta.title.clone(),
            Err(e) => format!("(does not load: {})", e.message()),
        };
        listing += &format!("{:width$}  {state:8}  {}  {title}\n", server.name, server.cid);
    }
    stdout::print(listing)
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SecretCommand {
    /// Store a secret; the value is read from stdin (never from the command line), one trailing
    /// newline dropped. An empty value is refused unless --allow-empty.
    Set {
        name: String,
        /// Store an empty value (otherwise an empty stdin is taken for a mistake and nothing is stored).
        #[arg(long)]
        allow_empty: bool,
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

/// `switchboard secret set|list|rm`. `set` and `rm` say what they did on stdout, and which servers
/// declare the secret, so that a misspelt name shows at once.
pub fn secret(command: SecretCommand) -> Exit {
    init_logging("warn");
    let state = match &command {
        SecretCommand::Set { state, .. } | SecretCommand::List(state) | SecretCommand::Rm { state, .. } => state,
    };
    let runtime = open(state.settings())?;
    let secrets = runtime.services.secrets();
    match &command {
        SecretCommand::Set { name, allow_empty, .. } => {
            crate::secrets::validate_name(name).map_err(usage)?;
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .map_err(|e| usage(format!("cannot read the value from stdin: {e}")))?;
            let value = crate::secrets::given_value(&value, *allow_empty)
                .map_err(|problem| usage(format!("{name}: {problem} (--allow-empty stores an empty value)")))?;
            let replaced = secrets.get(name).map_err(failed)?.is_some();
            secrets.set(name, value).map_err(failed)?;
            let done = if replaced { "replaced" } else { "stored" };
            stdout::line(format!("{done} secret {name}; {}", declared_by(&runtime, name)))
        }
        SecretCommand::List(_) => {
            let names = runtime.secret_names().map_err(failed)?;
            stdout::print(names.iter().map(|n| format!("{n}\n")).collect::<String>())
        }
        SecretCommand::Rm { name, .. } => match secrets.remove(name).map_err(failed)? {
            true => stdout::line(format!("removed secret {name}; {}", declared_by(&runtime, name))),
            false => Err(failed(Error::NotFound(format!("no secret named '{name}' in the store")))),
        },
    }
}

/// Which registered servers declare the secret `name` (among its alternatives), as a phrase.
fn declared_by(runtime: &Runtime, name: &str) -> String {
    let registry = runtime.servers();
    let mut servers: Vec<&str> = registry
        .values()
        .filter(|server| {
            let declared = server.script.as_ref().map(|s| s.meta.secrets.iter().flatten().any(|n| n == name));
            declared.unwrap_or(false)
        })
        .map(|server| server.name.as_str())
        .collect();
    servers.sort_unstable();
    match servers.is_empty() {
        true => "no registered server declares it".into(),
        false => format!("declared by {}", servers.join(", ")),
    }
}
