//! A server of our own that this process owns and stops (devstack's): started under the
//! state directory's lock, which it holds while the server runs.

use std::fs::File;
use std::path::Path;
use std::process::Child;

use super::server::{Launched, Layout, ServerError, ServerKind, launch, terminate};

/// A server of our own, owned by this process: stopped by [`LocalServer::stop`] or on
/// drop. While it lives, its state directory's lock keeps any other process from
/// starting (or stopping) a server there.
pub struct LocalServer {
    layout: Layout,
    child: Option<Child>,
    url: String,
    what: &'static str,
    installed: bool,
    _lock: File,
}

impl LocalServer {
    /// Starts `kind` under `dir` (blocking: an install takes seconds), after stopping a
    /// server an earlier owner left running there (killed before it could stop it).
    pub fn start(kind: ServerKind, dir: &Path) -> Result<Self, ServerError> {
        let layout = Layout::new(kind, dir)?;
        let lock = layout.lock_file()?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ServerError::InUse { what: kind_name(kind), dir: dir.to_owned() });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(ServerError::io(&layout.lock, error)),
        }
        layout.stop_leftover();
        let Launched { child, url, what, installed } = launch(&layout)?;
        Ok(Self { layout, child: Some(child), url, what, installed, _lock: lock })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `MariaDB`, `MySQL` or `Redis`.
    pub fn what(&self) -> &'static str {
        self.what
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> &Path {
        &self.layout.data
    }

    pub fn log(&self) -> &Path {
        &self.layout.log
    }

    /// Whether this start made the data directory (else it reused an earlier one).
    pub fn installed(&self) -> bool {
        self.installed
    }

    /// Stops the server (blocking, up to its grace period) and waits until it is gone.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(child.id(), self.layout.kind.stop_grace(), || !matches!(child.try_wait(), Ok(None)));
            let _ = child.wait();
            self.layout.forget();
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn kind_name(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Mysql => "MySQL",
        ServerKind::Redis => "Redis",
    }
}
