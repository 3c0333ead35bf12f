//! The servers the tests use when no `TEST_MYSQL_URL` / `TEST_REDIS_URL` names them: the
//! machine's at the default address when anything accepts there (CI: nothing else happens),
//! else one server of our own per kind, shared by every test process on the machine.
//!
//! Tests run as separate processes (nextest), so they meet in a well-known directory,
//! `$TMPDIR/commerce-mesh-test-servers/`: the first to find no server there starts one,
//! under the directory's lock, and records it; the others find it answering and use it.
//! It is left running for the next test run (stopping it is `kill <pid>`, the first line of
//! `run/<kind>.server`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::probe;
use super::server::{Launched, Layout, ServerError, ServerKind};

/// The well-known directory's name, under the temp dir.
const SHARED_DIR: &str = "commerce-mesh-test-servers";
/// How long a recorded server that still runs may take to answer before it is replaced.
const BUSY_PATIENCE: Duration = Duration::from_secs(15);

/// The variables that decide, per kind: the server to use, what "the default" is (tests
/// of this fallback move it to where nothing answers) and where shared servers live.
struct Vars {
    url: &'static str,
    default_url: &'static str,
    default: &'static str,
}

fn vars(kind: ServerKind) -> Vars {
    match kind {
        ServerKind::Mysql => Vars {
            url: "TEST_MYSQL_URL",
            default_url: "TEST_DEFAULT_MYSQL_URL",
            default: "mysql://root@127.0.0.1:3306",
        },
        ServerKind::Redis => {
            Vars { url: "TEST_REDIS_URL", default_url: "TEST_DEFAULT_REDIS_URL", default: "redis://127.0.0.1:6379" }
        }
    }
}

/// `TEST_SERVERS_DIR`, else the well-known directory.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("TEST_SERVERS_DIR").map_or_else(|| std::env::temp_dir().join(SHARED_DIR), PathBuf::from)
}

/// The URL of the `kind` server tests use; panics (it is a test) with the reason when
/// there is none and none can be started.
pub fn resolve(kind: ServerKind) -> String {
    let vars = vars(kind);
    if let Ok(url) = std::env::var(vars.url) {
        return url;
    }
    let default = std::env::var(vars.default_url).unwrap_or_else(|_| vars.default.to_owned());
    if probe::accepts(kind, &default) {
        return default;
    }
    let dir = shared_dir();
    match shared(kind, &dir) {
        Ok(url) => {
            // Shown with a failing test's output: which server it ran against.
            eprintln!(
                "kit::testing: nothing answers at {default}; using the shared test server at {url} (under {})",
                dir.display()
            );
            url
        }
        Err(err) => panic!(
            "tests need a {} server: nothing answers at {default} ({} to name one), and one of our own did not start: {err}",
            kind.id(),
            vars.url
        ),
    }
}

/// The URL of the `kind` server recorded under `dir` if it answers, else of one started
/// there now (and left running). The directory's lock makes concurrent callers, in any
/// process, agree on one server.
pub fn shared(kind: ServerKind, dir: &Path) -> Result<String, ServerError> {
    let layout = Layout::new(kind, dir)?;
    let lock = layout.lock_file()?;
    lock.lock().map_err(|error| ServerError::io(dir, error))?;
    if let Some((pid, url)) = layout.recorded() {
        // Other tests are using it: a server that is alive but slow to greet (a whole suite
        // on two cores) gets time before it is replaced under them.
        let deadline = Instant::now() + BUSY_PATIENCE;
        loop {
            if probe::answers(kind, &url) {
                return Ok(url);
            }
            if !layout.runs(pid) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    layout.stop_leftover();
    // Dropping a `Child` neither kills nor waits for it: the server outlives this process.
    let Launched { url, .. } = super::server::launch(&layout)?;
    Ok(url)
}
