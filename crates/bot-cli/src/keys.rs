//! `bot keys new|list|show`: operator keys (Ed25519), and the key every
//! structured command signs its requests with ([`signer`]).
//!
//! Keys live in `~/.config/bot/keys/<name>.key` (PKCS#8 PEM, mode 0600).
//! Agents obey a key once it is in their config:
//!
//! ```toml
//! [[trust]]
//! name = "alice"
//! key = "ed25519:…"          # `bot keys show alice` prints this table
//! actions = ["ping", "facts", "status", "exec", "cancel"]   # default: all
//! commands = ["systemctl restart *"]                        # default: any
//! filter = "role=web"                                       # optional
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use bot_auth::{SecretKey, Signer, paths};
use clap::{Args, Subcommand};

/// Operator keys: make, list and show them.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// `bot keys` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Make a new operator key (private key file mode 0600) and print the
    /// `[[trust]]` table to add to agents' configs.
    New {
        /// The key's name: its file is `<keys dir>/<NAME>.key`. The CLI uses
        /// `default` unless told otherwise (--key, BOT_KEY).
        #[arg(long, default_value = "default", value_parser = key_name)]
        name: String,
    },
    /// List the keys in the keys directory.
    List,
    /// Print a key's public key and the `[[trust]]` table for agents.
    Show {
        /// A key name or a path to a key file (default: the key the CLI would use).
        key: Option<String>,
    },
}

fn key_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        && !s.starts_with('.');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?}: a key name is 1..=64 characters of [A-Za-z0-9._@-], not starting with ."
        ))
    }
}

/// The key file `--key` (or `BOT_KEY`) names, else the default one.
pub fn resolve(key: Option<&str>) -> anyhow::Result<PathBuf> {
    match key {
        Some(k) => Ok(paths::key_path(k)),
        None => paths::default_operator_key().with_context(|| {
            format!(
                "no operator key: run `bot keys new` (it goes to {}) and add the printed \
                 [[trust]] table to your agents, or name a key file with --key / BOT_KEY",
                paths::keys_dir().join("default.key").display()
            )
        }),
    }
}

/// The signer for requests: the key `--key` names (or the default one) and
/// this user's identity as the sender.
pub fn signer(key: Option<&str>) -> anyhow::Result<Signer> {
    let path = resolve(key)?;
    let secret = SecretKey::load(&path).map_err(anyhow::Error::new)?;
    Ok(Signer::new(secret, crate::fleet::sender()))
}

/// Runs `bot keys`.
pub fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::New { name } => {
            let path = paths::key_path(&name);
            if path.exists() {
                bail!(
                    "{} exists already; choose another --name (keys are never overwritten)",
                    path.display()
                );
            }
            let key = SecretKey::generate()?;
            key.save(&path)?;
            println!("new key: {}", path.display());
            print_trust(&name, &key);
        }
        KeysCommand::List => {
            let dir = paths::keys_dir();
            let mut names: Vec<PathBuf> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "key"))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
            };
            names.sort();
            if names.is_empty() {
                println!(
                    "no keys in {} (make one with `bot keys new`)",
                    dir.display()
                );
            }
            for p in names {
                match SecretKey::load(&p) {
                    Ok(k) => println!("{}  {}", stem(&p), k.public()),
                    Err(e) => println!("{}  unusable: {e}", stem(&p)),
                }
            }
        }
        KeysCommand::Show { key } => {
            let path = resolve(key.as_deref())?;
            let k = SecretKey::load(&path)?;
            println!("key file: {}", path.display());
            print_trust(&stem(&path), &k);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn print_trust(name: &str, key: &SecretKey) {
    println!("public key: {}", key.public());
    println!();
    println!("# add to each agent's config to let this key act on it:");
    println!("[[trust]]");
    println!("name = {:?}", name);
    println!("key = \"{}\"", key.public());
    println!("# actions = [\"ping\", \"facts\", \"status\"]   # default: every action");
    println!("# commands = [\"systemctl restart *\"]      # default: any command");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_checked() {
        assert!(key_name("alice@ops").is_ok());
        for bad in ["", "../x", ".hidden", "a b", &"k".repeat(65)] {
            assert!(key_name(bad).is_err(), "{bad:?}");
        }
    }
}
