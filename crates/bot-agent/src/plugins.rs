//! Plugin executables: every executable regular file in the plugin directory
//! whose name ends in `_enabled` runs once per measuring round, all of them
//! concurrently, each in its own process group with a timeout (the whole group
//! is killed when it expires) and a cap on the output read.
//!
//! Output: each whitespace-separated token is one sample,
//! `[<name>:]<metric>:<value>:<TYPE>`; a token without the leading name gets
//! the agent's name. Malformed tokens are skipped and counted: the round then
//! carries one `plugin.<plugin>.malformed` sample per plugin, and a warning is
//! logged once per plugin with the first bad token. A plugin that fails (could
//! not start, timed out, exited non-zero) yields `plugin.<plugin>.failed = 1`.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::collectors::{Number, Sample};

/// The file-name suffix that marks a plugin as enabled.
pub const ENABLED_SUFFIX: &str = "_enabled";

/// Runs the plugins of one directory.
#[derive(Debug)]
pub struct Plugins {
    dir: PathBuf,
    timeout: Duration,
    output_limit: usize,
    /// Plugins already warned about malformed output (warn once, not every round).
    warned: HashSet<String>,
}

/// A parsed plugin token (the classic line codec of `bot_proto::metrics`).
pub type PluginSample = bot_proto::metrics::LineSample;

/// What one run of one plugin gave.
#[derive(Debug)]
struct Run {
    plugin: String,
    output: Result<String, String>,
}

impl Plugins {
    /// Plugins of `dir`.
    pub fn new(dir: PathBuf, timeout: Duration, output_limit: usize) -> Plugins {
        Plugins {
            dir,
            timeout,
            output_limit,
            warned: HashSet::new(),
        }
    }

    /// Lists the enabled plugins, sorted by name.
    pub fn enabled(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(ENABLED_SUFFIX))
            })
            .filter(|e| {
                std::fs::metadata(e.path())
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    }

    /// Runs every enabled plugin once, concurrently, and appends the samples
    /// (lines already prefixed with `name`) to `out`.
    pub async fn run_round(&mut self, out: &mut Vec<PluginSample>) {
        let mut set = tokio::task::JoinSet::new();
        for path in self.enabled() {
            let (timeout, limit) = (self.timeout, self.output_limit);
            set.spawn(async move {
                let plugin = plugin_name(&path);
                let output = run_one(&path, timeout, limit).await;
                Run { plugin, output }
            });
        }
        let mut runs = Vec::new();
        while let Some(done) = set.join_next().await {
            if let Ok(run) = done {
                runs.push(run);
            }
        }
        runs.sort_by(|a, b| a.plugin.cmp(&b.plugin));
        for run in runs {
            match run.output {
                Err(why) => {
                    tracing::warn!(plugin = %run.plugin, %why, "plugin failed");
                    out.push(PluginSample {
                        name: None,
                        sample: Sample::gauge(
                            format!("plugin.{}.failed", run.plugin),
                            Number::Int(1),
                        ),
                    });
                }
                Ok(text) => {
                    let mut malformed = 0i64;
                    for token in text.split_ascii_whitespace() {
                        match parse_token(token) {
                            Ok(ps) => out.push(ps),
                            Err(why) => {
                                malformed += 1;
                                if self.warned.insert(run.plugin.clone()) {
                                    tracing::warn!(plugin = %run.plugin, token = %cut(token), %why,
                                        "malformed plugin output skipped (warning once per plugin)");
                                }
                            }
                        }
                    }
                    if malformed > 0 {
                        out.push(PluginSample {
                            name: None,
                            sample: Sample::gauge(
                                format!("plugin.{}.malformed", run.plugin),
                                Number::Int(malformed),
                            ),
                        });
                    }
                }
            }
        }
    }
}

/// `load_enabled` → `load`.
fn plugin_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file.strip_suffix(ENABLED_SUFFIX).unwrap_or(&file);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Parses `[<name>:]<metric>:<value>:<TYPE>`.
pub fn parse_token(token: &str) -> Result<PluginSample, &'static str> {
    bot_proto::metrics::parse_token(token)
}

/// Runs one plugin: its own process group, stdin closed, stdout read up to
/// `limit` bytes (the rest drained and discarded), stderr discarded, killed
/// with its whole group when `timeout` expires.
pub(crate) async fn run_one(
    path: &Path,
    timeout: Duration,
    limit: usize,
) -> Result<String, String> {
    let mut child = Command::new(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let work = async {
        let mut kept = Vec::with_capacity(limit.min(4096));
        let mut chunk = [0u8; 4096];
        loop {
            let n = stdout
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading output: {e}"))?;
            if n == 0 {
                break;
            }
            let room = limit.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..n.min(room)]);
        }
        let status = child.wait().await.map_err(|e| format!("waiting: {e}"))?;
        Ok::<_, String>((kept, status))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok((bytes, status))) => {
            if !status.success() {
                return Err(format!("exited with {status}"));
            }
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            if let Some(pgid) = pgid {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(format!(
                "timed out after {:.1} s; process group killed",
                timeout.as_secs_f64()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic lines of a round's samples, for agent `h`.
    fn lines(out: &[PluginSample]) -> Vec<String> {
        out.iter()
            .map(|ps| ps.sample.line(ps.name.as_deref().unwrap_or("h")))
            .collect()
    }

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bot-plugins-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[tokio::test]
    async fn a_round_runs_enabled_plugins_only_and_reports_problems() {
        let dir = tempdir("round");
        script(
            &dir,
            "temp_enabled",
            "echo 'temp.cpu:41:GAUGE other:fan:3:GAUGE bogus'",
        );
        script(&dir, "off", "echo 'never:1:GAUGE'");
        script(&dir, "bad_enabled", "exit 3");
        std::fs::write(dir.join("noexec_enabled"), "echo x:1:GAUGE").expect("write");
        let mut p = Plugins::new(dir.clone(), Duration::from_secs(5), 65536);
        assert_eq!(p.enabled().len(), 2, "{:?}", p.enabled());
        let mut out = Vec::new();
        p.run_round(&mut out).await;
        let out = lines(&out);
        assert_eq!(
            out,
            [
                "h:plugin.bad.failed:1:GAUGE",
                "h:temp.cpu:41:GAUGE",
                "other:fan:3:GAUGE",
                "h:plugin.temp.malformed:1:GAUGE",
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_hung_plugin_is_killed_with_its_children() {
        let dir = tempdir("hang");
        let marker = dir.join("child.pid");
        // The plugin starts a grandchild that would outlive a plain kill.
        script(
            &dir,
            "hang_enabled",
            &format!("sleep 300 & echo $! > {}; wait", marker.display()),
        );
        let mut p = Plugins::new(dir.clone(), Duration::from_millis(500), 65536);
        let mut out = Vec::new();
        p.run_round(&mut out).await;
        assert_eq!(lines(&out), ["h:plugin.hang.failed:1:GAUGE"]);
        let pid: i32 = std::fs::read_to_string(&marker)
            .expect("pid")
            .trim()
            .parse()
            .expect("int");
        // Killing is synchronous, but the zombie is reaped by init: poll briefly.
        let gone = (0..100).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = state
                .rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'));
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "grandchild {pid} survived the timeout");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn output_beyond_the_limit_is_discarded() {
        let dir = tempdir("limit");
        script(
            &dir,
            "big_enabled",
            "i=0; while [ $i -lt 2000 ]; do echo m$i:1:GAUGE; i=$((i+1)); done",
        );
        let mut p = Plugins::new(dir.clone(), Duration::from_secs(10), 100);
        let mut out = Vec::new();
        p.run_round(&mut out).await;
        assert!(out.len() < 20, "{} samples from 100 bytes", out.len());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
