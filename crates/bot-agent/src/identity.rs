//! The agent's persistent identity: a UUID created on first start and kept in
//! the state directory (`<state_dir>/agent-id`), so that an agent keeps its id
//! across restarts, renames and re-addressing.

use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the id inside the state directory.
pub const ID_FILE: &str = "agent-id";

/// File name of the agent's signing key inside the state directory.
pub const KEY_FILE: &str = "agent.key";

/// Loads the agent's signing key (`<dir>/agent.key`, PKCS#8 PEM, mode
/// 0600), making it on first start.
pub fn load_or_create_key(dir: &Path) -> Result<bot_auth::SecretKey, IdentityError> {
    let (key, made) = bot_auth::SecretKey::load_or_create(&dir.join(KEY_FILE))?;
    if made {
        tracing::info!(public = %key.public(), "made this agent's signing key");
    }
    Ok(key)
}

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The signing key could not be read or made.
    #[error("agent key: {0}")]
    Key(#[from] bot_auth::KeyError),
    /// The state directory could not be created or written.
    #[error("state directory {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The id file exists but does not hold a UUID.
    #[error("{path} does not hold a UUID (found {found:?}); remove it to get a new identity")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (cut).
        found: String,
    },
}

/// Loads the agent id from `dir`, creating the directory and a new id if needed.
pub fn load_or_create(dir: &Path) -> Result<String, IdentityError> {
    let io = |source| IdentityError::Io {
        dir: dir.to_owned(),
        source,
    };
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            return match uuid::Uuid::parse_str(text) {
                Ok(id) => Ok(id.hyphenated().to_string()),
                Err(_) => Err(IdentityError::Corrupt {
                    path,
                    found: text.chars().take(60).collect(),
                }),
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    // Write then rename, so a crash never leaves a half-written id.
    let tmp = dir.join(format!("{ID_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(format!("{id}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bot-identity-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn created_once_then_kept() {
        let dir = tempdir("keep");
        let first = load_or_create(&dir.join("nested")).expect("create");
        assert!(uuid::Uuid::parse_str(&first).is_ok());
        let again = load_or_create(&dir.join("nested")).expect("load");
        assert_eq!(first, again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_is_reported_not_replaced() {
        let dir = tempdir("corrupt");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(ID_FILE), "not a uuid").expect("write");
        let err = load_or_create(&dir).expect_err("corrupt").to_string();
        assert!(
            err.contains("not a uuid") && err.contains("agent-id"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(ID_FILE)).expect("kept"),
            "not a uuid"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
