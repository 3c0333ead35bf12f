//! A MariaDB server of the test's own (a replication primary, a replica that lags or stops),
//! installed into a temporary directory and started on a free port with the installed
//! server programs ([`super::programs`], as every server of our own); killed and removed
//! on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::programs::MysqlProgram;

pub struct MariadbNode {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    /// `mysql://root@127.0.0.1:<port>` (root without a password, as the test server has it).
    pub url: String,
}

impl MariadbNode {
    /// A server with binary logging on and this `server_id` (distinct per node of a
    /// replication set), ready to accept connections.
    pub fn start(server_id: u32) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("mesh-mariadb-{}{port}", super::unique_prefix()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let program = MysqlProgram::find().unwrap_or_else(|err| panic!("{err}"));
        program.install(&data, &dir.join("install.log")).unwrap_or_else(|err| panic!("{err}"));
        let log = std::fs::File::create(dir.join("server.log")).expect("a server log");
        let child = program
            .command(&data, port, &dir.join("sock"), &dir.join("pid"))
            .arg(format!("--log-bin={}", data.join("binlog").display()))
            .arg(format!("--server-id={server_id}"))
            .arg("--binlog-format=ROW")
            .args(["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--max-connections=200"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mariadbd runs");
        let node = Self { child, dir, port, url: format!("mysql://root@127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mariadbd on port {port} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
    }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    pub fn kill(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MariadbNode {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
