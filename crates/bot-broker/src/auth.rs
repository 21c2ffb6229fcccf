//! Who may connect to the embedded broker, and what each may publish and
//! subscribe to: users from a file (`users.toml`, re-read when it changes),
//! each with a role, checked in-process by rmqtt hooks.
//!
//! ```toml
//! [[user]]
//! name = "operator"            # the MQTT user name
//! role = "operator"            # operator | server | agent
//! password_sha256 = "…"        # SHA-256 of the password, hex
//!
//! [[user]]
//! name = "9eaa4552-9c92-4938-a4f6-fd3031b10590"   # an agent: its id
//! role = "agent"
//! agent_name = "web1"
//! password_sha256 = "…"
//! ```
//!
//! Rules ([`may_publish`], [`may_subscribe`], [`may_connect`]):
//! - nobody connects without a user name and the right password;
//! - an **agent** (user name = its id, with its name) publishes only its own
//!   status, heartbeat and metrics, `RES`, `DATA/<its name>`, and replies (any topic
//!   outside the protected namespaces `bot/v1/`, `BUS`, `RES`, `DATA`, `$`,
//!   or under `bot/v1/reply/`); its last will must be its own status; it
//!   subscribes only to `BUS`, `BUS/<its name>`, the broadcast, its own
//!   request and config topics, and pool queues (`$share/<pool>/bot/v1/req/pool/<pool>`);
//!   its client id starts with `bot-agent-`;
//! - the **server** and **operators** publish and subscribe to anything but
//!   agents' own topics (status, heartbeat, metrics, `RES`, `DATA`): they cannot pose
//!   as an agent. Only they may publish on `BUS` and the request topics, and
//!   only the server on the config topics (`bot/v1/config/<id>`). The
//!   server's client id starts with `bot-server-`, and no other role's may.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Largest users file read.
const MAX_USERS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What a user is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A person or tool: publishes requests and classic programs.
    Operator,
    /// The `bot` server.
    Server,
    /// An agent; the user name is its id.
    Agent,
}

/// One `[[user]]` of the users file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The MQTT user name (an agent's: its id).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// SHA-256 of the password, 64 hex digits.
    pub password_sha256: String,
    /// An agent's name (for `BUS/<name>` and `DATA/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    #[serde(default)]
    user: Vec<User>,
}

/// Why the users file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML of users.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The users, from a file re-read whenever its modification time changes.
#[derive(Debug)]
pub struct Users {
    path: PathBuf,
    loaded: RwLock<(Option<SystemTime>, HashMap<String, User>)>,
}

impl Users {
    /// The users of `path` (which must exist and parse now).
    pub fn open(path: &Path) -> Result<Users, UsersError> {
        let users = Users {
            path: path.to_owned(),
            loaded: RwLock::new((None, HashMap::new())),
        };
        users.reload()?;
        Ok(users)
    }

    fn reload(&self) -> Result<(), UsersError> {
        let io = |source| UsersError::Io {
            path: self.path.clone(),
            source,
        };
        let meta = std::fs::metadata(&self.path).map_err(io)?;
        let mtime = meta.modified().ok();
        if self.loaded.read().unwrap_or_else(|e| e.into_inner()).0 == mtime && mtime.is_some() {
            return Ok(());
        }
        if meta.len() > MAX_USERS_FILE_BYTES {
            return Err(UsersError::Format {
                path: self.path.clone(),
                reason: format!("{} bytes, more than {MAX_USERS_FILE_BYTES}", meta.len()),
            });
        }
        let text = std::fs::read_to_string(&self.path).map_err(io)?;
        let file: UsersFile = toml::from_str(&text).map_err(|e| UsersError::Format {
            path: self.path.clone(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        let map = file.user.into_iter().map(|u| (u.name.clone(), u)).collect();
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = (mtime, map);
        Ok(())
    }

    /// The user named `name` if `password` is theirs (a changed file is
    /// re-read first; a file that no longer parses keeps the last good one).
    pub fn check(&self, name: &str, password: &[u8]) -> Option<User> {
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "broker users file unusable; keeping the last good one");
        }
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let user = loaded.1.get(name)?;
        let hash = bot_auth::digest_hex(password);
        constant_time_eq(hash.as_bytes(), user.password_sha256.as_bytes()).then(|| user.clone())
    }

    /// The user named `name`, as last loaded.
    pub fn get(&self, name: &str) -> Option<User> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .get(name)
            .cloned()
    }
}

/// Adds (or replaces) `user` in the users file at `path`, creating it
/// (mode 0600) if needed, and returns nothing else: the caller made the
/// password and keeps it.
pub fn add_user(path: &Path, user: User) -> Result<(), UsersError> {
    let io = |source| UsersError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // One writer at a time (`bot up` starting while `bot broker add-agent`
    // runs, or agents registered in parallel): without the lock, two
    // read-modify-writes lose one user. The lock is released on drop.
    let lock_path = path.with_extension("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| UsersError::Io {
            path: lock_path.clone(),
            source,
        })?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive).map_err(
        |(_, errno)| UsersError::Io {
            path: lock_path.clone(),
            source: errno.into(),
        },
    )?;
    let mut file: UsersFile = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| UsersError::Format {
            path: path.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => UsersFile::default(),
        Err(e) => return Err(io(e)),
    };
    file.user.retain(|u| u.name != user.name);
    file.user.push(user);
    let text = toml::to_string(&file).map_err(|e| UsersError::Format {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // Write then rename: the broker never reads half a file.
    bot_auth::paths::write_private(path, text.as_bytes()).map_err(io)
}

/// Compares without an early exit on the first differing byte (`subtle`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Agents' own topics: only the agent itself may publish there.
fn agent_owned(topic: &str) -> bool {
    topic.starts_with("bot/v1/status/")
        || topic.starts_with("bot/v1/heartbeat/")
        || topic.starts_with("bot/v1/metrics/")
        || topic == "RES"
        || topic.starts_with("RES/")
        || topic == "DATA"
        || topic.starts_with("DATA/")
}

/// Whether `user` may connect with `client_id` and a last will on `will`.
pub fn may_connect(user: &User, client_id: &str, will: Option<&str>) -> Result<(), String> {
    let server_id = client_id.starts_with("bot-server-");
    match user.role {
        Role::Agent => {
            if !client_id.starts_with("bot-agent-") {
                return Err(format!(
                    "an agent's client id must start with bot-agent-, not {client_id:?}"
                ));
            }
            let own = format!("bot/v1/status/{}", user.name);
            if let Some(w) = will
                && w != own
            {
                return Err(format!(
                    "an agent's last will must be its own status ({own}), not {w:?}"
                ));
            }
        }
        Role::Server | Role::Operator => {
            if server_id != (user.role == Role::Server) {
                return Err("only the server's client id starts with bot-server-".into());
            }
            if let Some(w) = will
                && agent_owned(w)
            {
                return Err(format!("last will on an agent's topic {w:?}"));
            }
        }
    }
    Ok(())
}

/// Whether `user` may publish on `topic`.
pub fn may_publish(user: &User, topic: &str) -> bool {
    match user.role {
        // Agents' measuring configs come from the server only (they are
        // signed too; this keeps operators to the API, which records them).
        Role::Operator if topic.starts_with("bot/v1/config/") => false,
        Role::Server | Role::Operator => !agent_owned(topic),
        Role::Agent => {
            let id = &user.name;
            let name = user.agent_name.as_deref().unwrap_or("");
            if topic == format!("bot/v1/status/{id}")
                || topic == format!("bot/v1/heartbeat/{id}")
                || topic == format!("bot/v1/metrics/{id}")
                || topic == "RES"
                || (!name.is_empty() && topic == format!("DATA/{name}"))
                || topic.starts_with("bot/v1/reply/")
            {
                return true;
            }
            // Replies to other destinations: anything outside the
            // protected namespaces.
            let protected = topic.starts_with("bot/")
                || topic == "BUS"
                || topic.starts_with("BUS/")
                || agent_owned(topic)
                || topic.starts_with('$');
            !protected
        }
    }
}

/// Whether `user` may clear `topic` (publish an empty retained message
/// there): the server clears a forgotten agent's status (`bot agents
/// forget`). Clearing forges nothing: an empty status names no agent.
pub fn may_clear(user: &User, topic: &str) -> bool {
    user.role == Role::Server && topic.starts_with("bot/v1/status/")
}

/// Whether `user` may subscribe to `filter` (`shared`: the group of a
/// `$share/<group>/` subscription, which rmqtt strips from `filter`).
pub fn may_subscribe(user: &User, filter: &str, shared: Option<&str>) -> bool {
    match user.role {
        Role::Server | Role::Operator => true,
        Role::Agent => {
            let id = &user.name;
            let name = user.agent_name.as_deref().unwrap_or("");
            match shared {
                Some(group) => filter == format!("bot/v1/req/pool/{group}"),
                None => {
                    filter == "BUS"
                        || (!name.is_empty() && filter == format!("BUS/{name}"))
                        || filter == "bot/v1/req/all"
                        || filter == format!("bot/v1/req/agent/{id}")
                        || filter == format!("bot/v1/config/{id}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> User {
        User {
            name: "id-1".into(),
            role: Role::Agent,
            password_sha256: bot_auth::digest_hex(b"pw"),
            agent_name: Some("web1".into()),
        }
    }

    fn operator() -> User {
        User {
            name: "operator".into(),
            role: Role::Operator,
            password_sha256: bot_auth::digest_hex(b"pw"),
            agent_name: None,
        }
    }

    #[test]
    fn agents_publish_only_their_own_topics_and_replies() {
        let a = agent();
        for ok in [
            "bot/v1/status/id-1",
            "bot/v1/heartbeat/id-1",
            "bot/v1/metrics/id-1",
            "RES",
            "DATA/web1",
            "bot/v1/reply/s1",
            "bot/v1/reply/s1/durable",
            "ops/results",
        ] {
            assert!(may_publish(&a, ok), "{ok}");
        }
        for no in [
            "bot/v1/status/id-2",
            "bot/v1/heartbeat/id-2",
            "bot/v1/metrics/id-2",
            "bot/v1/config/id-1",
            "bot/v1/req/all",
            "bot/v1/req/agent/id-2",
            "bot/v1/event/task/t",
            "BUS",
            "BUS/web2",
            "DATA/web2",
            "$SYS/x",
        ] {
            assert!(!may_publish(&a, no), "{no}");
        }
    }

    #[test]
    fn agents_subscribe_only_to_their_requests() {
        let a = agent();
        for (f, g) in [
            ("BUS", None),
            ("BUS/web1", None),
            ("bot/v1/req/all", None),
            ("bot/v1/req/agent/id-1", None),
            ("bot/v1/config/id-1", None),
            ("bot/v1/req/pool/build", Some("build")),
        ] {
            assert!(may_subscribe(&a, f, g), "{f}");
        }
        for (f, g) in [
            ("bot/v1/req/agent/id-2", None),
            ("bot/v1/config/id-2", None),
            ("bot/v1/config/+", None),
            ("bot/v1/reply/#", None),
            ("#", None),
            ("BUS/web2", None),
            ("bot/v1/req/pool/build", Some("other")),
            ("bot/v1/status/+", None),
        ] {
            assert!(!may_subscribe(&a, f, g), "{f}");
        }
    }

    #[test]
    fn operators_cannot_pose_as_agents() {
        let o = operator();
        assert!(may_publish(&o, "BUS"));
        assert!(may_publish(&o, "bot/v1/req/all"));
        assert!(!may_publish(&o, "bot/v1/status/id-1"));
        assert!(!may_publish(&o, "RES"));
        assert!(!may_publish(&o, "bot/v1/metrics/id-1"));
        // Configs come from the server only.
        assert!(!may_publish(&o, "bot/v1/config/id-1"));
        let server = User {
            name: "server".into(),
            role: Role::Server,
            ..operator()
        };
        assert!(may_publish(&server, "bot/v1/config/id-1"));
        assert!(may_subscribe(&o, "#", None));
    }

    #[test]
    fn connect_rules() {
        assert!(may_connect(&agent(), "bot-agent-web1-1", Some("bot/v1/status/id-1")).is_ok());
        assert!(may_connect(&agent(), "bot-agent-web1-1", Some("bot/v1/status/id-2")).is_err());
        assert!(may_connect(&agent(), "bot-server-x", None).is_err());
        assert!(may_connect(&operator(), "bot-server-x", None).is_err());
        assert!(may_connect(&operator(), "bot-ping-1", None).is_ok());
    }

    #[test]
    fn the_users_file_is_reread_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("bot-users-{}", std::process::id()));
        let path = dir.join("users.toml");
        let _ = std::fs::remove_dir_all(&dir);
        add_user(&path, operator()).expect("add");
        let users = Users::open(&path).expect("open");
        assert!(users.check("operator", b"pw").is_some());
        assert!(users.check("operator", b"nope").is_none());
        assert!(users.check("id-1", b"pw").is_none());
        std::thread::sleep(std::time::Duration::from_millis(20));
        add_user(&path, agent()).expect("add");
        assert!(users.check("id-1", b"pw").is_some(), "new user seen");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn users_added_at_once_are_all_kept() {
        let dir = std::env::temp_dir().join(format!("bot-users-par-{}", std::process::id()));
        let path = dir.join("users.toml");
        let _ = std::fs::remove_dir_all(&dir);
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut u = agent();
                    u.name = format!("id-{i}");
                    add_user(&path, u).expect("add");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let users = Users::open(&path).expect("open");
        for i in 0..16 {
            assert!(users.get(&format!("id-{i}")).is_some(), "id-{i} was lost");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
