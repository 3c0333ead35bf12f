//! The installed server programs and how we run them: which MySQL there is (MariaDB's
//! `mariadb-install-db` + `mariadbd`, or MySQL's `mysqld --initialize-insecure`), how a
//! data directory is made, and the command lines of a server on a port of our choosing.
//! Shared by every server of our own: devstack's, the tests' shared ones, and the nodes a
//! single test starts ([`super::MariadbNode`], [`super::RedisNode`]).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::server::ServerError;

/// Debian keeps servers in `sbin`, which is not on an ordinary user's `PATH`.
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/usr/local/bin"];

/// `name` on `PATH` or in the usual server directories.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.metadata().is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0))
}

/// Servers refuse to run as root unless told to, and warn when told to as anyone else.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MysqlFlavor {
    Mariadb,
    Mysql,
}

/// The installed MySQL-compatible server.
#[derive(Clone, Debug)]
pub struct MysqlProgram {
    pub flavor: MysqlFlavor,
    server: PathBuf,
    /// `mariadb-install-db`; MySQL initialises with the server binary itself.
    install: Option<PathBuf>,
}

impl MysqlProgram {
    /// MariaDB when its installer is there, else MySQL's `mysqld`.
    pub fn find() -> Result<Self, ServerError> {
        if let Some(install) = find("mariadb-install-db")
            && let Some(server) = find("mariadbd").or_else(|| find("mysqld"))
        {
            return Ok(Self { flavor: MysqlFlavor::Mariadb, server, install: Some(install) });
        }
        match find("mysqld") {
            Some(server) => Ok(Self { flavor: MysqlFlavor::Mysql, server, install: None }),
            None => Err(ServerError::Missing {
                what: "MySQL",
                programs: "mariadb-install-db and mariadbd, or mysqld",
                packages: "mariadb-server (or mysql-server)",
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self.flavor {
            MysqlFlavor::Mariadb => "MariaDB",
            MysqlFlavor::Mysql => "MySQL",
        }
    }

    /// Makes the system tables in `datadir` (which must not exist yet: MySQL insists), with
    /// `root` allowed in without a password from loopback. Output goes to `log`.
    pub fn install(&self, datadir: &Path, log: &Path) -> Result<(), ServerError> {
        let mut command = match &self.install {
            Some(install) => {
                let mut command = Command::new(install);
                command.args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"]);
                command
            }
            None => {
                let mut command = Command::new(&self.server);
                command.args(["--no-defaults", "--initialize-insecure"]);
                command
            }
        };
        command.arg(format!("--datadir={}", datadir.display()));
        if running_as_root() {
            command.arg("--user=root");
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let from = log_len(log);
        let out = append_to(log)?;
        let err = out.try_clone().map_err(|error| ServerError::io(log, error))?;
        let status = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|error| ServerError::io(Path::new(&program), error))?;
        if status.success() {
            Ok(())
        } else {
            Err(ServerError::Failed { program, status: status.to_string(), log: log.to_owned(), tail: tail(log, from) })
        }
    }

    /// The server on loopback `port` with its data in `datadir`. The settings that matter
    /// to the mesh match the machine servers CI uses (Debian's MariaDB): utf8mb4, no name
    /// resolution. The caller adds its own arguments and spawns it.
    pub fn command(&self, datadir: &Path, port: u16, socket: &Path, pid_file: &Path) -> Command {
        let mut command = Command::new(&self.server);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", pid_file.display()))
            .args(["--bind-address=127.0.0.1", "--character-set-server=utf8mb4"]);
        match self.flavor {
            // MariaDB's installer grants root@127.0.0.1 too, so names need no resolving.
            MysqlFlavor::Mariadb => command.args(["--collation-server=utf8mb4_general_ci", "--skip-name-resolve"]),
            // MySQL grants root@localhost only, which a TCP client from 127.0.0.1 matches by
            // name; X Protocol would take port 33060 from the machine's own server.
            MysqlFlavor::Mysql => command.args(["--mysqlx=OFF"]),
        };
        if running_as_root() {
            command.arg("--user=root");
        }
        command
    }
}

/// `redis-server` on loopback `port`, nothing written to disk (no RDB, no AOF).
pub fn redis_command(port: u16) -> Result<Command, ServerError> {
    let server = find("redis-server").ok_or(ServerError::Missing {
        what: "Redis",
        programs: "redis-server",
        packages: "redis-server",
    })?;
    let mut command = Command::new(server);
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    Ok(command)
}

/// `log` opened for appending (made with its directory if need be).
pub fn append_to(log: &Path) -> Result<File, ServerError> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|error| ServerError::io(dir, error))?;
    }
    File::options().create(true).append(true).open(log).map_err(|error| ServerError::io(log, error))
}

pub fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |meta| meta.len())
}

/// The last lines `log` got after byte `from`, on one line: why a server would not start.
pub fn tail(log: &Path, from: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}
