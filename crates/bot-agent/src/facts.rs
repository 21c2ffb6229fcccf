//! Facts: what an agent says about its machine, used by filters and shown by
//! `bot facts` / `bot inventory`.
//!
//! Three sources, later ones overriding earlier ones key by key:
//! 1. built-in facts read from the system (no shelling out): `os`,
//!    `os_id`, `os_version`, `os_name`, `kernel`, `arch`, `cpus`, `memory`
//!    (bytes), `hostname`, `ips` (no loopback or link-local), `uptime`
//!    (seconds), `agent_version`;
//! 2. static key/values from the agent config's `[facts]` table;
//! 3. custom fact executables in `facts_dir`: each prints a JSON object, or
//!    `key=value` lines; run with a timeout and an output cap.
//!
//! `id` and `name` are set last and cannot be overridden. `uptime` changes
//! all the time, so [`changed`] ignores it when deciding to republish.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// A set of facts.
pub type Facts = BTreeMap<String, Value>;

/// Facts that are not user-settable.
pub const RESERVED: [&str; 2] = ["id", "name"];

/// Longest output read from one fact executable.
const SCRIPT_OUTPUT_LIMIT: usize = 64 * 1024;
/// Most facts kept (the status message has a limit).
const MAX_FACTS: usize = 500;

/// Everything needed to gather facts.
#[derive(Debug, Clone)]
pub struct FactSources {
    /// Agent id (fact `id`).
    pub id: String,
    /// Agent name (fact `name`).
    pub name: String,
    /// Static facts from the config.
    pub configured: Facts,
    /// Directory of fact executables, if any.
    pub dir: Option<std::path::PathBuf>,
    /// Time allowed for each fact executable.
    pub timeout: Duration,
}

/// Gathers all facts.
pub async fn gather(src: &FactSources) -> Facts {
    let mut facts = builtin();
    for (k, v) in &src.configured {
        facts.insert(k.clone(), v.clone());
    }
    if let Some(dir) = &src.dir {
        for (k, v) in from_scripts(dir, src.timeout).await {
            facts.insert(k, v);
        }
    }
    for key in RESERVED {
        facts.remove(key);
    }
    while facts.len() > MAX_FACTS - RESERVED.len() {
        if let Some(last) = facts.keys().next_back().cloned() {
            tracing::warn!(fact = %last, "too many facts; dropping");
            facts.remove(&last);
        }
    }
    facts.insert("id".into(), Value::from(src.id.clone()));
    facts.insert("name".into(), Value::from(src.name.clone()));
    facts
}

/// Did anything but `uptime` change?
pub fn changed(old: &Facts, new: &Facts) -> bool {
    let strip = |f: &Facts| {
        f.iter()
            .filter(|(k, _)| k.as_str() != "uptime")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    strip(old) != strip(new)
}

/// The built-in facts.
pub fn builtin() -> Facts {
    let mut f = Facts::new();
    f.insert("os".into(), Value::from(std::env::consts::OS));
    f.insert("arch".into(), Value::from(std::env::consts::ARCH));
    f.insert(
        "agent_version".into(),
        Value::from(env!("CARGO_PKG_VERSION")),
    );
    f.insert(
        "hostname".into(),
        Value::from(crate::config::default_name()),
    );
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    f.insert("cpus".into(), Value::from(cpus));
    if let Ok(u) = nix::sys::utsname::uname() {
        f.insert(
            "kernel".into(),
            Value::from(u.release().to_string_lossy().into_owned()),
        );
    }
    if let Ok(text) = std::fs::read_to_string("/etc/os-release") {
        for (key, fact) in [
            ("ID", "os_id"),
            ("VERSION_ID", "os_version"),
            ("PRETTY_NAME", "os_name"),
        ] {
            if let Some(v) = os_release_value(&text, key) {
                f.insert(fact.into(), Value::from(v));
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo")
        && let Some((_, bytes)) =
            crate::collectors::memory::meminfo(&text).find(|(k, _)| *k == "MemTotal")
    {
        f.insert("memory".into(), Value::from(bytes));
    }
    if let Ok(text) = std::fs::read_to_string("/proc/uptime")
        && let Some(secs) = text
            .split_whitespace()
            .next()
            .and_then(|s| s.parse::<f64>().ok())
    {
        f.insert("uptime".into(), Value::from(secs as u64));
    }
    f.insert("ips".into(), Value::from(ips()));
    f
}

/// Addresses of this machine, without loopback and link-local ones.
pub fn ips() -> Vec<String> {
    let mut out: Vec<String> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip) && !ip.is_unspecified())
        .map(|ip| ip.to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim().trim_matches('"').trim_matches('\'').to_owned())
    })
}

/// Runs every executable of `dir` and merges what they print.
async fn from_scripts(dir: &Path, timeout: Duration) -> Facts {
    let mut facts = Facts::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "cannot read facts directory");
        return facts;
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    paths.sort();
    for path in paths {
        match crate::plugins::run_one(&path, timeout, SCRIPT_OUTPUT_LIMIT).await {
            Ok(out) => match parse_script_output(&out) {
                Ok(more) => facts.extend(more),
                Err(why) => {
                    tracing::warn!(script = %path.display(), %why, "fact script output ignored")
                }
            },
            Err(why) => tracing::warn!(script = %path.display(), %why, "fact script failed"),
        }
    }
    facts
}

/// Parses a fact executable's output: a JSON object, or `key=value` lines
/// (values that parse as JSON numbers or booleans become those; the rest are strings).
pub fn parse_script_output(out: &str) -> Result<Facts, String> {
    let trimmed = out.trim();
    if trimmed.starts_with('{') {
        let v: Value = serde_json::from_str(trimmed).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(map) = v else {
            return Err("JSON is not an object".into());
        };
        let mut facts = Facts::new();
        for (k, v) in map {
            check_key(&k)?;
            facts.insert(k, v);
        }
        return Ok(facts);
    }
    let mut facts = Facts::new();
    for (n, line) in trimmed.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!(
                "line {}: expected key=value, got {:?}",
                n + 1,
                cut(line)
            ));
        };
        let k = k.trim();
        check_key(k)?;
        let v = v.trim();
        let value = match serde_json::from_str::<Value>(v) {
            Ok(j @ (Value::Number(_) | Value::Bool(_))) => j,
            _ => Value::from(v),
        };
        facts.insert(k.to_owned(), value);
    }
    Ok(facts)
}

fn check_key(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && k.len() <= 128
        && k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad fact name {:?} (want [A-Za-z_][A-Za-z0-9_.-]*, ≤ 128 bytes)",
            cut(k)
        ))
    }
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_facts_describe_this_machine() {
        let f = builtin();
        assert_eq!(f["os"], "linux");
        assert!(f["cpus"].as_u64().is_some_and(|n| n >= 1));
        assert!(f["memory"].as_u64().is_some_and(|n| n > 0));
        assert!(f["kernel"].as_str().is_some_and(|k| !k.is_empty()));
        let ips = f["ips"].as_array().expect("ips");
        assert!(ips.iter().all(|ip| ip != "127.0.0.1"
            && ip != "::1"
            && !ip.as_str().unwrap_or("").starts_with("fe80")));
    }

    #[test]
    fn script_output_forms() {
        let j = parse_script_output(r#"{"role": "web", "rack": 4}"#).expect("json");
        assert_eq!(j["role"], "web");
        assert_eq!(j["rack"], 4);
        let kv =
            parse_script_output("role=db\n# comment\nreplicas = 3\nprimary=true\nversion=1.2.3\n")
                .expect("kv");
        assert_eq!(kv["role"], "db");
        assert_eq!(kv["replicas"], 3);
        assert_eq!(kv["primary"], true);
        assert_eq!(kv["version"], "1.2.3");
        assert!(parse_script_output("[1,2]").is_err());
        assert!(parse_script_output("{bad json").is_err());
        assert!(
            parse_script_output("no equals sign")
                .expect_err("must fail")
                .contains("line 1")
        );
        assert!(
            parse_script_output("9lives=1")
                .expect_err("must fail")
                .contains("bad fact name")
        );
    }

    #[tokio::test]
    async fn reserved_facts_cannot_be_overridden_and_config_wins_over_builtin() {
        let mut configured = Facts::new();
        configured.insert("id".into(), Value::from("spoofed"));
        configured.insert("os".into(), Value::from("plan9"));
        configured.insert("role".into(), Value::from("web"));
        let src = FactSources {
            id: "real".into(),
            name: "n1".into(),
            configured,
            dir: None,
            timeout: Duration::from_secs(1),
        };
        let f = gather(&src).await;
        assert_eq!(f["id"], "real");
        assert_eq!(f["name"], "n1");
        assert_eq!(f["os"], "plan9");
        assert_eq!(f["role"], "web");
    }

    #[tokio::test]
    async fn fact_scripts_are_run_and_merged_in_name_order() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("bot-facts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, body) in [
            ("10-json", "echo '{\"role\": \"web\", \"rack\": 4}'"),
            ("20-kv", "echo rack=7; echo zone=eu-1"),
            ("30-broken", "echo not a fact"),
            ("40-failing", "exit 2"),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::write(dir.join("50-not-executable"), "echo ignored=1").expect("write");
        let src = FactSources {
            id: "i".into(),
            name: "n".into(),
            configured: Facts::new(),
            dir: Some(dir.clone()),
            timeout: Duration::from_secs(5),
        };
        let f = gather(&src).await;
        assert_eq!(f["role"], "web");
        assert_eq!(f["rack"], 7, "later scripts override earlier ones");
        assert_eq!(f["zone"], "eu-1");
        assert!(!f.contains_key("ignored"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn uptime_alone_is_not_a_change() {
        let mut a = Facts::new();
        a.insert("uptime".into(), Value::from(1));
        a.insert("os".into(), Value::from("linux"));
        let mut b = a.clone();
        b.insert("uptime".into(), Value::from(2));
        assert!(!changed(&a, &b));
        b.insert("os".into(), Value::from("bsd"));
        assert!(changed(&a, &b));
    }
}
