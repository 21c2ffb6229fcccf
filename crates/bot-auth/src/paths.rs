//! Where keys live by default.
//!
//! - Operator keys: `$XDG_CONFIG_HOME/bot/keys/<name>.key` (else
//!   `~/.config/bot/keys`), made by `bot keys new`.
//! - `bot up` and `bot server` keep theirs in their data directory
//!   (`<state dir>/server`): `server.key`, and `operator.key`, the local
//!   operator's key that `bot up` makes on first start.
//! - The state directory: `/var/lib/bot` for root, else
//!   `$XDG_STATE_HOME/bot` or `~/.local/state/bot`.

use std::path::PathBuf;

/// The user's `bot` config directory.
pub fn config_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("bot");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".config/bot"),
        None => PathBuf::from(".bot-config"),
    }
}

/// Where `bot keys new` puts operator keys.
pub fn keys_dir() -> PathBuf {
    config_dir().join("keys")
}

/// `/var/lib/bot` for root, else `$XDG_STATE_HOME/bot` or `~/.local/state/bot`.
pub fn state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/bot");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("bot");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/bot"),
        None => PathBuf::from(".bot-state"),
    }
}

/// The data directory of `bot up` and `bot server` when no `--data-dir`
/// is given: `BOT_DATA_DIR` if set (the same variable those commands read),
/// else `<state dir>/server`.
pub fn server_data_dir() -> PathBuf {
    match std::env::var_os("BOT_DATA_DIR").filter(|x| !x.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => state_dir().join("server"),
    }
}

/// The key a name or path given to `--key` means: a path when it contains
/// `/` or ends in `.key`, else `<keys dir>/<name>.key`.
pub fn key_path(name_or_path: &str) -> PathBuf {
    if name_or_path.contains('/') || name_or_path.ends_with(".key") {
        PathBuf::from(name_or_path)
    } else {
        keys_dir().join(format!("{name_or_path}.key"))
    }
}

/// The operator key the CLI uses when none is named: `default` in the keys
/// directory, else the local `bot up`'s `operator.key` (if this user can
/// read it).
pub fn default_operator_key() -> Option<PathBuf> {
    [
        keys_dir().join("default.key"),
        server_data_dir().join("operator.key"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// The embedded broker's users and generated passwords (`bot up`):
/// `<data dir>/broker`.
pub fn broker_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("broker")
}

/// The MQTT password file of the local operator that `bot up` makes
/// (`<default data dir>/broker/operator.password`), if this user can read it.
pub fn default_operator_password() -> Option<PathBuf> {
    let p = broker_dir(&server_data_dir()).join("operator.password");
    std::fs::File::open(&p).is_ok().then_some(p)
}

/// The CA certificate of the local `bot up`'s TLS listeners
/// (`<data dir>/broker/tls/ca.crt`), if it exists.
pub fn default_local_ca() -> Option<PathBuf> {
    let p = broker_dir(&server_data_dir()).join("tls/ca.crt");
    p.exists().then_some(p)
}

/// Reads a password file: its first line, trimmed; refused when group or
/// others may read it, or when it is empty or larger than 4 KiB.
pub fn read_password(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{}: other users may read this password file; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    if meta.len() > 4096 {
        return Err(format!(
            "{}: {} bytes is too large for a password file",
            path.display(),
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(format!("{}: the password file is empty", path.display()));
    }
    Ok(line)
}

/// Writes `bytes` to `path`, mode 0600, replacing the file atomically
/// (a temporary file, synced, then renamed: a reader never sees half of it).
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
