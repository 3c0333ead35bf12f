//! Runs each child process, restarts it when it dies (with back-off, like a
//! CrashLoopBackOff), and stops them all on shutdown: SIGTERM, then SIGKILL after a grace.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kit::shutdown::CancellationToken;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::{JoinHandle, JoinSet};

use crate::logs;
use crate::plan::ProcessSpec;

const GRACE: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// A child that ran this long before dying is treated as healthy again: back-off resets.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a dead child's last lines may take to be read before devstack speaks of it.
const LAST_LINES_WAIT: Duration = Duration::from_secs(2);

/// `log_dir`: where each child's raw lines are appended (`logs::prepare_dir`).
pub fn start(processes: Vec<ProcessSpec>, log_dir: Option<PathBuf>, shutdown: CancellationToken) -> JoinSet<()> {
    let width = processes.iter().map(|spec| spec.source.name().len()).max().unwrap_or(0);
    let mut tasks = JoinSet::new();
    for spec in processes {
        let prefix = format!("{:width$}", spec.source.name());
        tasks.spawn(supervise(spec, prefix, log_dir.clone(), shutdown.clone()));
    }
    tasks
}

/// The child inherits devstack's whole environment (no `env_clear`): every `<P>_*` variable
/// reaches the services (API.md), under the plan's own variables, which win.
fn spawn(spec: &ProcessSpec) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    // Piped, not inherited: devstack reads every line (terminal and log file), and its own
    // stdout stays free for the READY line.
    Command::new(exe)
        .args(["service", &spec.service])
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

async fn last_lines(reader: JoinHandle<()>) {
    let _ = tokio::time::timeout(LAST_LINES_WAIT, reader).await;
}

/// Called first thing in a child: if devstack dies without stopping it (kill -9), the
/// kernel sends the child SIGTERM, so no orphaned service keeps its ports and MySQL
/// connections. A parent that died before this call has already orphaned us: exit.
pub fn die_with_parent() {
    // Not `logs::warn`: this runs in the child, whose stderr devstack reads.
    if let Err(err) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        eprintln!("devstack: cannot tie this child to its parent: {err}");
    }
    if nix::unistd::getppid().as_raw() == 1 {
        std::process::exit(0);
    }
}

async fn supervise(spec: ProcessSpec, prefix: String, log_dir: Option<PathBuf>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    while !shutdown.is_cancelled() {
        let mut child = match spawn(&spec) {
            Ok(child) => child,
            Err(err) => {
                logs::error(format_args!("cannot start {}: {err}", spec.label));
                return;
            }
        };
        logs::say(format_args!("started {} pid={} ({})", spec.label, child.id().unwrap_or_default(), spec.addr));
        let reader = logs::capture(&mut child, &spec.source, prefix.clone(), log_dir.as_deref());
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                last_lines(reader).await;
                if shutdown.is_cancelled() {
                    return;
                }
                if started.elapsed() > STABLE_AFTER {
                    backoff = Duration::from_secs(1);
                }
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                logs::warn(format_args!("{} exited ({status}); restarting in {}s", spec.label, backoff.as_secs()));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            () = shutdown.cancelled() => {
                stop(&spec.label, child, reader).await;
                return;
            }
        }
    }
}

async fn stop(label: &str, mut child: Child, reader: JoinHandle<()>) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(_) => {
            last_lines(reader).await;
            logs::say(format_args!("stopped {label}"));
        }
        Err(_) => {
            logs::warn(format_args!("{label} did not stop within {}s; killing it", GRACE.as_secs()));
            let _ = child.kill().await;
        }
    }
}
