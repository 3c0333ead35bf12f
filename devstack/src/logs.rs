//! devstack's terminal: the children's output, read line by line, shown for people (or as
//! JSON), and kept raw in a file per child under `<state-dir>/logs/`.
//!
//! One thread writes every line to stderr, so lines of different children never interleave
//! mid-line. The children's pipes are read continuously whatever the terminal does: when it
//! cannot keep up, lines are dropped from the terminal (never from the files) and counted.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

use crate::cli::LogFormat;
use crate::render;

/// Lines waiting for the terminal before new ones are dropped from it.
const BACKLOG: usize = 8192;
/// How long the last lines may take to reach the terminal when devstack exits.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The process whose output a line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// As the service names itself: `payment-svc`, `gateway`.
    pub service: &'static str,
    /// 1-based, only when the service runs several replicas.
    pub replica: Option<u16>,
}

impl Source {
    /// `coupon-svc`, `coupon-svc-2`: its terminal prefix and log file name. The first
    /// replica keeps the plain name, so its file is the same with one replica or several.
    pub fn name(&self) -> String {
        match self.replica {
            Some(n) if n > 1 => format!("{}-{n}", self.service),
            _ => self.service.to_owned(),
        }
    }
}

enum Message {
    Line(String),
    /// Answered once every line before it is written.
    Flush(SyncSender<()>),
}

struct Terminal {
    format: LogFormat,
    color: bool,
    lines: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

static TERMINAL: OnceLock<Terminal> = OnceLock::new();

/// Starts the terminal writer; before this (and in `devstack token`), messages go straight to stderr.
pub fn init(format: LogFormat) {
    let (lines, queue) = sync_channel(BACKLOG);
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    let spawned =
        std::thread::Builder::new().name("devstack-terminal".into()).spawn(move || write_lines(queue, counted, format));
    if let Err(err) = spawned {
        eprintln!("devstack: cannot start the terminal writer: {err}");
        return;
    }
    let color =
        format == LogFormat::Pretty && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = TERMINAL.set(Terminal { format, color, lines, dropped });
}

/// Waits (a little) until every line sent so far is on the terminal: call before exiting.
pub fn finish() {
    let Some(terminal) = TERMINAL.get() else { return };
    let deadline = Instant::now() + FLUSH_WAIT;
    let (done, written) = sync_channel(1);
    let mut flush = Message::Flush(done);
    // Not a blocking send: a terminal that stopped reading must not keep devstack from exiting.
    loop {
        match terminal.lines.try_send(flush) {
            Ok(()) => break,
            Err(TrySendError::Full(again)) if Instant::now() < deadline => flush = again,
            Err(_) => return,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = written.recv_timeout(deadline.saturating_duration_since(Instant::now()));
}

pub fn say(message: impl std::fmt::Display) {
    own("INFO", &message.to_string());
}

pub fn warn(message: impl std::fmt::Display) {
    own("WARN", &message.to_string());
}

pub fn error(message: impl std::fmt::Display) {
    own("ERROR", &message.to_string());
}

/// devstack's own messages read `devstack: ...` in `pretty` (tests and people look for that).
fn own(level: &str, message: &str) {
    let Some(terminal) = TERMINAL.get() else {
        eprintln!("devstack: {message}");
        return;
    };
    let line = match terminal.format {
        LogFormat::Pretty => format!("devstack: {message}"),
        LogFormat::Json => render::own_json(level, message),
    };
    // Never dropped: when the queue is full it jumps the queue instead.
    if let Err(TrySendError::Full(Message::Line(line)) | TrySendError::Disconnected(Message::Line(line))) =
        terminal.lines.try_send(Message::Line(line))
    {
        write_line(&line);
    }
}

fn child_line(prefix: &str, source: &Source, line: &str) {
    let Some(terminal) = TERMINAL.get() else {
        write_line(&render::pretty(prefix, line, false));
        return;
    };
    let shown = match terminal.format {
        LogFormat::Pretty => render::pretty(prefix, line, terminal.color),
        LogFormat::Json => render::json(source, line),
    };
    if let Err(TrySendError::Full(_)) = terminal.lines.try_send(Message::Line(shown)) {
        terminal.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

fn write_lines(queue: Receiver<Message>, dropped: Arc<AtomicU64>, format: LogFormat) {
    for message in queue {
        match message {
            Message::Line(line) => write_line(&line),
            Message::Flush(done) => {
                let _ = done.send(());
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let notice = format!("{lost} lines were too many for the terminal; the log files have them all");
            write_line(&match format {
                LogFormat::Pretty => format!("devstack: {notice}"),
                LogFormat::Json => render::own_json("WARN", &notice),
            });
        }
    }
}

/// One write of the whole line under the stderr lock: devstack's other writers to stderr
/// (a panic message) cannot cut into it.
fn write_line(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = std::io::stderr().lock().write_all(buf.as_bytes());
}

/// `<state-dir>/logs`, created now; `None` (said once) when it cannot be.
pub fn prepare_dir(state_dir: &Path) -> Option<PathBuf> {
    let dir = state_dir.join("logs");
    match std::fs::create_dir_all(&dir) {
        Ok(()) => Some(dir),
        Err(err) => {
            warn(format_args!("cannot create {} ({err}); the children's logs go to the terminal only", dir.display()));
            None
        }
    }
}

/// Reads the child's stdout and stderr until both close: each line is appended raw to
/// `<dir>/<name>.log` and shown on the terminal behind `prefix`. Await the handle after the
/// child exits, so its last lines come before devstack's word about it.
pub fn capture(child: &mut Child, source: &Source, prefix: String, dir: Option<&Path>) -> JoinHandle<()> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let path = dir.map(|dir| dir.join(format!("{}.log", source.name())));
    let file = path.as_ref().and_then(|path| match OpenOptions::new().create(true).append(true).open(path) {
        Ok(file) => Some(file),
        Err(err) => {
            warn(format_args!("cannot open {} ({err}); this child logs to the terminal only", path.display()));
            None
        }
    });
    let source = source.clone();
    tokio::spawn(async move {
        let mut out = stdout.map(|s| BufReader::new(s).split(b'\n'));
        let mut err = stderr.map(|s| BufReader::new(s).split(b'\n'));
        let mut file = file.zip(path);
        while out.is_some() || err.is_some() {
            // `next_segment` is cancel-safe: the branch that loses the race keeps its bytes.
            let (read, from_out) = tokio::select! {
                read = async { out.as_mut().expect("guarded").next_segment().await }, if out.is_some() => (read, true),
                read = async { err.as_mut().expect("guarded").next_segment().await }, if err.is_some() => (read, false),
            };
            let Ok(Some(mut raw)) = read else {
                if from_out {
                    out = None;
                } else {
                    err = None;
                }
                continue;
            };
            let text = String::from_utf8_lossy(&raw);
            let text = text.strip_suffix('\r').unwrap_or(&text);
            if !text.trim().is_empty() {
                child_line(&prefix, &source, text);
            }
            raw.push(b'\n');
            // A blocking write in async code, but one short line to a local file.
            if let Some((f, path)) = &mut file
                && let Err(err) = f.write_all(&raw)
            {
                warn(format_args!("cannot write {} ({err}); this child logs to the terminal only", path.display()));
                file = None;
            }
        }
    })
}
