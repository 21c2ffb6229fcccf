//! Agent configuration: one serde struct, defaults in one place, every field
//! documented (`docs/agent.example.toml` is checked against it by a test).
//!
//! Layering: the TOML file (`--config`), then command-line flags; the caller
//! (the `bot` binary) applies the flags with the `set_*`-style public fields and
//! then calls [`AgentConfig::validate`], which reports every problem at once.

use std::path::{Path, PathBuf};

use bot_bus::BrokerUrl;
use serde::{Deserialize, Serialize};

/// Largest configuration file accepted, in bytes.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Everything the agent can be told. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The agent's name: its topic is `BUS/<name>` and its samples go to
    /// `DATA/<name>`. Default: the host name. 1..=128 characters, none of
    /// `/ + #`, no whitespace or control characters.
    pub name: Option<String>,
    /// Broker URLs (`mqtt://HOST:PORT`), tried in order; the agent fails over
    /// to the next when one is unreachable and returns to the first after a
    /// connection is lost. Default: `["mqtt://127.0.0.1:1883"]`.
    pub brokers: Vec<String>,
    /// Directory of plugin executables; each one whose file name ends in
    /// `_enabled` is run every interval while the agent is selected. Default:
    /// none (no plugins).
    pub plugins: Option<PathBuf>,
    /// Measuring interval in seconds (0.1..=86400) at start and after `LUN`.
    /// `TSSET` changes it live. Default: 10.
    pub interval: f64,
    /// Seconds a plugin may run before its process group is killed. Default: 5.
    pub plugin_timeout: f64,
    /// Largest plugin output read per run, in bytes; the rest is discarded.
    /// Default: 65536.
    pub plugin_output_limit: usize,
    /// When a measuring round takes longer than the interval, raise the
    /// interval to 1.5 × the round's duration (the agent adjusts its own
    /// clock). A `core.overrun` sample is published either way. Default: true.
    pub auto_raise_interval: bool,
    /// Built-in collectors to run while selected. Known: `load`, `stat`, `ps`,
    /// `files`, `memory`. Default: all of them.
    pub collectors: Vec<String>,
    /// MQTT keep-alive in seconds (1..=3600): a broker declares the agent gone
    /// after 1.5 × this without traffic. Default: 30.
    pub keep_alive: u64,
    /// Longest wait between reconnection rounds, in seconds (1..=3600). The
    /// wait doubles from 0.5 s up to this, with random jitter. Default: 30.
    pub backoff_max: f64,
    /// Largest MQTT packet accepted from the broker, in bytes. Bigger packets
    /// close the connection (MQTT 3.1.1 cannot refuse them politely), so keep
    /// it at or above the broker's limit. Default: 4194304 (4 MiB).
    pub max_packet_size: usize,
    /// Directory for the agent's persistent state (its UUID in `agent-id`).
    /// Default: `/var/lib/bot` when run as root, else
    /// `$XDG_STATE_HOME/bot` or `~/.local/state/bot`.
    pub state_dir: Option<PathBuf>,
    /// Tags (classes) of this agent, matched by `tag:NAME` in filters.
    /// Each a valid topic level (no `/ + #`, no whitespace). Default: none.
    pub tags: Vec<String>,
    /// Work-queue pools this agent takes jobs from (`bot run --any N --pool P`).
    /// Default: none.
    pub pools: Vec<String>,
    /// Directory of fact executables: each prints a JSON object or
    /// `key=value` lines, merged into the agent's facts. Default: none.
    pub facts_dir: Option<PathBuf>,
    /// Seconds between fact refreshes; the status is republished when facts
    /// change (10..=86400). Default: 300.
    pub facts_refresh: u64,
    /// Seconds between heartbeats on `bot/v1/heartbeat/<id>` (1..=3600). Default: 30.
    pub heartbeat: u64,
    /// `exec` requests run at the same time; more wait for a free slot
    /// (1..=1024). `ping`, `facts`, `status` and `cancel` never wait.
    /// Default: 16.
    pub max_concurrent_requests: usize,
    /// `exec` requests that may wait for a slot (0..=100000); one more is
    /// refused `busy` with the queue length. Default: 256.
    pub max_queued_requests: usize,
    /// Longest `timeout_s` an `exec` request may ask for, in seconds. Default: 86400.
    pub exec_max_timeout: f64,
    /// When a command exits but left background children holding its
    /// output, kill its whole process group (true, systemd's
    /// `KillMode=control-group`) or leave them running (false, `KillMode=process`).
    /// The reply says which (`descendants`). Default: false.
    pub exec_kill_descendants: bool,
    /// Static facts, e.g. `role = "web"`, `rack = 4`.
    pub facts: std::collections::BTreeMap<String, toml::Value>,
    /// Named checks (`[checks.NAME]`), run by the `check` action only
    /// (Nagios plugin semantics), e.g. `command = ["/usr/lib/nagios/plugins/check_load", "-w", "5,4,3", "-c", "10,8,6"]`.
    /// A key may be trusted for `check` without `exec`. Default: none.
    pub checks: std::collections::BTreeMap<String, CheckConfig>,
    /// Limits of the classic text language.
    pub limits: LimitsConfig,
    /// Answer the classic text protocol on `BUS` and `BUS/<name>` (it never
    /// runs commands: `PING`, arithmetic, measuring). Default: true.
    pub classic: bool,
    /// MQTT user name for brokers whose URL names none. Default: the agent's
    /// id (what `bot broker add-agent --id ID` registers on a secure `bot up`).
    pub username: Option<String>,
    /// File holding the MQTT password (mode 0600; its first line). Default:
    /// none (log in only as the broker URLs say).
    pub password_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) to trust for `mqtts://` brokers. Default: the
    /// system's roots.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that require one (mutual TLS).
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, keep it mode 0600).
    pub tls_key: Option<PathBuf>,
    /// The keys whose signed requests this agent obeys, each with its policy
    /// (`[[trust]]` tables: `name`, `key` as `bot keys show` prints it,
    /// optional `actions`, `commands` globs and `filter`). An unsigned
    /// request, or one signed by any other key, runs nothing. Default: none
    /// (the agent answers no structured request until a key is trusted).
    pub trust: Vec<bot_auth::TrustEntry>,
}

/// One `[checks.NAME]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// The plugin and its arguments, run directly (no shell), in its own
    /// process group, with exec's output cap.
    pub command: Vec<String>,
    /// Seconds before the plugin's process group is killed (the check is
    /// then UNKNOWN, "timed out"). Default: 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

/// Limits of the classic text language (see `shared/forth.md`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest program accepted, in bytes. Default: 65536.
    pub max_payload: usize,
    /// Deepest data stack. Default: 64.
    pub max_stack: usize,
    /// Longest string value, in bytes. Default: 65536.
    pub max_string: usize,
    /// Deepest `EVAL` nesting. Default: 8.
    pub max_eval_depth: usize,
    /// Most values kept with `FREEZE`, all names together. Default: 256.
    pub max_stored: usize,
    /// Most words and literals executed per message. Default: 100000.
    pub max_steps: u64,
}

/// The built-in collectors, in the order they run (`bot_proto::metrics::COLLECTORS`:
/// the server checks the live config against the same list).
pub const COLLECTORS: [&str; 10] = bot_proto::metrics::COLLECTORS;

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            name: None,
            brokers: vec!["mqtt://127.0.0.1:1883".to_owned()],
            plugins: None,
            interval: bot_lang::DEFAULT_INTERVAL,
            plugin_timeout: 5.0,
            plugin_output_limit: 64 * 1024,
            auto_raise_interval: true,
            collectors: COLLECTORS.iter().map(|s| (*s).to_owned()).collect(),
            keep_alive: 30,
            backoff_max: 30.0,
            max_packet_size: 4 * 1024 * 1024,
            state_dir: None,
            tags: Vec::new(),
            pools: Vec::new(),
            facts_dir: None,
            facts_refresh: 300,
            heartbeat: 30,
            max_concurrent_requests: 16,
            max_queued_requests: 256,
            exec_max_timeout: 86_400.0,
            exec_kill_descendants: false,
            facts: std::collections::BTreeMap::new(),
            limits: LimitsConfig::default(),
            classic: true,
            username: None,
            password_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            trust: Vec::new(),
            checks: Default::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = bot_lang::Limits::default();
        LimitsConfig {
            max_payload: l.max_payload,
            max_stack: l.max_stack,
            max_string: l.max_string,
            max_eval_depth: l.max_eval_depth,
            max_stored: l.max_stored,
            max_steps: l.max_steps,
        }
    }
}

impl From<&LimitsConfig> for bot_lang::Limits {
    fn from(c: &LimitsConfig) -> Self {
        bot_lang::Limits {
            max_payload: c.max_payload,
            max_stack: c.max_stack,
            max_string: c.max_string,
            max_eval_depth: c.max_eval_depth,
            max_stored: c.max_stored,
            max_steps: c.max_steps,
        }
    }
}

/// A configuration that cannot be used. The message names the file, the key
/// and the bad value; [`ConfigError::Invalid`] lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is too big to be a config file.
    #[error("config file {path} is {size} bytes, limit {MAX_CONFIG_BYTES}")]
    TooBig {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// TOML syntax or type error (the message has line and column).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// One or more values are out of range.
    #[error("invalid agent configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl AgentConfig {
    /// Reads a TOML file. Unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<AgentConfig, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooBig {
                path: path.to_owned(),
                size: meta.len(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<AgentConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Checks every value and returns the usable form, or every problem found.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        let mut problems = Vec::new();
        let name = match &self.name {
            Some(n) => n.clone(),
            None => default_name(),
        };
        if let Err(why) = check_name(&name) {
            problems.push(format!("name {name:?}: {why}"));
        }
        let mut brokers = Vec::new();
        if self.brokers.is_empty() {
            problems.push("brokers: at least one broker URL is needed".to_owned());
        }
        for b in &self.brokers {
            match b.parse::<BrokerUrl>() {
                Ok(u) => brokers.push(u),
                Err(e) => problems.push(format!("brokers: {e}")),
            }
        }
        let range = bot_lang::MIN_INTERVAL..=bot_lang::MAX_INTERVAL;
        if !range.contains(&self.interval) {
            problems.push(format!(
                "interval: {} is not in 0.1..86400 seconds",
                self.interval
            ));
        }
        if !(0.1..=3600.0).contains(&self.plugin_timeout) {
            problems.push(format!(
                "plugin_timeout: {} is not in 0.1..3600 seconds",
                self.plugin_timeout
            ));
        }
        if !(1..=16 * 1024 * 1024).contains(&self.plugin_output_limit) {
            problems.push(format!(
                "plugin_output_limit: {} is not in 1..16777216 bytes",
                self.plugin_output_limit
            ));
        }
        for (name, check) in &self.checks {
            if let Err(why) = bot_proto::action::check_name(name) {
                problems.push(format!("checks.{name}: {why}"));
            }
            if check.command.is_empty() || check.command[0].is_empty() {
                problems.push(format!("checks.{name}: command must name a program"));
            }
            if let Some(t) = check.timeout
                && !(t.is_finite() && t > 0.0 && t <= self.exec_max_timeout)
            {
                problems.push(format!(
                    "checks.{name}: timeout {t} is not in 0..{} seconds (exec_max_timeout)",
                    self.exec_max_timeout
                ));
            }
        }
        for c in &self.collectors {
            if !COLLECTORS.contains(&c.as_str()) {
                problems.push(format!(
                    "collectors: unknown collector {c:?} (known: {})",
                    COLLECTORS.join(", ")
                ));
            }
        }
        if !(1..=3600).contains(&self.keep_alive) {
            problems.push(format!(
                "keep_alive: {} is not in 1..3600 seconds",
                self.keep_alive
            ));
        }
        if !(1.0..=3600.0).contains(&self.backoff_max) {
            problems.push(format!(
                "backoff_max: {} is not in 1..3600 seconds",
                self.backoff_max
            ));
        }
        if !(1024..=256 * 1024 * 1024).contains(&self.max_packet_size) {
            problems.push(format!(
                "max_packet_size: {} is not in 1024..268435456 bytes",
                self.max_packet_size
            ));
        }
        let l = &self.limits;
        let checks: [(&str, u64, u64, u64); 6] = [
            (
                "limits.max_payload",
                l.max_payload as u64,
                1,
                16 * 1024 * 1024,
            ),
            ("limits.max_stack", l.max_stack as u64, 1, 100_000),
            (
                "limits.max_string",
                l.max_string as u64,
                1,
                16 * 1024 * 1024,
            ),
            ("limits.max_eval_depth", l.max_eval_depth as u64, 0, 64),
            ("limits.max_stored", l.max_stored as u64, 0, 1_000_000),
            ("limits.max_steps", l.max_steps, 1, 100_000_000),
        ];
        for (key, value, lo, hi) in checks {
            if !(lo..=hi).contains(&value) {
                problems.push(format!("{key}: {value} is not in {lo}..{hi}"));
            }
        }
        if let Some(dir) = &self.plugins
            && !dir.is_dir()
        {
            problems.push(format!("plugins: {} is not a directory", dir.display()));
        }
        if let Some(dir) = &self.facts_dir
            && !dir.is_dir()
        {
            problems.push(format!("facts_dir: {} is not a directory", dir.display()));
        }
        for (key, list) in [("tags", &self.tags), ("pools", &self.pools)] {
            for t in list {
                if let Err(why) = check_name(t) {
                    problems.push(format!("{key}: {t:?} {why}"));
                }
            }
        }
        if !(10..=86_400).contains(&self.facts_refresh) {
            problems.push(format!(
                "facts_refresh: {} is not in 10..86400 seconds",
                self.facts_refresh
            ));
        }
        if !(1..=3600).contains(&self.heartbeat) {
            problems.push(format!(
                "heartbeat: {} is not in 1..3600 seconds",
                self.heartbeat
            ));
        }
        if self.max_queued_requests > 100_000 {
            problems.push(format!(
                "max_queued_requests: {} is not in 0..100000",
                self.max_queued_requests
            ));
        }
        if !(1..=1024).contains(&self.max_concurrent_requests) {
            problems.push(format!(
                "max_concurrent_requests: {} is not in 1..1024",
                self.max_concurrent_requests
            ));
        }
        if !(1.0..=604_800.0).contains(&self.exec_max_timeout) {
            problems.push(format!(
                "exec_max_timeout: {} is not in 1..604800 seconds",
                self.exec_max_timeout
            ));
        }
        let mut facts = crate::facts::Facts::new();
        for (k, v) in &self.facts {
            if crate::facts::RESERVED.contains(&k.as_str()) {
                problems.push(format!(
                    "facts.{k}: {k} is set by the agent and cannot be configured"
                ));
                continue;
            }
            match serde_json::to_value(v) {
                Ok(j) => {
                    facts.insert(k.clone(), j);
                }
                Err(e) => problems.push(format!("facts.{k}: {e}")),
            }
        }
        let mut password = None;
        if let Some(p) = &self.password_file {
            match bot_auth::paths::read_password(p) {
                Ok(pw) => password = Some(pw),
                Err(e) => problems.push(format!("password_file: {e}")),
            }
        }
        let mut tls = None;
        if self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_key.is_some() {
            let files = bot_bus::tls::TlsFiles {
                ca_file: self.tls_ca.clone(),
                cert_file: self.tls_cert.clone(),
                key_file: self.tls_key.clone(),
            };
            match bot_bus::tls::client_config(&files) {
                Ok(c) => tls = Some(c),
                Err(e) => problems.push(format!("tls: {e}")),
            }
        }
        let trust = match bot_auth::Trust::new(&self.trust) {
            Ok(t) => t,
            Err(p) => {
                problems.extend(p);
                bot_auth::Trust::default()
            }
        };
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        let state_dir = self.state_dir.clone().unwrap_or_else(default_state_dir);
        Ok(ValidConfig {
            name,
            brokers,
            state_dir,
            facts,
            trust,
            password,
            tls,
            config: self.clone(),
        })
    }
}

/// `/var/lib/bot` for root, else `$XDG_STATE_HOME/bot` or `~/.local/state/bot`.
pub fn default_state_dir() -> PathBuf {
    bot_auth::paths::state_dir()
}

/// A configuration that passed [`AgentConfig::validate`].
#[derive(Debug, Clone)]
pub struct ValidConfig {
    /// The agent's name (configured or the host name).
    pub name: String,
    /// Parsed broker URLs, in order.
    pub brokers: Vec<BrokerUrl>,
    /// Where the agent keeps its state.
    pub state_dir: PathBuf,
    /// Static facts, as JSON.
    pub facts: crate::facts::Facts,
    /// The trusted keys, parsed.
    pub trust: bot_auth::Trust,
    /// The MQTT password (from `password_file`), if any.
    pub password: Option<String>,
    /// TLS for `mqtts://` brokers, when configured.
    pub tls: Option<std::sync::Arc<bot_bus::rustls::ClientConfig>>,
    /// The rest, as given.
    pub config: AgentConfig,
}

/// The host name, or `localhost` if the system has none.
pub fn default_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Is `name` usable as an agent name (and so as an MQTT topic level)?
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > 128 {
        return Err("is longer than 128 bytes");
    }
    if name
        .chars()
        .any(|c| matches!(c, '/' | '+' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err("must not contain '/', '+', '#', whitespace or control characters");
    }
    Ok(())
}

impl AgentConfig {
    /// Every top-level key, in order: a configuration with every optional
    /// field set, serialised. Built without `..Default`, so a new field
    /// must be added here, and the tests then require it in
    /// `docs/agent.example.toml` and in `--print-config`.
    pub fn keys() -> Vec<String> {
        let p = || Some(PathBuf::from("/x"));
        let sample = AgentConfig {
            name: Some("n".into()),
            brokers: vec![],
            plugins: p(),
            interval: 1.0,
            plugin_timeout: 1.0,
            plugin_output_limit: 1,
            auto_raise_interval: true,
            collectors: vec![],
            keep_alive: 1,
            backoff_max: 1.0,
            max_packet_size: 1,
            state_dir: p(),
            tags: vec![],
            pools: vec![],
            facts_dir: p(),
            facts_refresh: 1,
            heartbeat: 1,
            max_concurrent_requests: 1,
            max_queued_requests: 1,
            exec_max_timeout: 1.0,
            exec_kill_descendants: false,
            facts: Default::default(),
            checks: Default::default(),
            limits: LimitsConfig::default(),
            classic: true,
            username: Some("u".into()),
            password_file: p(),
            tls_ca: p(),
            tls_cert: p(),
            tls_key: p(),
            trust: vec![],
        };
        match toml::Table::try_from(&sample) {
            Ok(t) => t.keys().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The configuration in force, as TOML (`bot agent --print-config`):
    /// the struct itself serialised, with the name and state directory
    /// resolved; a key with no value is shown commented out (`# key =`,
    /// unset), so every key appears.
    pub fn to_toml(&self) -> String {
        let mut c = self.clone();
        c.name.get_or_insert_with(default_name);
        c.state_dir.get_or_insert_with(default_state_dir);
        let body = toml::to_string(&c).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        let present: std::collections::HashSet<String> = toml::Table::try_from(&c)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        let mut out = String::new();
        for key in Self::keys() {
            if !present.contains(&key) {
                out += &format!("# {key} = (unset)\n");
            }
        }
        out + &body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_matches_the_defaults() {
        let text = include_str!("../../../docs/agent.example.toml");
        let parsed = AgentConfig::from_toml(text).expect("example parses");
        // The example also shows a tag and a static fact (defaults: none).
        let mut facts = std::collections::BTreeMap::new();
        facts.insert("role".to_owned(), toml::Value::String("web".to_owned()));
        let defaults = AgentConfig {
            name: Some("web1".to_owned()),
            tags: vec!["web".to_owned()],
            facts,
            // And one check (default: none).
            checks: [(
                "load".to_owned(),
                CheckConfig {
                    command: [
                        "/usr/lib/nagios/plugins/check_load",
                        "-w",
                        "5,4,3",
                        "-c",
                        "10,8,6",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    timeout: Some(10.0),
                },
            )]
            .into_iter()
            .collect(),
            // And one trusted key with a policy (default: none).
            trust: vec![bot_auth::TrustEntry {
                name: "alice".to_owned(),
                key: "ed25519:p7lcWwGhKeHoYiUpSC/6yngwXg/qZDqfKFM/RDWMIsY=".to_owned(),
                actions: bot_proto::action::NAMES.map(str::to_owned).to_vec(),
                commands: vec!["systemctl restart *".to_owned()],
                filter: None,
            }],
            ..AgentConfig::default()
        };
        assert_eq!(
            parsed, defaults,
            "docs/agent.example.toml drifted from the defaults"
        );
        // Every field of the struct appears in the example (the key list
        // comes from the type, so a new field fails here until documented).
        let keys = AgentConfig::keys();
        assert!(keys.len() >= 30, "{keys:?}");
        for key in keys
            .iter()
            .chain(["max_payload", "max_steps"].map(String::from).iter())
        {
            assert!(
                text.contains(&format!("{key} ="))
                    || text.contains(&format!("[{key}]"))
                    || text.contains(&format!("[{key}."))
                    || text.contains(&format!("[[{key}]]")),
                "docs/agent.example.toml lacks {key}"
            );
        }
    }

    #[test]
    fn print_config_shows_every_key_and_reads_back_as_the_same_config() {
        let mut c = AgentConfig::from_toml(
            "name = \"w\"\ntags = [\"web\"]\n[facts]\nrole = \"web\"\n[limits]\nmax_stack = 9\n",
        )
        .expect("parses");
        let text = c.to_toml();
        for key in AgentConfig::keys() {
            assert!(
                text.contains(&format!("{key} ="))
                    || text.contains(&format!("[{key}]"))
                    || text.contains(&format!("[[{key}]]")),
                "--print-config lacks {key}:\n{text}"
            );
        }
        let back = AgentConfig::from_toml(&text).expect("--print-config output parses");
        c.state_dir.get_or_insert_with(default_state_dir);
        assert_eq!(back, c, "{text}");
    }

    #[test]
    fn unknown_keys_and_bad_types_are_named() {
        let err = AgentConfig::from_toml("nmae = \"x\"").expect_err("typo");
        assert!(err.contains("nmae"), "{err}");
        let err = AgentConfig::from_toml("interval = \"fast\"").expect_err("type");
        assert!(err.contains("interval"), "{err}");
        let err = AgentConfig::from_toml("[limits]\nmax_stak = 3").expect_err("typo");
        assert!(err.contains("max_stak"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let c = AgentConfig {
            name: Some("a/b".into()),
            brokers: vec!["foo://x".into(), "mqtt://h:0".into()],
            interval: -1.0,
            collectors: vec!["gpu".into()],
            keep_alive: 0,
            ..AgentConfig::default()
        };
        let ConfigError::Invalid(problems) = c.validate().expect_err("invalid") else {
            panic!("wrong error kind");
        };
        let all = problems.join("\n");
        for want in [
            "name \"a/b\"",
            "foo",
            "port \"0\"",
            "interval: -1",
            "\"gpu\"",
            "keep_alive: 0",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn defaults_are_valid() {
        let v = AgentConfig::default().validate().expect("defaults valid");
        assert_eq!(v.brokers.len(), 1);
        assert!(!v.name.is_empty());
    }

    #[test]
    fn names() {
        assert!(check_name("web-01.example.com").is_ok());
        for bad in ["", "a/b", "a+", "#", "a b", "x\u{7}"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(129)).is_err());
    }
}
