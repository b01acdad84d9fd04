//! [`TempServer`]: a PostgreSQL server of its own, in a temporary directory, listening on
//! loopback only, for tests and benchmarks.

use std::fmt;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A throwaway PostgreSQL server: created with `initdb` in a temporary directory, started
/// with `pg_ctl` on a free loopback port, stopped and deleted when dropped.
///
/// It uses the server programs installed under `/usr/lib/postgresql/<version>/bin` (as
/// Debian's `postgresql` package puts them). PostgreSQL refuses to run as root: when the
/// current user is root, the server runs as the `postgres` user, through `runuser`.
/// Connections need the password of user `orch`, which
/// [`TempServer::connection_string`] holds.
///
/// ```no_run
/// use orch_journal::postgres::TempServer;
///
/// let server = TempServer::start()?;
/// let config = server.connection_string(); // host=127.0.0.1 port=... user=orch password=...
/// # Ok::<(), orch_journal::postgres::TempServerError>(())
/// ```
pub struct TempServer {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
    password: String,
}

/// Why a [`TempServer`] did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TempServerError {
    /// No PostgreSQL server programs are installed.
    #[error("no PostgreSQL server found: {0}")]
    NotInstalled(String),
    /// The server programs are there but failed.
    #[error("cannot start PostgreSQL: {0}")]
    Failed(String),
}

impl fmt::Debug for TempServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempServer")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The `bin` directory of the newest installed PostgreSQL with `initdb` and `pg_ctl`.
fn find_bin() -> Result<PathBuf, TempServerError> {
    let root = Path::new("/usr/lib/postgresql");
    let entries = fs::read_dir(root).map_err(|e| {
        TempServerError::NotInstalled(format!("cannot read {}: {e}", root.display()))
    })?;
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        TempServerError::NotInstalled(format!(
            "no {}/*/bin with initdb and pg_ctl (Debian: apt-get install postgresql)",
            root.display()
        ))
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn failed(what: &str, output: std::io::Result<Output>) -> Result<(), TempServerError> {
    match output {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(TempServerError::Failed(format!(
            "{what} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => Err(TempServerError::Failed(format!("cannot run {what}: {e}"))),
    }
}

/// A loopback port no socket holds now.
fn free_port() -> Result<u16, TempServerError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|address| address.port())
        .map_err(|e| TempServerError::Failed(format!("no free port: {e}")))
}

/// How many ports a server tries: the one it found free may be taken by the time the
/// server binds it (after `initdb`, a second or two later).
const PORT_TRIES: usize = 3;

impl TempServer {
    /// Creates and starts a server; waits until it accepts connections.
    pub fn start() -> Result<Self, TempServerError> {
        Self::start_on(free_port()?)
    }

    /// As [`TempServer::start`], trying `port` first.
    fn start_on(port: u16) -> Result<Self, TempServerError> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let bin = find_bin()?;
        let as_postgres = is_root();
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let unique = format!(
            "{}-{stamp:x}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("orch-pg-{unique}"));
        let password = format!("pw{stamp:x}{unique}").replace('-', "");
        let mut server = Self {
            dir,
            bin,
            as_postgres,
            port,
            password,
        };
        server.init()?;
        Ok(server)
    }

    fn init(&mut self) -> Result<(), TempServerError> {
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir).map_err(|e| {
            TempServerError::Failed(format!("cannot create {}: {e}", self.dir.display()))
        })?;
        let pwfile = self.dir.join("password");
        fs::write(&pwfile, &self.password)
            .map_err(|e| TempServerError::Failed(format!("cannot write the password file: {e}")))?;
        if self.as_postgres {
            failed(
                "chown",
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&self.dir)
                    .output(),
            )?;
        }
        let data = self.dir.join("data");
        failed(
            "initdb",
            self.command("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "orch",
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    // Not the caller's locale, which may not be installed here.
                    "--locale=C",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", pwfile.display()))
                .output(),
        )?;
        for tries_left in (0..PORT_TRIES).rev() {
            let options = format!(
                "-p {} -k '{}' -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.display()
            );
            let started = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .output();
            let Err(error) = failed("pg_ctl start", started) else {
                return Ok(());
            };
            let log = fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            if tries_left == 0 || !log.contains("could not bind") {
                return Err(TempServerError::Failed(format!(
                    "{error}; server log: {}",
                    log.trim()
                )));
            }
            self.port = free_port()?;
        }
        unreachable!("the last try returns")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// The server's loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for user `orch`, password included, to database
    /// `postgres` over TCP on loopback.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=orch password={} dbname=postgres",
            self.port, self.password
        )
    }

    /// The password of user `orch` (to check that it never shows).
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl Drop for TempServer {
    fn drop(&mut self) {
        // Whatever fails here leaves at worst a stopped server's files in the temp dir.
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::{TempServer, TempServerError};

    #[test]
    fn a_port_taken_before_the_server_binds_it_is_given_up_for_another() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = taken.local_addr().expect("its address").port();
        let server = match TempServer::start_on(port) {
            Err(TempServerError::NotInstalled(why))
                if std::env::var("CI").as_deref() != Ok("true") =>
            {
                eprintln!("skipped: {why}");
                return;
            }
            started => started.expect("the server starts on another port"),
        };
        assert_ne!(server.port(), port);
        assert!(
            server
                .connection_string()
                .contains(&format!("port={}", server.port()))
        );
    }
}
