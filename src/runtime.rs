//! The runtime: the store, the engine, and the in-memory registry every request reads.
//!
//! The registry is an immutable map of name → [`Server`] behind an `ArcSwap`: a request loads it once
//! (a pointer read) and keeps serving from that snapshot even if a change is swapped in meanwhile, which
//! is what makes swaps atomic for requests in flight. Compiled scripts are cached by CID, so a name that
//! moves back to an earlier CID, or two names on one script, cost one compile.
//!
//! Every change goes store-first: validate and compile, commit to the store, then rebuild the snapshot
//! from what the store says. The store is the truth; the snapshot is derived from it. Writers take
//! turns ([`Runtime::commit`]): two concurrent edits could otherwise each commit, then publish their
//! snapshots in the opposite order, leaving the one served older than the one stored. Changes another
//! process commits reach the snapshot the same way, through [`crate::follow`], under the same turn.
//! Either way only what a commit changed is re-read ([`Runtime::catch_up`]): one edit among 10 000
//! servers reads one server's row and history, not the registry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::boot::{Image, ImageServer, Managed};
use crate::cid::Cid;
use crate::engine::{Limits, Script, ScriptEngine, Threads};
use crate::error::{Error, Result};
use crate::keys;
use crate::modules::db::Databases;
use crate::modules::http::HttpSettings;
use crate::modules::services::Services;
use crate::secrets::Vault;
use crate::server::{Server, validate_name};
use crate::store::{Binding, Change, Changed, Op, Origin, ServerRecord, SqliteStore, Store};

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// The store when it is not the SQLite file of the data directory: `postgres://…` or
    /// `sqlite:PATH` (see [`crate::store::open`]).
    pub store: Option<String>,
    pub limits: Limits,
    /// Refuse every mutation through the management API.
    pub read_only: bool,
    /// Largest request body accepted over HTTP.
    pub max_body: usize,
    /// A boot source to load at start over the state the data directory holds: its servers are bound
    /// from their files, servers created through the API stay.
    pub boot: Option<Image>,
    /// The script file of every server the boot source names (see [`crate::boot::Managed`]).
    pub boot_files: BTreeMap<String, PathBuf>,
    pub http: HttpSettings,
    /// `Host` values every route answers to (against DNS rebinding), besides the public URL's host;
    /// `*` for any. See [`crate::http::browser`].
    pub allowed_hosts: Vec<String>,
    /// Browser origins besides the server's own whose pages may call it (`*` for any).
    pub allowed_origins: Vec<String>,
    /// Who may invoke over HTTP and MCP (open when no token is set).
    pub invoke_access: crate::access::InvokeAccess,
    /// The URL the outside world reaches this runtime at (`serve --public-url`): OAuth redirect URIs
    /// and webhook signatures that cover the URL (Twilio) use it; else the scheme and Host of the request.
    pub public_url: Option<url::Url>,
    pub webhook_retry: WebhookRetry,
    /// List every enabled server as an MCP tool, not only those that can run (`--mcp-all-tools`).
    pub mcp_all_tools: bool,
    /// How many invocation records are kept, and for how long.
    pub records: crate::observe::records::Retention,
    /// The bearer token `GET /metrics` needs, when one is set (else it is open like `/health`).
    pub metrics_token: Option<String>,
}

/// How the webhook queue retries a handler that failed (`serve --webhook-attempts`,
/// `--webhook-backoff-ms`): the wait before attempt n+1 is `base`·2^(n-1) (at most `cap`) with jitter,
/// and after `attempts` runs the event is `dead`.
#[derive(Debug, Clone)]
pub struct WebhookRetry {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for WebhookRetry {
    /// Ten runs over some three hours: longer than most outages of the services handlers call.
    fn default() -> WebhookRetry {
        WebhookRetry { attempts: 10, base: Duration::from_secs(30), cap: Duration::from_secs(3600) }
    }
}

impl Settings {
    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            data_dir,
            store: None,
            limits: Limits::default(),
            read_only: false,
            max_body: 10 * 1024 * 1024,
            boot: None,
            boot_files: BTreeMap::new(),
            http: HttpSettings::default(),
            allowed_hosts: ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec(),
            allowed_origins: Vec::new(),
            invoke_access: Default::default(),
            public_url: None,
            webhook_retry: WebhookRetry::default(),
            mcp_all_tools: false,
            records: Default::default(),
            metrics_token: None,
        }
    }
}

/// The default data directory: `$SWITCHBOARD_DATA`, else the user's data directory.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("SWITCHBOARD_DATA")
        .map(PathBuf::from)
        .or_else(|| dirs::data_dir().map(|d| d.join("switchboard")))
        .unwrap_or_else(|| PathBuf::from(".switchboard"))
}

/// The engine scripts are compiled and run with: the sandbox, and every native module bound to
/// `services`. `serve`, the CLI and the image tools all build it here, so they accept the same scripts.
fn engine(limits: Limits, services: Arc<Services>) -> ScriptEngine {
    ScriptEngine::new(limits, |engine| crate::modules::register(engine, services))
}

/// The engine for checking images without a data directory (`boot pack`, `diff`, `verify`): the one
/// every runtime uses, its modules bound to an empty in-memory store they never get to use (a
/// script's top level may not reach the network, a database or secrets).
pub fn checker() -> Result<ScriptEngine> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory()?);
    let vault = Vault::new(&rand::random());
    let services = Services::new(store, vault, Databases::new(PathBuf::new()), HttpSettings::default())?;
    Ok(engine(Limits::default(), Arc::new(services)))
}

type Registry = HashMap<String, Arc<Server>>;

/// Which servers outside an imported image survive the import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// The store holds exactly the image (an import).
    Nothing,
    /// Servers last bound through the API stay (a boot source loaded at start).
    CreatedThroughApi,
}

/// Store fact recording that the data directory has been given its first image.
const SEEDED: &str = "seeded";

pub struct Runtime {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: ScriptEngine,
    /// The script threads that fibers (scripts waiting on I/O) run on.
    pub(crate) threads: Threads,
    pub(crate) services: Arc<Services>,
    /// Metrics and invocation records.
    pub(crate) observer: crate::observe::Observer,
    /// The token every management mutation must present.
    pub(crate) admin_token: String,
    registry: ArcSwap<Registry>,
    /// The server each runnable CID runs as (see [`crate::server::runners`]).
    runners: ArcSwap<HashMap<Cid, String>>,
    /// Every binding of every name, oldest first, as the store last said: what runners are chosen from.
    bindings: Mutex<Vec<(String, Binding)>>,
    scripts: RwLock<HashMap<Cid, Arc<Script>>>,
    boot_cid: Mutex<Option<Cid>>,
    last_errors: Mutex<HashMap<String, Error>>,
    /// The servers the boot source manages, which the management API may not change.
    pub managed: Managed,
    /// Held from a commit until the snapshot built from it is published: one writer at a time.
    writer: Mutex<()>,
    pub settings: Settings,
}

impl Runtime {
    /// Opens the data directory (creating it), loads the boot image given in the settings (or, into a
    /// fresh directory, the embedded one), and loads every server.
    pub fn open(settings: Settings) -> Result<Arc<Runtime>> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| Error::internal(&format!("cannot create {}", settings.data_dir.display()), e))?;
        let store = crate::store::open(settings.store.as_deref(), &settings.data_dir)?;
        let master_key = keys::master_key(&settings.data_dir)?;
        let vault = Vault::new(&master_key);
        crate::secrets::claim(store.as_ref(), &vault)?;
        let databases = Databases::for_store(settings.store.as_deref(), &settings.data_dir, &master_key)?;
        let services = Arc::new(Services::new(store.clone(), vault, databases, settings.http.clone())?);
        let runtime = Arc::new(Runtime {
            engine: engine(settings.limits.clone(), services.clone()),
            threads: Threads::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            admin_token: keys::admin_token(&settings.data_dir)?,
            observer: crate::observe::Observer::new(services.metrics.clone(), store.clone(), settings.records),
            store,
            services,
            registry: ArcSwap::default(),
            runners: ArcSwap::default(),
            bindings: Mutex::default(),
            scripts: RwLock::default(),
            boot_cid: Mutex::default(),
            last_errors: Mutex::default(),
            writer: Mutex::default(),
            managed: Managed::new(settings.boot_files.clone()),
            settings,
        });
        if let Some(image) = &runtime.settings.boot {
            runtime.replace(image, Origin::Boot, Keep::CreatedThroughApi)?;
        } else {
            // Instances starting at once on one new store seed it once: the others find it seeded.
            let _turn = runtime.store.lock(SEEDED)?;
            if runtime.store.fact(SEEDED)?.is_none() {
                let image = crate::boot::embedded().map_err(|problems| {
                    Error::Internal(format!("the embedded image is broken: {}", problems.join("; ")))
                })?;
                runtime.import(&image, Origin::Boot)?;
            }
        }
        // Subscribed before the first read, so no commit can fall between the two.
        let weak = Arc::downgrade(&runtime);
        crate::follow::follow(runtime.store.changes(), move |changed| {
            weak.upgrade().map(|runtime| runtime.catch_up(changed))
        });
        runtime.refresh()?;
        Ok(runtime)
    }

    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    /// The current registry snapshot.
    pub fn servers(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    pub fn server(&self, name: &str) -> Option<Arc<Server>> {
        self.registry.load().get(name).cloned()
    }

    /// The server a CID invocation runs as: an enabled server an operator bound `cid` to (see
    /// [`crate::server::runners`]), if there is one.
    pub fn server_bound_to(&self, cid: &Cid) -> Option<String> {
        let name = self.runners.load().get(cid).cloned()?;
        self.server(&name).is_some_and(|server| server.enabled).then_some(name)
    }

    /// [`server_bound_to`](Self::server_bound_to), or `not_found`: a CID nobody bound is data, and never
    /// runs or even compiles (a script's top level runs when it compiles).
    pub fn runner(&self, cid: &Cid) -> Result<String> {
        self.server_bound_to(cid).ok_or_else(|| {
            Error::NotFound(format!(
                "no enabled server was bound to {cid}: a CID runs only as a script an operator bound to a server"
            ))
        })
    }

    /// Compiles `source`, or returns the cached script with the same CID.
    pub fn compile(&self, source: &[u8]) -> Result<Arc<Script>> {
        let cid = Cid::of(source);
        if let Some(script) = self.cached(&cid) {
            return Ok(script);
        }
        let script = Arc::new(self.engine.compile(source)?);
        let mut scripts = self.scripts.write().unwrap_or_else(|p| p.into_inner());
        Ok(scripts.entry(cid).or_insert(script).clone())
    }

    /// Compiles and loads `source` as a server's script would be, without keeping it: for checking a
    /// script that may never be bound (an import's dry run).
    pub fn load(&self, source: &[u8]) -> Result<Script> {
        self.engine.compile(source)
    }

    pub(crate) fn cached(&self, cid: &Cid) -> Option<Arc<Script>> {
        self.scripts.read().unwrap_or_else(|p| p.into_inner()).get(cid).cloned()
    }

    /// The script stored under `cid`, compiled.
    pub fn script(&self, cid: &Cid) -> Result<Arc<Script>> {
        if let Some(script) = self.cached(cid) {
            return Ok(script);
        }
        let source = self.store.blob(cid)?.ok_or_else(|| Error::NotFound(format!("no blob {cid}")))?;
        self.compile(&source)
    }

    /// Rebuilds the registry, variables and opened-secrets snapshots from the store. A server whose
    /// script no longer compiles stays listed with its error; every other server keeps serving.
    pub fn refresh(&self) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.rebuild()
    }

    /// Brings the snapshots up to date with what the store says `changed`.
    pub fn catch_up(&self, changed: &[Changed]) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.update(changed)
    }

    /// Commits `change` and publishes the snapshot of what the store then holds, as one writer.
    pub fn commit(&self, change: &Change) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.store.commit(change)?;
        self.update(&change.changed())
    }

    /// Re-reads what `changed` names (everything, if it says so); callers hold the writer lock.
    fn update(&self, changed: &[Changed]) -> Result<()> {
        if changed.contains(&Changed::Everything) {
            return self.rebuild();
        }
        let mut servers = Vec::new();
        for item in changed {
            match item {
                Changed::Server { name, .. } => servers.push(name.as_str()),
                // Both are part of the state's image: its CID changes with them.
                Changed::Variables => {
                    self.services.variables.store(Arc::new(self.store.variables()?));
                    self.forget_boot_cid();
                }
                Changed::Secret { .. } => {
                    self.services.secrets().reload()?;
                    self.forget_boot_cid();
                }
                // Tokens are re-read from the store when they expire; nothing served changes.
                // The webhook queue follows events itself.
                Changed::Connection { .. } | Changed::Events | Changed::Everything => {}
            }
        }
        if !servers.is_empty() {
            self.update_servers(&servers)?;
        }
        Ok(())
    }

    /// Re-reads the servers `names` and their histories, and publishes the registry with them.
    fn update_servers(&self, names: &[&str]) -> Result<()> {
        let mut registry = Registry::clone(&self.registry.load());
        let mut bindings = self.bindings.lock().unwrap_or_else(|p| p.into_inner());
        for name in names {
            match self.store.server(name)? {
                Some(record) => registry.insert(record.name.clone(), Arc::new(self.server_of(record))),
                None => registry.remove(*name),
            };
            // A history only grows: what is new of it is what follows the bindings already held.
            let held = bindings.iter().filter(|(bound, _)| bound == name).count();
            let history = self.store.history(name)?;
            bindings.extend(history.into_iter().skip(held).map(|binding| (name.to_string(), binding)));
        }
        self.publish(registry, &bindings);
        Ok(())
    }

    /// A server as the store holds it, its script compiled (or the error that prevents it).
    fn server_of(&self, record: ServerRecord) -> Server {
        let script = self.script(&record.cid);
        if let Err(error) = &script {
            tracing::error!(server = %record.name, cid = %record.cid, "stored script does not load: {}", error.message());
        }
        Server { name: record.name, cid: record.cid, enabled: record.enabled, script }
    }

    /// Compiles the scripts of `records` that are not cached yet, reading their sources in one go.
    fn compile_uncached(&self, records: &[ServerRecord]) -> Result<()> {
        let missing: HashSet<Cid> = records.iter().map(|r| r.cid).filter(|cid| self.cached(cid).is_none()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        for (_, source) in self.store.blobs(&missing.into_iter().collect::<Vec<_>>())? {
            // A script that does not compile is reported by `server_of`, server by server.
            let _ = self.compile(&source);
        }
        Ok(())
    }

    /// Serves `registry`, with the runners chosen from `bindings`.
    fn publish(&self, registry: Registry, bindings: &[(String, Binding)]) {
        // Runners first: a server just disabled must not run by CID meanwhile (and one just enabled is
        // checked against the registry as well).
        self.runners.store(Arc::new(crate::server::runners(&registry, bindings)));
        self.observer.metrics.servers_loaded.set(registry.len() as i64);
        self.registry.store(Arc::new(registry));
        self.forget_boot_cid();
    }

    /// Sets or removes secrets through `change`, as one writer: the boot CID asked for next follows at
    /// once, instead of when the store's change feed reports the commit.
    pub fn change_secrets<T>(&self, change: impl FnOnce(&crate::secrets::Secrets<'_>) -> Result<T>) -> Result<T> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let changed = change(&self.services.secrets());
        self.forget_boot_cid();
        changed
    }

    /// Drops the boot CID computed for the state before a change, so that the next ask computes it anew.
    fn forget_boot_cid(&self) {
        *self.boot_cid.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The snapshot of what the store holds; callers hold the writer lock.
    fn rebuild(&self) -> Result<()> {
        let records = self.store.servers()?;
        self.compile_uncached(&records)?;
        let (stored_bindings, variables) = (self.store.bindings()?, self.store.variables()?);
        let registry: Registry =
            records.into_iter().map(|record| (record.name.clone(), Arc::new(self.server_of(record)))).collect();
        let mut bindings = self.bindings.lock().unwrap_or_else(|p| p.into_inner());
        *bindings = stored_bindings;
        self.publish(registry, &bindings);
        self.services.variables.store(Arc::new(variables));
        self.services.secrets().reload()
    }

    /// The CID of the current state packed as an image, computed once per change.
    pub fn boot_cid(&self) -> Result<Cid> {
        let mut cached = self.boot_cid.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cid) = *cached {
            return Ok(cid);
        }
        let cid = self.snapshot(false)?.cid().map_err(Error::Internal)?;
        *cached = Some(cid);
        Ok(cid)
    }

    /// Replaces every variable.
    pub fn set_variables(&self, variables: std::collections::BTreeMap<String, String>) -> Result<()> {
        self.apply(Op::SetVariables(variables))
    }

    /// Sets some registry variables, keeping the others.
    pub fn merge_variables(&self, values: std::collections::BTreeMap<String, String>) -> Result<()> {
        let mut variables = self.store.variables()?;
        variables.extend(values);
        self.set_variables(variables)
    }

    /// The last change to `name` that was refused (a watched file that did not compile), if any.
    pub fn last_error(&self, name: &str) -> Option<Error> {
        self.last_errors.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub(crate) fn set_last_error(&self, name: &str, error: Option<Error>) {
        let mut errors = self.last_errors.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(error) => errors.insert(name.to_owned(), error),
            None => errors.remove(name),
        };
    }

    /// Every problem that would make `image` unfit to import: names, duplicates, scripts.
    pub fn check(&self, image: &Image) -> Vec<String> {
        image.check(|source| self.compile(source).map(drop))
    }

    /// Makes the store hold exactly `image`: every server in it bound (a changed binding recorded in
    /// the history), every server not in it removed, its variables, and its secret values if it carries
    /// any. Everything is checked first; any problem refuses the whole image, listing every problem,
    /// and changes nothing. The change is one transaction.
    pub fn import(&self, image: &Image, origin: Origin) -> Result<()> {
        self.replace(image, origin, Keep::Nothing)
    }

    /// Imports `image`, keeping the servers outside it that `keep` says.
    fn replace(&self, image: &Image, origin: Origin, keep_also: Keep) -> Result<()> {
        let problems = self.check(image);
        if !problems.is_empty() {
            return Err(Error::InvalidImage { problems });
        }
        // The change is computed from the state it replaces: no other write may come between.
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current: HashMap<String, ServerRecord> =
            self.store.servers()?.into_iter().map(|record| (record.name.clone(), record)).collect();
        let mut change = Change::default();
        for server in &image.servers {
            let cid = Cid::of(&server.script);
            match current.get(&server.name) {
                Some(record) if record.cid == cid => {
                    if record.enabled != server.enabled {
                        change.op(Op::SetEnabled { name: server.name.clone(), enabled: server.enabled });
                    }
                }
                _ => {
                    change.blob(server.script.clone());
                    change.op(Op::Bind { name: server.name.clone(), cid, origin, enabled: Some(server.enabled) });
                }
            }
        }
        let keep: HashSet<&str> = image.servers.iter().map(|s| s.name.as_str()).collect();
        for name in current.into_keys().filter(|name| !keep.contains(name.as_str())) {
            if keep_also == Keep::CreatedThroughApi
                && self.store.history(&name)?.last().is_some_and(|b| b.origin == Origin::Api)
            {
                continue;
            }
            change.op(Op::Remove { name });
        }
        change.op(Op::SetVariables(image.variables.clone()));
        for (name, value) in &image.secret_values.0 {
            change.op(Op::SetSecret { name: name.clone(), sealed: self.services.vault.seal(name, value) });
        }
        change.op(Op::SetFact { key: SEEDED.into(), value: "1".into() });
        self.store.commit(&change)?;
        self.rebuild()
    }

    /// The current state as an image; with `with_secret_values`, the stored secret values too.
    pub fn snapshot(&self, with_secret_values: bool) -> Result<Image> {
        let mut image =
            Image { variables: self.store.variables()?, secrets: self.store.secret_names()?, ..Image::default() };
        for record in self.store.servers()? {
            let missing = || Error::Internal(format!("blob {} is missing from the store", record.cid));
            let script = self.store.blob(&record.cid)?.ok_or_else(missing)?;
            image.servers.push(ImageServer { name: record.name, script, enabled: record.enabled });
        }
        if with_secret_values {
            let secrets = self.services.secrets();
            for name in &image.secrets {
                if let Some(value) = secrets.get(name)? {
                    image.secret_values.0.insert(name.clone(), value);
                }
            }
        }
        Ok(image)
    }

    /// Compiles `source` and binds `name` to it (creating the server, enabled, if it is new). A script
    /// that does not compile is refused and nothing changes.
    pub fn put_script(&self, name: &str, source: &[u8], origin: Origin) -> Result<Cid> {
        validate_name(name).map_err(Error::BadRequest)?;
        if origin == Origin::Api {
            self.managed.check(name)?;
        }
        let script = self.compile(source)?;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.server(name).is_none_or(|server| server.cid != script.cid) {
            let mut change = Change::default();
            change.blob(source.to_vec());
            change.op(Op::Bind { name: name.into(), cid: script.cid, origin, enabled: None });
            self.store.commit(&change)?;
            self.update(&change.changed())?;
        }
        self.set_last_error(name, None);
        Ok(script.cid)
    }

    /// The registered server `name`, or `not_found`.
    /// The server `name`, or `not_found` suggesting the closest registered name.
    pub fn existing(&self, name: &str) -> Result<Arc<Server>> {
        self.server(name).ok_or_else(|| {
            let registry = self.servers();
            let suggestion = crate::server::closest(name, registry.keys().map(String::as_str))
                .map(|close| format!(": did you mean '{close}'?"))
                .unwrap_or_default();
            Error::NotFound(format!("no server named '{name}'{suggestion}"))
        })
    }

    /// The bindings of `name`, oldest first; `not_found` for a name that is neither served nor was ever
    /// bound.
    pub fn history(&self, name: &str) -> Result<Vec<Binding>> {
        let history = self.store.history(name)?;
        if history.is_empty() && self.server(name).is_none() {
            return Err(Error::NotFound(format!("no server named '{name}' has a history")));
        }
        Ok(history)
    }

    /// The blob stored under `cid`, or `not_found`.
    pub fn blob(&self, cid: &Cid) -> Result<Vec<u8>> {
        self.store.blob(cid)?.ok_or_else(|| Error::NotFound(format!("no blob {cid}")))
    }

    /// The names of the stored secrets (never their values).
    pub fn secret_names(&self) -> Result<Vec<String>> {
        self.store.secret_names()
    }

    /// Commits one registry operation and serves what the store then holds.
    fn apply(&self, op: Op) -> Result<()> {
        let mut change = Change::default();
        change.op(op);
        self.commit(&change)
    }

    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        self.existing(name)?;
        self.managed.check(name)?;
        self.apply(Op::SetEnabled { name: name.into(), enabled })
    }

    /// Removes a server; its history stays, so a later edit or rollback can bring it back.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.existing(name)?;
        self.managed.check(name)?;
        self.apply(Op::Remove { name: name.into() })?;
        self.set_last_error(name, None);
        Ok(())
    }

    /// Binds `name` back to a CID from its history.
    pub fn rollback(&self, name: &str, cid: &Cid) -> Result<()> {
        self.managed.check(name)?;
        if !self.history(name)?.iter().any(|binding| binding.cid == *cid) {
            return Err(Error::BadRequest(format!("{cid} is not in the history of '{name}'")));
        }
        self.script(cid)?;
        self.apply(Op::Bind { name: name.into(), cid: *cid, origin: Origin::Api, enabled: None })
    }

    /// Runs `work` on the blocking pool. It starts at once; the returned future only waits for it, so it
    /// stays small in the futures that await it.
    pub fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Runtime) -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static {
        let runtime = self.clone();
        let handle = tokio::task::spawn_blocking(move || work(&runtime));
        async move { handle.await.map_err(|e| Error::internal("blocking task", e))? }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::runtime::{Runtime, Settings};

    /// Waits (bounded only so that a broken feed fails instead of hanging) until `seen` holds.
    async fn eventually(mut seen: impl FnMut() -> bool) -> bool {
        for _ in 0..600 {
            if seen() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn changes_made_by_another_runtime_are_served_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let running = Runtime::open(Settings::new(dir.path().to_owned())).unwrap();
        let other = Runtime::open(Settings::new(dir.path().to_owned())).unwrap();

        other.services.secrets().set("FOLLOWED_KEY", "v1-value").unwrap();
        let secret = |rt: &Runtime| rt.services.secrets().get("FOLLOWED_KEY").unwrap();
        assert!(eventually(|| secret(&running).as_deref() == Some("v1-value")).await);
        other.services.secrets().set("FOLLOWED_KEY", "v2-value").unwrap();
        assert!(eventually(|| secret(&running).as_deref() == Some("v2-value")).await);
        other.services.secrets().remove("FOLLOWED_KEY").unwrap();
        assert!(eventually(|| secret(&running).is_none()).await);

        let source = b"const META = #{ title: \"New\", description: \"added elsewhere\" };\nfn main(e, m, d) { 1 }\n";
        let cid = other.put_script("added_elsewhere", source, crate::store::Origin::Api).unwrap();
        assert!(eventually(|| running.server("added_elsewhere").is_some_and(|s| s.cid == cid)).await);
        other.set_variables([("FOLLOWED_VAR".to_string(), "x".to_string())].into()).unwrap();
        assert!(eventually(|| running.services.variable("FOLLOWED_VAR").as_deref() == Some("x")).await);
    }
}
