//! Runs each child process, restarts it when it dies (with back-off, like a
//! CrashLoopBackOff), and stops them all on shutdown: SIGTERM, then SIGKILL after a grace.

use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kit::shutdown::CancellationToken;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use crate::plan::ProcessSpec;

const GRACE: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// A child that ran this long before dying is treated as healthy again: back-off resets.
const STABLE_AFTER: Duration = Duration::from_secs(30);

pub fn start(processes: Vec<ProcessSpec>, shutdown: CancellationToken) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for spec in processes {
        tasks.spawn(supervise(spec, shutdown.clone()));
    }
    tasks
}

fn spawn(spec: &ProcessSpec) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    // Children log JSON on stdout; devstack keeps its own stdout for the READY line.
    let to_stderr = || std::io::stderr().as_fd().try_clone_to_owned().map(Stdio::from);
    Command::new(exe)
        .args(["service", &spec.service])
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(to_stderr()?)
        .stderr(to_stderr()?)
        .kill_on_drop(true)
        .spawn()
}

/// Called first thing in a child: if devstack dies without stopping it (kill -9), the
/// kernel sends the child SIGTERM, so no orphaned service keeps its ports and MySQL
/// connections. A parent that died before this call has already orphaned us: exit.
pub fn die_with_parent() {
    if let Err(err) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        eprintln!("devstack: cannot tie this child to its parent: {err}");
    }
    if nix::unistd::getppid().as_raw() == 1 {
        std::process::exit(0);
    }
}

async fn supervise(spec: ProcessSpec, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    while !shutdown.is_cancelled() {
        let mut child = match spawn(&spec) {
            Ok(child) => child,
            Err(err) => {
                eprintln!("devstack: cannot start {}: {err}", spec.label);
                return;
            }
        };
        eprintln!("devstack: started {} pid={} ({})", spec.label, child.id().unwrap_or_default(), spec.addr);
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                if shutdown.is_cancelled() {
                    return;
                }
                if started.elapsed() > STABLE_AFTER {
                    backoff = Duration::from_secs(1);
                }
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                eprintln!("devstack: {} exited ({status}); restarting in {}s", spec.label, backoff.as_secs());
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            () = shutdown.cancelled() => {
                stop(&spec.label, child).await;
                return;
            }
        }
    }
}

async fn stop(label: &str, mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(_) => eprintln!("devstack: stopped {label}"),
        Err(_) => {
            eprintln!("devstack: {label} did not stop within {}s; killing it", GRACE.as_secs());
            let _ = child.kill().await;
        }
    }
}
