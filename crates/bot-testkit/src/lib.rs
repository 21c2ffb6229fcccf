//! Dev-only test harness: real brokers on free ports, real `bot` processes,
//! and the stock `mosquitto_pub` / `mosquitto_sub` tools as the clients.
//!
//! Everything is synchronous (std::process plus reader threads), and every
//! wait is for an event (a line on a pipe, a port accepting) with a deadline,
//! never a bare sleep. Processes are killed when their handle drops, so a
//! failing test leaves nothing behind.
//!
//! - [`Broker`]: `bot up` (embedded broker) or `mosquitto`, on a free port, restartable on the same port.
//! - [`Agent`]: a `bot agent` process, with its stdout and stderr captured line by line.
//! - [`Sub`]: a `mosquitto_sub -v` process, ready once its SUBACK was seen.
//! - [`publish`] and friends: `mosquitto_pub`.
//! - [`Postgres`]: a private PostgreSQL cluster on a free port (`postgres.rs`).
//! - [`keys`]: this test process's operator and server keys; agents started
//!   here trust both, and `bot` commands run here sign with the operator's
//!   (`BOT_KEY`), so the whole suite runs with signed requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

mod postgres;
mod prometheus;

pub use postgres::{PG_USER, Postgres};
pub use prometheus::Prometheus;

/// The signing keys of this test process.
#[derive(Debug)]
pub struct TestKeys {
    /// The operator key file (what `BOT_KEY` names for `bot` commands).
    pub operator: PathBuf,
    /// The server key file (for `bot server --server-key` / `bot up`).
    pub server: PathBuf,
    /// `[[trust]]` tables for both keys, to append to an agent's config.
    pub trust_toml: String,
}

/// This process's keys, made once (in a directory that outlives the tests
/// of this process; it is under the system's temporary directory).
pub fn keys() -> &'static TestKeys {
    static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bot-test-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let make = |name: &str| {
            let path = dir.join(format!("{name}.key"));
            let key = bot_auth::SecretKey::generate().expect("random key");
            key.save(&path).expect("save test key");
            (path, key.public())
        };
        let (operator, op_pub) = make("operator");
        let (server, srv_pub) = make("server");
        let trust_toml = format!(
            "\n[[trust]]\nname = \"test-operator\"\nkey = \"{op_pub}\"\n\n\
             [[trust]]\nname = \"test-server\"\nkey = \"{srv_pub}\"\n"
        );
        TestKeys {
            operator,
            server,
            trust_toml,
        }
    })
}

/// The logins of every embedded broker this process starts: they run
/// secure (`bot up` without `--insecure`) with one data directory, so the
/// operator and server passwords are the same for all, and the `bot`
/// commands run here find the operator's by themselves (`BOT_DATA_DIR`).
#[derive(Debug)]
pub struct Logins {
    /// The shared data directory of the embedded brokers.
    pub data_dir: PathBuf,
    /// The `operator` user's password.
    pub operator_password: String,
    /// The `server` user's password.
    pub server_password: String,
}

/// This process's [`Logins`], made once (`bot up` keeps passwords it finds).
pub fn logins() -> &'static Logins {
    static LOGINS: std::sync::OnceLock<Logins> = std::sync::OnceLock::new();
    LOGINS.get_or_init(|| {
        let data_dir = std::env::temp_dir().join(format!("bot-test-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let write = |file: &str| {
            let password = bot_auth::sign::nonce();
            let path = data_dir.join("broker").join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("broker dir");
            bot_auth::paths::write_private(&path, format!("{password}\n").as_bytes())
                .expect("password file");
            password
        };
        Logins {
            operator_password: write("operator.password"),
            server_password: write("server.password"),
            data_dir,
        }
    })
}

/// `-u operator -P PASSWORD` for the stock mosquitto clients.
fn operator_login() -> [String; 4] {
    [
        "-u".into(),
        "operator".into(),
        "-P".into(),
        logins().operator_password.clone(),
    ]
}

/// A signer with this process's operator key (for hand-made requests).
pub fn operator_signer() -> bot_auth::Signer {
    let key = bot_auth::SecretKey::load(&keys().operator).expect("test operator key");
    bot_auth::Signer::new(key, "tester@test")
}

/// `bot` as a command that signs with this process's operator key, gives a
/// server this process's server key, and finds the operator's broker
/// password of the embedded brokers started here ([`logins`]).
pub fn bot_command(bot: &Path) -> Command {
    let mut c = Command::new(bot);
    c.env("BOT_KEY", &keys().operator)
        .env("BOT_SERVER_KEY", &keys().server)
        .env("BOT_DATA_DIR", &logins().data_dir);
    c
}

/// The default deadline for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);

/// Which broker a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// `bot up --no-agent`: the embedded broker.
    Embedded,
    /// A real mosquitto started by the harness.
    Mosquitto,
}

/// A port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

/// A fresh temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/bot-test-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("bot-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines read from a child's pipe by a background thread.
#[derive(Debug)]
pub struct Lines {
    rx: Receiver<String>,
    /// Every line seen so far (for failure messages).
    pub seen: Vec<String>,
}

impl Lines {
    /// Starts reading `pipe` line by line on a background thread.
    pub fn from_pipe(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_owned();
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line, or `None` after `timeout` (or if the pipe closed).
    pub fn next(&mut self, timeout: Duration) -> Option<String> {
        match self.rx.recv_timeout(timeout) {
            Ok(l) => {
                self.seen.push(l.clone());
                Some(l)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for a line satisfying `pred`, skipping others.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(l) if pred(&l) => return Ok(l),
                Some(_) => {}
                None => bail!(
                    "timed out after {timeout:?} waiting for {what}; last lines:\n{}",
                    self.seen
                        .iter()
                        .rev()
                        .take(15)
                        .rev()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A broker on a free loopback port.
#[derive(Debug)]
pub struct Broker {
    /// Which kind.
    pub kind: BrokerKind,
    /// Its MQTT port (the TLS port of a TLS-only broker).
    pub port: u16,
    /// Its `wss://` port, for [`Broker::start_embedded_tls`].
    pub wss_port: Option<u16>,
    bot: PathBuf,
    child: Child,
    dir: TempDir,
}

impl Broker {
    /// Starts a broker of `kind`. `bot` is the path of the `bot` binary.
    pub fn start(kind: BrokerKind, bot: &Path) -> Result<Broker> {
        Self::start_at(kind, bot, 0)
    }

    /// Starts a broker of `kind` on `port` (0: a free port).
    pub fn start_at(kind: BrokerKind, bot: &Path, port: u16) -> Result<Broker> {
        let dir = TempDir::new("broker");
        let (child, port) = match kind {
            BrokerKind::Embedded => spawn_bot_up(bot, port)?,
            BrokerKind::Mosquitto => {
                let port = if port == 0 { free_port() } else { port };
                (spawn_mosquitto(dir.path(), port)?, port)
            }
        };
        Ok(Broker {
            kind,
            port,
            wss_port: None,
            bot: bot.to_owned(),
            child,
            dir,
        })
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// [`Broker::url`] with the `server` login (for `bot server`).
    pub fn server_url(&self) -> String {
        format!(
            "mqtt://server:{}@127.0.0.1:{}",
            logins().server_password,
            self.port
        )
    }

    /// Kills the broker (as a crash would) and waits for it to be gone.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Starts the broker again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let deadline = Instant::now() + WAIT;
        loop {
            let started = match self.kind {
                BrokerKind::Embedded => spawn_bot_up(&self.bot, self.port).map(|(c, _)| c),
                BrokerKind::Mosquitto => spawn_mosquitto(self.dir.path(), self.port),
            };
            match started {
                Ok(c) => {
                    self.child = c;
                    return Ok(());
                }
                // The old socket may linger for a moment.
                Err(e) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = e;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A secure `bot up` (logins and topic rules on; [`logins`]).
fn spawn_bot_up(bot: &Path, port: u16) -> Result<(Child, u16)> {
    let listen = format!("127.0.0.1:{port}");
    let (child, ports) = spawn_bot_up_with(bot, &["--no-ws", "--listen", &listen], &["mqtt"])?;
    Ok((child, ports[0]))
}

/// Runs `bot up --no-agent --no-server ARGS…` (data in [`logins`]'s
/// directory) and returns it with the ports of its `listening: SCHEME://…`
/// lines for each of `schemes`.
fn spawn_bot_up_with(bot: &Path, args: &[&str], schemes: &[&str]) -> Result<(Child, Vec<u16>)> {
    let mut child = bot_command(bot)
        .args(["up", "--no-agent", "--no-server"])
        .args(args)
        .env("BOT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run bot up")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = Lines::from_pipe(stdout);
    let mut ports = Vec::new();
    for scheme in schemes {
        let prefix = format!("listening: {scheme}://");
        let line = match lines.wait_for("bot up's listening line", WAIT, |l| l.starts_with(&prefix))
        {
            Ok(l) => l,
            Err(e) => {
                kill(&mut child);
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                bail!("{e}\nstderr: {err}");
            }
        };
        let addr: SocketAddr = line
            .trim_start_matches(&prefix)
            .trim_end_matches("/mqtt")
            .parse()
            .with_context(|| format!("bad address line {line:?}"))?;
        ports.push(addr.port());
    }
    // Keep draining stdout so bot up never blocks on a full pipe.
    std::thread::spawn(move || while lines.next(Duration::from_secs(3600)).is_some() {});
    Ok((child, ports))
}

impl Broker {
    /// The embedded broker (`bot up --insecure`) serving only TLS on loopback
    /// ports: `mqtts://` (the broker's `port`) and `wss://…/mqtt`
    /// (`wss_port`), with `certs/server.crt` and `certs/server.key`; with
    /// `require_certificate`, clients must present a certificate of
    /// `certs/ca.crt` (mutual TLS). Not restartable.
    pub fn start_embedded_tls(
        bot: &Path,
        certs: &Path,
        require_certificate: bool,
    ) -> Result<Broker> {
        let file = |n: &str| certs.join(n).display().to_string();
        let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
        // Like the mosquitto of `start_mosquitto_tls`: anonymous clients,
        // held to the client certificate.
        let mut args = vec![
            "--insecure",
            "--no-ws",
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--wss-listen",
            "127.0.0.1:0",
            "--broker-cert",
            &cert,
            "--broker-key",
            &key,
        ];
        if require_certificate {
            args.extend(["--broker-client-ca", &ca]);
        }
        let (child, ports) = spawn_bot_up_with(bot, &args, &["mqtts", "wss"])?;
        Ok(Broker {
            kind: BrokerKind::Embedded,
            port: ports[0],
            wss_port: Some(ports[1]),
            bot: bot.to_owned(),
            child,
            dir: TempDir::new("embedded-tls"),
        })
    }
}

impl Broker {
    /// A mosquitto held to the shipped rules (`docs/mosquitto/acl`, no
    /// anonymous clients) with these users and passwords (a password file
    /// made with the stock `mosquitto_passwd`), on a free port.
    pub fn start_mosquitto_secure(bot: &Path, users: &[(&str, &str)]) -> Result<Broker> {
        let dir = TempDir::new("mosquitto-secure");
        let passwd = dir.path().join("passwd");
        for (i, (user, pw)) in users.iter().enumerate() {
            let mut cmd = Command::new("mosquitto_passwd");
            if i == 0 {
                cmd.arg("-c");
            }
            let out = cmd.arg("-b").arg(&passwd).args([user, pw]).output()?;
            ensure!(
                out.status.success(),
                "mosquitto_passwd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let acl = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/mosquitto/acl");
        let secure = format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwd.display(),
            acl.display()
        );
        let port = free_port();
        let child = spawn_mosquitto_with(dir.path(), port, &secure)?;
        Ok(Broker {
            kind: BrokerKind::Mosquitto,
            port,
            wss_port: None,
            bot: bot.to_owned(),
            child,
            dir,
        })
    }
}

impl Broker {
    /// A mosquitto with a TLS listener only, using `certs/ca.crt`,
    /// `certs/server.crt` and `certs/server.key`; with `require_certificate`,
    /// clients must present a certificate of that CA, whose CN becomes their
    /// user name (mutual TLS).
    pub fn start_mosquitto_tls(
        bot: &Path,
        certs: &Path,
        require_certificate: bool,
    ) -> Result<Broker> {
        let dir = TempDir::new("mosquitto-tls");
        // mosquitto started as root drops to the `mosquitto` user, which
        // cannot read a 0600 key of root's: give it a readable copy.
        let key = dir.path().join("server.key");
        std::fs::copy(certs.join("server.key"), &key)?;
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        let tls = format!(
            "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\n{}",
            certs.join("ca.crt").display(),
            certs.join("server.crt").display(),
            key.display(),
            if require_certificate {
                "require_certificate true\nuse_identity_as_username true\n"
            } else {
                ""
            }
        );
        let port = free_port();
        // The listener line must come before its TLS settings.
        let child = spawn_mosquitto_raw(
            dir.path(),
            port,
            &format!("per_listener_settings false\nlistener {port} 127.0.0.1\n{tls}"),
        )?;
        Ok(Broker {
            kind: BrokerKind::Mosquitto,
            port,
            wss_port: None,
            bot: bot.to_owned(),
            child,
            dir,
        })
    }
}

fn spawn_mosquitto(dir: &Path, port: u16) -> Result<Child> {
    spawn_mosquitto_with(dir, port, "allow_anonymous true\n")
}

fn spawn_mosquitto_with(dir: &Path, port: u16, access: &str) -> Result<Child> {
    spawn_mosquitto_raw(
        dir,
        port,
        &format!("per_listener_settings false\n{access}listener {port} 127.0.0.1\n"),
    )
}

fn spawn_mosquitto_raw(dir: &Path, port: u16, listener: &str) -> Result<Child> {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "{listener}persistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n"
        ),
    )?;
    let mut child = Command::new(mosquitto_bin())
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run mosquitto (is it installed? scripts/test.sh installs it)")?;
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            bail!("mosquitto exited with {status}: {err}");
        }
        if Instant::now() > deadline {
            kill(&mut child);
            bail!("mosquitto did not listen on port {port} within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

fn mosquitto_bin() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// A running `bot agent`.
#[derive(Debug)]
pub struct Agent {
    /// Its name.
    pub name: String,
    /// Its standard output, line by line (`_TEST` prints `Yo` here).
    pub stdout: Lines,
    /// Its log (standard error), line by line.
    pub log: Lines,
    child: Child,
    _dir: TempDir,
}

impl Agent {
    /// Starts `bot agent --name NAME --config <file with `extra_toml`> --broker URL...`
    /// and waits until it has subscribed.
    pub fn start(bot: &Path, name: &str, brokers: &[String], extra_toml: &str) -> Result<Agent> {
        let mut agent = Self::spawn(bot, name, brokers, extra_toml)?;
        agent.wait_ready()?;
        Ok(agent)
    }

    /// Like [`Agent::start`] without waiting for the agent to be ready.
    pub fn spawn(bot: &Path, name: &str, brokers: &[String], extra_toml: &str) -> Result<Agent> {
        let dir = TempDir::new("agent");
        let config = dir.path().join("agent.toml");
        // Each agent gets its own state directory (its id) unless the test sets one.
        let state = if extra_toml.contains("state_dir") {
            String::new()
        } else {
            format!(
                "state_dir = {:?}\n",
                dir.path().join("state").display().to_string()
            )
        };
        // Trust this process's keys unless the test sets its own trust list.
        let trust = if extra_toml.contains("[[trust]]") {
            ""
        } else {
            keys().trust_toml.as_str()
        };
        std::fs::write(&config, format!("{state}{extra_toml}{trust}"))?;
        // Unless the test gives its own login: one registered on the
        // embedded brokers (the README's `bot broker add-agent` step); on
        // a mosquitto that takes anonymous clients it is simply accepted.
        if !(extra_toml.contains("password_file") || extra_toml.contains("username")) {
            let login = register_agent(bot, name, &config, dir.path())?;
            std::fs::write(
                &config,
                format!("password_file = {login:?}\n{state}{extra_toml}{trust}"),
            )?;
        }
        let mut cmd = bot_command(bot);
        cmd.args(["agent", "--name", name, "--config"]).arg(&config);
        for b in brokers {
            cmd.arg("--broker").arg(b);
        }
        let mut child = cmd
            .env("BOT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run bot agent")?;
        let stdout = Lines::from_pipe(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        let log = Lines::from_pipe(child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?);
        Ok(Agent {
            name: name.to_owned(),
            stdout,
            log,
            child,
            _dir: dir,
        })
    }

    /// Waits for the next "ready" log line (after start or a reconnection).
    pub fn wait_ready(&mut self) -> Result<()> {
        self.log
            .wait_for("the agent's ready line", WAIT, |l| {
                l.contains("ready: listening on BUS")
            })
            .map(drop)
    }

    /// Is the process still running?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("agent did not exit within {WAIT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's persistent id (it is created before the agent is ready).
    pub fn id(&self) -> Result<String> {
        let path = self._dir.path().join("state").join("agent-id");
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned())
    }

    /// Sends a signal (e.g. "STOP", "CONT", "KILL") to the agent process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()?
            .success();
        anyhow::ensure!(ok, "kill -{sig} failed");
        Ok(())
    }

    /// Waits for the process to exit (after a kill).
    pub fn wait_exit(&mut self) -> Result<std::process::ExitStatus> {
        Ok(self.child.wait()?)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Registers the agent of `config` (its id from `bot agent --print-id`) as
/// `name` with the embedded brokers' users ([`logins`]); returns the path of
/// its password file (in `dir`).
fn register_agent(bot: &Path, name: &str, config: &Path, dir: &Path) -> Result<String> {
    let out = output(
        bot_command(bot)
            .args(["agent", "--print-id", "--name", name, "--config"])
            .arg(config),
    )?;
    ensure!(
        out.status.success(),
        "bot agent --print-id: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = output(
        bot_command(bot)
            .args([
                "broker",
                "add-agent",
                "--id",
                &id,
                "--name",
                name,
                "--data-dir",
            ])
            .arg(&logins().data_dir),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .ok_or_else(|| {
            anyhow!(
                "bot broker add-agent printed no password: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let path = dir.join("mqtt.password");
    bot_auth::paths::write_private(&path, format!("{password}\n").as_bytes())?;
    Ok(path.display().to_string())
}

/// A `mosquitto_sub -v` process.
#[derive(Debug)]
pub struct Sub {
    lines: Lines,
    child: Child,
}

impl Sub {
    /// Subscribes to `topics` on `port` and waits for the SUBACK.
    pub fn start(port: u16, topics: &[&str]) -> Result<Sub> {
        Self::start_with(port, topics, &[])
    }

    /// Like [`Sub::start`] with extra `mosquitto_sub` arguments (e.g. `-V mqttv5`).
    pub fn start_with(port: u16, topics: &[&str], extra: &[&str]) -> Result<Sub> {
        // mosquitto_sub's debug lines are block-buffered on a pipe: stdbuf
        // makes them line-buffered so the SUBACK line arrives when it happens.
        let mut cmd = Command::new("stdbuf");
        cmd.args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-v",
            "-d",
        ]);
        cmd.args(extra);
        if !extra.contains(&"-u") {
            cmd.args(operator_login());
        }
        for t in topics {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run mosquitto_sub (scripts/test.sh installs mosquitto-clients)")?;
        let stdout: ChildStdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut sub = Sub {
            lines: Lines::from_pipe(stdout),
            child,
        };
        sub.lines.wait_for("mosquitto_sub's SUBACK", WAIT, |l| {
            l.contains("received SUBACK")
        })?;
        Ok(sub)
    }

    /// Reads the next message as `(topic, payload)`, skipping `-d` debug
    /// lines (they start with "Client " or "Subscribed (mid"). Multi-line payloads are not used by
    /// these tests.
    pub fn next(&mut self, timeout: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.next(left)?;
            if line.starts_with("Client ") || line.starts_with("Subscribed (mid") {
                continue;
            }
            let (t, p) = line.split_once(' ').unwrap_or((&line, ""));
            return Some((t.to_owned(), p.to_owned()));
        }
    }

    /// Waits for a message satisfying `pred` (others are skipped and returned too).
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str, &str) -> bool,
    ) -> Result<(String, String)> {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some((t, p)) if pred(&t, &p) => return Ok((t, p)),
                Some(m) => skipped.push(m),
                None => bail!(
                    "timed out after {timeout:?} waiting for {what}; got instead: {:?}",
                    skipped.iter().rev().take(10).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Collects exactly `n` messages matching `pred`, skipping others.
    pub fn collect(
        &mut self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&str, &str) -> bool,
    ) -> Result<Vec<(String, String)>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some((t, p)) if pred(&t, &p) => got.push((t, p)),
                Some(_) => {}
                None => bail!(
                    "got {} of {n} messages within {timeout:?}: {got:?}",
                    got.len()
                ),
            }
        }
        Ok(got)
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// How long a one-shot client (`mosquitto_pub`, a `bot` command) may run
/// before the harness kills it and fails the test: a hung client must fail
/// its test, never hang the suite (CI has a time limit for the whole run).
pub const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// What a process run by [`output_within`] left: its exit status (`None`
/// when it was killed at the deadline), stdout and stderr.
#[derive(Debug)]
pub struct Finished {
    /// The exit status; `None` if the harness killed it at the deadline.
    pub status: Option<std::process::ExitStatus>,
    /// Whether the harness killed it at the deadline.
    pub timed_out: bool,
    /// Everything it wrote on stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote on stderr.
    pub stderr: Vec<u8>,
}

/// Runs `cmd` with `stdin` on its standard input and waits for it, at most
/// `limit`: then it is killed and `timed_out` is set. Stdout and stderr are
/// read by threads, so a chatty process cannot block on a full pipe.
pub fn output_within(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let input = stdin.to_vec();
    let mut pipe_in = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
    // A process that exits early closes its stdin: the write error is moot.
    let writer = std::thread::spawn(move || {
        let _ = pipe_in.write_all(&input);
    });
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (Some(status), false);
        }
        if Instant::now() >= deadline {
            kill(&mut child);
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    Ok(Finished {
        status,
        timed_out,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// `cmd.output()` for a process that must finish within [`CLIENT_LIMIT`]
/// (standard input is empty): a hang is an error naming the command.
pub fn output(cmd: &mut Command) -> Result<std::process::Output> {
    let done = output_within(cmd, b"", CLIENT_LIMIT)?;
    match done.status {
        Some(status) => Ok(std::process::Output {
            status,
            stdout: done.stdout,
            stderr: done.stderr,
        }),
        None => bail!(
            "{cmd:?} did not finish within {CLIENT_LIMIT:?}: {}",
            String::from_utf8_lossy(&done.stderr)
        ),
    }
}

/// Sends SIGINT (Ctrl-C) to `child` and waits for it to exit, at most
/// `limit`: then it is killed and this fails, saying `what` ignored it.
pub fn interrupt(
    child: &mut Child,
    limit: Duration,
    what: &str,
) -> Result<std::process::ExitStatus> {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if Instant::now() > deadline {
            kill(child);
            bail!("{what} did not end within {limit:?} of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a `mosquitto_pub` command (with `-d`) to completion, within
/// [`CLIENT_LIMIT`]. mosquitto_pub 2.0 sometimes never exits after it has
/// sent its DISCONNECT (eclipse-mosquitto issue 2739); its debug output then
/// shows the publish complete, so the hang is not a failure to publish and
/// the process is killed. Any other hang is an error naming what it printed.
fn run_pub(mut cmd: Command, stdin: &[u8]) -> Result<()> {
    cmd.arg("-d");
    let done = output_within(&mut cmd, stdin, CLIENT_LIMIT)?;
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    if done.timed_out {
        ensure!(
            stdout.contains("sending DISCONNECT"),
            "mosquitto_pub hung for {CLIENT_LIMIT:?} before it finished publishing: {stdout}{stderr}"
        );
        return Ok(());
    }
    ensure!(
        done.status.is_some_and(|s| s.success()),
        "mosquitto_pub failed: {stderr}"
    );
    Ok(())
}

/// `mosquitto_pub -t TOPIC -s` with `payload` on standard input (any bytes;
/// an empty payload is sent with `-n`).
pub fn publish(port: u16, topic: &str, payload: &[u8]) -> Result<()> {
    publish_with(port, topic, payload, &[])
}

/// [`publish`] with extra `mosquitto_pub` arguments (`-u USER -P PASS`, …).
pub fn publish_with(port: u16, topic: &str, payload: &[u8], extra: &[&str]) -> Result<()> {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic]);
    if extra.contains(&"-u") {
        cmd.args(extra);
    } else {
        cmd.args(extra).args(operator_login());
    }
    cmd.arg(if payload.is_empty() { "-n" } else { "-s" });
    run_pub(cmd, payload)
}

/// `mosquitto_pub -l`: one message per line of `lines`, in one connection (a burst).
pub fn publish_lines(port: u16, topic: &str, lines: &[String]) -> Result<()> {
    publish_lines_with(port, topic, lines, &[])
}

/// [`publish_lines`] with extra `mosquitto_pub` arguments (`-u USER -P PASS`, …).
pub fn publish_lines_with(port: u16, topic: &str, lines: &[String], extra: &[&str]) -> Result<()> {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        topic,
        "-l",
    ]);
    if extra.contains(&"-u") {
        cmd.args(extra);
    } else {
        cmd.args(extra).args(operator_login());
    }
    let mut input = String::new();
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    run_pub(cmd, input.as_bytes())
}

/// Runs `bot ARGS…` to completion and returns (exit code, stdout, stderr).
pub fn run_bot(bot: &Path, args: &[&str]) -> Result<(i32, String, String)> {
    let out = output(bot_command(bot).args(args))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
