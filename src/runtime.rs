//! The runtime: the store, the engine, and the in-memory registry every request reads.
//!
//! The registry is an immutable map of name → [`Server`] behind an `ArcSwap`: a request loads it once
//! (a pointer read) and keeps serving from that snapshot even if a change is swapped in meanwhile, which
//! is what makes swaps atomic for requests in flight. Compiled scripts are cached by CID, so a name that
//! moves back to an earlier CID, or two names on one script, cost one compile.
//!
//! Every change goes store-first: validate and compile, commit to the store, then rebuild the snapshot
//! from what the store says. The store is the truth; the snapshot is derived from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

use crate::boot::Image;
use crate::cid::Cid;
use crate::engine::{Limits, Script, ScriptEngine};
use crate::error::{Error, Result};
use crate::keys;
use crate::modules::Services;
use crate::modules::http::HttpSettings;
use crate::secrets::Vault;
use crate::server::{Server, validate_name};
use crate::store::{Change, Op, Origin, ServerRecord, SqliteStore, Store};

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub limits: Limits,
    /// Refuse every mutation through the management API.
    pub read_only: bool,
    /// Largest request body accepted over HTTP.
    pub max_body: usize,
    /// A boot image to load at start instead of the state the data directory holds.
    pub boot: Option<Image>,
    pub http: HttpSettings,
}

impl Settings {
    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            data_dir,
            limits: Limits::default(),
            read_only: false,
            max_body: 10 * 1024 * 1024,
            boot: None,
            http: HttpSettings::default(),
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

type Registry = HashMap<String, Arc<Server>>;

/// Store fact recording that the data directory has been given its first image.
const SEEDED: &str = "seeded";

pub struct Runtime {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: ScriptEngine,
    pub(crate) services: Arc<Services>,
    /// The token every management mutation must present.
    pub(crate) admin_token: String,
    registry: ArcSwap<Registry>,
    scripts: RwLock<HashMap<Cid, Arc<Script>>>,
    pub settings: Settings,
}

impl Runtime {
    /// Opens the data directory (creating it), loads the boot image given in the settings (or, into a
    /// fresh directory, the embedded one), and loads every server.
    pub fn open(settings: Settings) -> Result<Arc<Runtime>> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| Error::internal(&format!("cannot create {}", settings.data_dir.display()), e))?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&settings.data_dir.join("store.sqlite"))?);
        let vault = Vault::new(&keys::master_key(&settings.data_dir)?);
        let services = Arc::new(Services::new(store.clone(), vault, settings.data_dir.clone(), settings.http.clone())?);
        let engine_services = services.clone();
        let runtime = Arc::new(Runtime {
            engine: ScriptEngine::new(settings.limits.clone(), |engine| {
                crate::modules::register(engine, engine_services)
            }),
            admin_token: keys::admin_token(&settings.data_dir)?,
            store,
            services,
            registry: ArcSwap::default(),
            scripts: RwLock::default(),
            settings,
        });
        if let Some(image) = &runtime.settings.boot {
            runtime.import(image, Origin::Boot)?;
        } else if runtime.store.fact(SEEDED)?.is_none() {
            let image = crate::boot::embedded().map_err(|problems| {
                Error::Internal(format!("the embedded image is broken: {}", problems.join("; ")))
            })?;
            runtime.import(&image, Origin::Boot)?;
        }
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

    /// Compiles `source`, or returns the cached script with the same CID.
    pub fn compile(&self, source: &[u8]) -> Result<Arc<Script>> {
        let cid = Cid::of(source);
        if let Some(script) = self.cached(&cid) {
            return Ok(script);
        }
        let text = std::str::from_utf8(source).map_err(|_| {
            Error::invalid_script(
                "a script is UTF-8 text",
                crate::error::Location { cid: Some(cid), ..Default::default() },
            )
        })?;
        let script = Arc::new(self.engine.compile(text)?);
        let mut scripts = self.scripts.write().unwrap_or_else(|p| p.into_inner());
        Ok(scripts.entry(cid).or_insert(script).clone())
    }

    fn cached(&self, cid: &Cid) -> Option<Arc<Script>> {
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

    /// Rebuilds the registry snapshot from the store. A server whose script no longer compiles stays
    /// listed with its error; every other server keeps serving.
    pub fn refresh(&self) -> Result<()> {
        let previous = self.registry.load();
        let mut registry = Registry::new();
        for record in self.store.servers()? {
            let script = self.script(&record.cid);
            if let Err(error) = &script {
                tracing::error!(server = %record.name, cid = %record.cid, "stored script does not load: {}", error.message());
            }
            let last_error = previous.get(&record.name).and_then(|s| s.last_error.clone());
            let server =
                Server { name: record.name.clone(), cid: record.cid, enabled: record.enabled, script, last_error };
            registry.insert(record.name, Arc::new(server));
        }
        self.registry.store(Arc::new(registry));
        self.services.variables.store(Arc::new(self.store.variables()?));
        Ok(())
    }

    /// Makes the store hold exactly `image`: every server in it bound (history kept), every server not in
    /// it removed. Everything is checked first; any problem refuses the whole image, listing every
    /// problem, and changes nothing.
    pub fn import(&self, image: &Image, origin: Origin) -> Result<()> {
        let mut problems = Vec::new();
        let mut change = Change::default();
        let mut seen = std::collections::HashSet::new();
        let current: HashMap<String, ServerRecord> =
            self.store.servers()?.into_iter().map(|record| (record.name.clone(), record)).collect();
        for server in &image.servers {
            if let Err(e) = validate_name(&server.name) {
                problems.push(e);
            }
            if !seen.insert(server.name.as_str()) {
                problems.push(format!("server '{}' is listed twice", server.name));
            }
            match self.compile(&server.script) {
                Ok(script) => match current.get(&server.name) {
                    Some(record) if record.cid == script.cid => {
                        if record.enabled != server.enabled {
                            change.op(Op::SetEnabled { name: server.name.clone(), enabled: server.enabled });
                        }
                    }
                    _ => {
                        change.blob(server.script.clone());
                        change.op(Op::Bind {
                            name: server.name.clone(),
                            cid: script.cid,
                            origin,
                            enabled: Some(server.enabled),
                        });
                    }
                },
                Err(e) => problems.push(format!("server '{}': {}", server.name, e.message())),
            }
        }
        if !problems.is_empty() {
            return Err(Error::BadRequest(format!("the image was refused: {}", problems.join("; "))));
        }
        for name in current.into_keys() {
            if !seen.contains(name.as_str()) {
                change.op(Op::Remove { name });
            }
        }
        change.op(Op::SetVariables(image.variables.clone()));
        change.op(Op::SetFact { key: SEEDED.into(), value: "1".into() });
        self.store.commit(&change)?;
        self.refresh()
    }

    /// Runs `work` on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Runtime) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || work(&runtime)).await.map_err(|e| Error::internal("blocking task", e))?
    }
}
