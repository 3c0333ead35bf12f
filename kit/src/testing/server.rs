//! A MySQL (MariaDB) or Redis server of our own under a state directory, for when nothing
//! answers at the usual address: devstack's (stopped with it) and the tests' (shared by
//! every test process, see [`super::shared`]).
//!
//! Layout under the directory: `mysql/` (the data, installed once and reused), `redis/`
//! (its working directory; nothing is persisted), `logs/<kind>.log`, and `run/`: the lock,
//! the server's pid and URL (`<kind>.server`), its socket and pid file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::probe;
use super::programs::{self, MysqlProgram};

/// Ports taken between our probe and the server's bind: try another this many times.
const BIND_ATTEMPTS: usize = 3;
const POLL: Duration = Duration::from_millis(50);
/// A unix socket path longer than this fails `bind` (108 bytes with the terminator).
const MAX_SOCKET_PATH: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Mysql,
    Redis,
}

impl ServerKind {
    /// Its name in the state directory.
    pub fn id(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Redis => "redis",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::Mysql => 3306,
            Self::Redis => 6379,
        }
    }

    /// MariaDB recovers its redo log on a start after a kill; give it time.
    fn start_timeout(self) -> Duration {
        match self {
            Self::Mysql => Duration::from_secs(120),
            Self::Redis => Duration::from_secs(10),
        }
    }

    pub(super) fn stop_grace(self) -> Duration {
        match self {
            Self::Mysql => Duration::from_secs(60),
            Self::Redis => Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what} is not installed ({programs} not found); install the Debian package {packages}")]
    Missing { what: &'static str, programs: &'static str, packages: &'static str },
    #[error("{dir} is in use by another process's private {what} (another devstack with this --state-dir?)")]
    InUse { what: &'static str, dir: PathBuf },
    #[error("{program} failed ({status}); see {}: {tail}", log.display())]
    Failed { program: String, status: String, log: PathBuf, tail: String },
    #[error("{what} did not answer at {url} within {}s; see {}", timeout.as_secs(), log.display())]
    Timeout { what: &'static str, url: String, timeout: Duration, log: PathBuf },
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

impl ServerError {
    pub(super) fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), error }
    }
}

/// Where one kind's files are under a state directory.
pub(super) struct Layout {
    pub kind: ServerKind,
    pub data: PathBuf,
    pub log: PathBuf,
    run: PathBuf,
    pub lock: PathBuf,
    state: PathBuf,
}

impl Layout {
    /// Makes `dir` (absolute from here on: a server's working directory is not ours).
    pub fn new(kind: ServerKind, dir: &Path) -> Result<Self, ServerError> {
        let run = dir.join("run");
        std::fs::create_dir_all(&run).map_err(|error| ServerError::io(&run, error))?;
        let dir = dir.canonicalize().map_err(|error| ServerError::io(dir, error))?;
        let run = dir.join("run");
        let id = kind.id();
        Ok(Self {
            kind,
            data: dir.join(id),
            log: dir.join("logs").join(format!("{id}.log")),
            lock: run.join(format!("{id}.lock")),
            state: run.join(format!("{id}.server")),
            run,
        })
    }

    /// The lock file, open (not yet locked).
    pub fn lock_file(&self) -> Result<File, ServerError> {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(|e| ServerError::io(&self.lock, e))
    }

    /// The server last started here, if its record is readable: (pid, url).
    pub fn recorded(&self) -> Option<(u32, String)> {
        let text = std::fs::read_to_string(&self.state).ok()?;
        let mut lines = text.lines();
        Some((lines.next()?.parse().ok()?, lines.next()?.to_owned()))
    }

    fn record(&self, pid: u32, url: &str) -> Result<(), ServerError> {
        let partial = self.state.with_extension("server.partial");
        std::fs::write(&partial, format!("{pid}\n{url}\n")).map_err(|error| ServerError::io(&partial, error))?;
        std::fs::rename(&partial, &self.state).map_err(|error| ServerError::io(&self.state, error))
    }

    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.state);
    }

    /// Whether `pid` is still the server of this directory.
    pub fn runs(&self, pid: u32) -> bool {
        is_ours(pid, &self.data)
    }

    /// Stops the server recorded here if it still runs (its owner died without stopping
    /// it, or it hangs), so the data directory and its lock are free. Only a process whose
    /// command line names our data directory: a recycled pid is someone else's.
    pub fn stop_leftover(&self) {
        if let Some((pid, _)) = self.recorded()
            && self.runs(pid)
        {
            terminate(pid, self.kind.stop_grace(), || !alive(pid));
        }
        self.forget();
    }
}

fn alive(pid: u32) -> bool {
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')));
    kill(Pid::from_raw(pid as i32), None).is_ok() && !zombie
}

fn is_ours(pid: u32, data: &Path) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = data.as_os_str().as_encoded_bytes();
    alive(pid) && cmdline.windows(needle.len()).any(|window| window == needle)
}

/// SIGTERM (both servers shut down cleanly on it), SIGKILL after `grace`.
pub(super) fn terminate(pid: u32, grace: Duration, mut gone: impl FnMut() -> bool) {
    let pid = Pid::from_raw(pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while !gone() {
        if Instant::now() >= deadline {
            let _ = kill(pid, Signal::SIGKILL);
            let kill_deadline = Instant::now() + Duration::from_secs(5);
            while !gone() && Instant::now() < kill_deadline {
                std::thread::sleep(POLL);
            }
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// A server just started by [`launch`]: answering, recorded in the state directory.
pub(super) struct Launched {
    pub child: Child,
    pub url: String,
    pub what: &'static str,
    /// Whether this start made the data directory (else an earlier start's was reused).
    pub installed: bool,
}

/// Starts the server of `layout` on a free port (installing its data directory first when
/// there is none) and waits until it answers. Call with the layout's lock held.
pub(super) fn launch(layout: &Layout) -> Result<Launched, ServerError> {
    let (mysql, installed) = match layout.kind {
        ServerKind::Mysql => {
            let program = MysqlProgram::find()?;
            let installed = ensure_installed(&program, layout)?;
            (Some(program), installed)
        }
        ServerKind::Redis => {
            std::fs::create_dir_all(&layout.data).map_err(|error| ServerError::io(&layout.data, error))?;
            (None, false)
        }
    };
    let what = mysql.as_ref().map_or("Redis", MysqlProgram::name);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        let (mut command, url) = match &mysql {
            Some(program) => {
                let pid_file = layout.run.join("mysql.pid");
                (program.command(&layout.data, port, &socket_path(layout, port), &pid_file), mysql_url(port))
            }
            None => {
                let mut command = programs::redis_command(port)?;
                command.arg("--dir").arg(&layout.data);
                (command, format!("redis://127.0.0.1:{port}"))
            }
        };
        let from = programs::log_len(&layout.log);
        let out = programs::append_to(&layout.log)?;
        let err = out.try_clone().map_err(|error| ServerError::io(&layout.log, error))?;
        let program = command.get_program().to_string_lossy().into_owned();
        // Its own process group: a Ctrl-C at the terminal reaches the group in the
        // foreground, and the owner wants to stop the server last, after its clients.
        let mut child = std::os::unix::process::CommandExt::process_group(&mut command, 0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|error| ServerError::io(Path::new(&program), error))?;
        match wait_answering(layout.kind, &url, &mut child) {
            Ok(()) => {
                layout.record(child.id(), &url)?;
                return Ok(Launched { child, url, what, installed });
            }
            Err(Some(status)) => {
                let tail = programs::tail(&layout.log, from);
                if attempt < BIND_ATTEMPTS && tail.contains("in use") {
                    continue;
                }
                return Err(ServerError::Failed { program, status, log: layout.log.clone(), tail });
            }
            Err(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let timeout = layout.kind.start_timeout();
                return Err(ServerError::Timeout { what, url, timeout, log: layout.log.clone() });
            }
        }
    }
}

pub(super) fn mysql_url(port: u16) -> String {
    format!("mysql://root@127.0.0.1:{port}")
}

/// Waits for the server to answer: `Err(Some(exit status))` if it died first, `Err(None)`
/// if it did neither in time.
fn wait_answering(kind: ServerKind, url: &str, child: &mut Child) -> Result<(), Option<String>> {
    let deadline = Instant::now() + kind.start_timeout();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Some(status.to_string()));
        }
        if probe::answers(kind, url) {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Err(None)
}

/// Whether `layout.data` held a server's data already; if not, it does now. The installer
/// writes next to it and the result is renamed into place, so a data directory is either
/// complete or absent, whatever interrupted an earlier install.
fn ensure_installed(program: &MysqlProgram, layout: &Layout) -> Result<bool, ServerError> {
    let has_data = std::fs::read_dir(&layout.data).is_ok_and(|mut entries| entries.next().is_some());
    if has_data {
        return Ok(false);
    }
    // An empty directory (made by hand) would stop MySQL's installer.
    let _ = std::fs::remove_dir(&layout.data);
    let partial = layout.data.with_extension("installing");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|error| ServerError::io(&partial, error))?;
    }
    program.install(&partial, &layout.log)?;
    std::fs::rename(&partial, &layout.data).map_err(|error| ServerError::io(&layout.data, error))?;
    Ok(true)
}

fn free_port() -> Result<u16, ServerError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| ServerError::io(Path::new("127.0.0.1:0"), error))
}

fn socket_path(layout: &Layout, port: u16) -> PathBuf {
    let socket = layout.run.join("mysql.sock");
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        socket
    } else {
        std::env::temp_dir().join(format!("commerce-mesh-mysql-{port}.sock"))
    }
}
