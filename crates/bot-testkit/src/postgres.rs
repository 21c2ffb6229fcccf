//! A private PostgreSQL cluster per test: `initdb` into a fresh temporary
//! directory, the server on a free loopback port with its socket in that
//! directory, stopped and removed on drop. Parallel tests each get their own
//! (separate directories, separate ports), and nothing touches a packaged
//! cluster on 5432.
//!
//! A cluster costs about a second to create; [`Postgres::shared`] lets the
//! tests of one process that run at the same time share one (each in its
//! own database, [`Postgres::create_unique_database`]): it is stopped and
//! removed when the last of them drops it.
//!
//! Uses the PostgreSQL binaries only (no client library): the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout), else `initdb` on PATH.
//! When not installed, [`Postgres::start`] fails saying to run
//! `scripts/test.sh`, which installs it: a database test never passes
//! without a database.
//!
//! PostgreSQL refuses to run as root; when the tests are root, the cluster
//! directory is given to the `postgres` system user and the server tools run
//! with its uid and gid (the supplementary groups dropped), directly: the
//! child process is the postmaster itself.
//!
//! The server runs with its durable defaults (fsync on), so a benchmark on
//! this harness measures real commits; only `initdb` skips its final sync
//! (`--no-sync`: a crash during set-up just fails that test).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::{TempDir, WAIT, free_port};

/// The superuser of every harness cluster (trust authentication, no
/// password).
pub const PG_USER: &str = "postgres";

/// A running PostgreSQL server of its own, stopped and deleted on drop.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    /// Uid and gid the server tools run as (when the tests are root).
    run_as: Option<(u32, u32)>,
    child: Child,
    dir: TempDir,
}

impl Postgres {
    /// Creates a cluster and starts its server; returns once it accepts
    /// connections. Fails (saying to run `scripts/test.sh`) if PostgreSQL is
    /// not installed.
    pub fn start() -> Result<Postgres> {
        let bin = find_bin()?;
        let run_as = if effective_uid()? == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let dir = TempDir::new("pg");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("chown {} to the postgres user", dir.path().display()))?;
        }
        let data = dir.path().join("data");
        let out = tool(&bin, "initdb", run_as, dir.path())
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .with_context(|| format!("running {}", bin.join("initdb").display()))?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A free port can be taken between our check and the server's bind:
        // then try another.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            match spawn_server(&bin, &data, dir.path(), run_as, port) {
                Ok(child) => {
                    return Ok(Postgres {
                        port,
                        bin,
                        data,
                        run_as,
                        child,
                        dir,
                    });
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!("PostgreSQL did not start:\n{}", failures.join("\n---\n"))
    }

    /// The cluster shared by the tests of this process: the running one if
    /// another test still holds it, else a new one ([`Postgres::start`]).
    /// Give each test its own database ([`Postgres::create_unique_database`]).
    pub fn shared() -> Result<Arc<Postgres>> {
        static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
        let mut slot = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(pg) = slot.upgrade() {
            return Ok(pg);
        }
        let pg = Arc::new(Postgres::start()?);
        *slot = Arc::downgrade(&pg);
        Ok(pg)
    }

    /// Its TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates the database `name`; returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let out = self
            .client("createdb")
            .arg(name)
            .output()
            .context("running createdb")?;
        if !out.status.success() {
            bail!(
                "createdb {name} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(self.url(name))
    }

    /// Creates a database named `<prefix>_<n>`, unique in this process;
    /// returns its URL.
    pub fn create_unique_database(&self, prefix: &str) -> Result<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("{prefix}_{n}"))
    }

    /// Runs `sql` with `psql` in database `db`; returns its output (unaligned,
    /// tuples only: one row a line, columns separated by `|`).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = self
            .client("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!(
                "psql {sql:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A client tool of this server's version, connecting over TCP as
    /// [`PG_USER`] (clients may run as root).
    fn client(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            PG_USER,
        ])
        .env("LC_ALL", "C")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null());
        c
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown: nothing in a test cluster is worth a checkpoint.
        let _ = tool(&self.bin, "pg_ctl", self.run_as, self.dir.path())
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `postgres` on `port` and waits until it accepts connections.
fn spawn_server(
    bin: &Path,
    data: &Path,
    dir: &Path,
    run_as: Option<(u32, u32)>,
    port: u16,
) -> Result<Child> {
    let log_path = dir.join(format!("postgres-{port}.log"));
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut child = tool(bin, "postgres", run_as, dir)
        .arg("-D")
        .arg(data)
        .args(["-p", &port.to_string()])
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.join("postgres").display()))?;
    let log_tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("postgres on port {port} exited ({status}):\n{}", log_tail());
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                PG_USER,
            ])
            .args(["-d", "postgres", "-t", "1"])
            .stdin(Stdio::null())
            .status()
            .context("running pg_isready")?;
        if ready.success() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "postgres on port {port} not accepting connections after {WAIT:?}:\n{}",
                log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A server tool (`initdb`, `postgres`, `pg_ctl`), as the postgres user if
/// `run_as` says so, in `dir`, with the C locale.
fn tool(bin: &Path, name: &str, run_as: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut c = Command::new(bin.join(name));
    c.current_dir(dir).env("LC_ALL", "C").stdin(Stdio::null());
    if let Some((uid, gid)) = run_as {
        c.uid(uid).gid(gid).env("HOME", dir).env("USER", PG_USER);
    }
    c
}

/// The directory of the newest installed PostgreSQL's server binaries.
fn find_bin() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        // Follow a symlink (e.g. /usr/local/bin/initdb) to the real bin dir.
        if let Ok(initdb) = dir.join("initdb").canonicalize()
            && let Some(bin) = initdb.parent()
            && bin.join("postgres").is_file()
            && bin.join("pg_ctl").is_file()
        {
            return Ok(bin.to_path_buf());
        }
    }
    Err(anyhow!(
        "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin nor on PATH): \
         run scripts/test.sh, which installs it (apt-get install postgresql)"
    ))
}

/// This process's effective uid.
fn effective_uid() -> Result<u32> {
    if let Ok(m) = std::fs::metadata("/proc/self") {
        return Ok(m.uid());
    }
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("running id -u")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("parsing the output of id -u")
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .args([flag, PG_USER])
            .output()
            .context("running id")?;
        if !out.status.success() {
            bail!(
                "the tests run as root, and PostgreSQL refuses to: it needs a `{PG_USER}` \
                 system user to run as, and there is none (installing the postgresql \
                 package creates it: run scripts/test.sh)"
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .with_context(|| format!("parsing the output of id {flag} {PG_USER}"))
    };
    Ok((id("-u")?, id("-g")?))
}
