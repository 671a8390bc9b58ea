//! What every fuzz harness runs on: a runtime on a fresh data directory serving `echo` and the given
//! scripts (nothing that could reach the network), and a current-thread tokio runtime to drive it.
//! Whoever includes a harness includes this file beside it, as `serving`.

use std::sync::Arc;

use switchboard::boot::{Image, ImageServer};
use switchboard::runtime::{Runtime, Settings};

pub struct Serving {
    pub runtime: Arc<Runtime>,
    pub tokio: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Serving {
    /// `echo` and `servers` (name, source), with request bodies limited to 64 KiB.
    pub fn new(servers: &[(&str, &str)]) -> Serving {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings = Settings::new(dir.path().join("data"));
        let echo = include_bytes!("../../scripts/echo.rhai").to_vec();
        let mut image = Image::default();
        image.servers.push(ImageServer { name: "echo".into(), script: echo, enabled: true });
        for (name, source) in servers {
            image.servers.push(ImageServer { name: (*name).into(), script: source.as_bytes().to_vec(), enabled: true });
        }
        settings.boot = Some(image);
        settings.max_body = 64 * 1024;
        let runtime = Runtime::open(settings).expect("the runtime opens");
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        Serving { runtime, tokio, _dir: dir }
    }
}
