//! Integration tests of `bot-proto` through its public API, one binary with
//! a module per concern:
//!
//! - `filter_syntax`: every grammar form, the canonical `Display`, and every
//!   parse error with its exact position;
//! - `filter_match`: every operator, globs, regexes, arrays, missing and
//!   nested facts, precedence, `not`, `Status` as a target;
//! - `envelopes`: encode/decode round trips, the wire shape, signing bytes,
//!   expiry and clock, salvage, unknown fields and versions;
//! - `limits`: every validation limit of every envelope, at and past it;
//! - `schema`: the JSON Schemas in `docs/schemas/` against real messages;
//! - `props`: property tests (no panic on any input, filter `Display`
//!   round trip, envelope round trip).

mod envelopes;
mod filter_match;
mod filter_syntax;
mod limits;
mod props;
mod schema;

use bot_proto::{Facts, Heartbeat, Reply, ReplyStatus, Request, Status, Target};
use serde_json::{Value, json};

/// An agent as a filter sees it.
#[derive(Debug, Clone, Default)]
pub struct Agent {
    pub name: String,
    pub tags: Vec<String>,
    pub facts: Facts,
}

impl Target for Agent {
    fn fact(&self, key: &str) -> Option<&Value> {
        self.facts.get(key)
    }
    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Facts from a JSON object literal.
pub fn facts(v: Value) -> Facts {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => panic!("facts must be an object"),
    }
}

/// The agent most filter tests run against: `web-01`, tagged `prod` and
/// `web`, with facts of every JSON type.
pub fn web01() -> Agent {
    Agent {
        name: "web-01".into(),
        tags: vec!["prod".into(), "web".into()],
        facts: facts(json!({
            "name": "web-01",
            "id": "0f1e2d3c",
            "hostname": "web-01.example.com",
            "os": "linux",
            "cpus": 8,
            "load": 0.5,
            "big": 18446744073709551615u64,
            "neg": -3,
            "enabled": true,
            "disabled": false,
            "kernel": "6.1.0-13-amd64",
            "version": "1.10",
            "zip": "007",
            "memory": {"total": 8589934592u64, "free": "1024", "swap": {"total": 0}},
            "ips": ["10.0.0.5", "192.168.1.2"],
            "ports": [22, 80, 443],
            "nested": [[1, 2], [3, "x"]],
            "empty": [],
            "disks": [{"size": 100}, {"size": 200}],
            "nothing": null,
            "obj": {"a": 1},
            "spaced": "hello world",
            "quoted": "it's \"q\"",
            "star": "a*b",
        })),
    }
}

/// A valid request with every field set.
pub fn request() -> Request {
    Request {
        id: "r-1".into(),
        sender: "op@admin".into(),
        created_ms: 1_700_000_000_000,
        nonce: "9f86d081884c7d65".into(),
        ttl_ms: 30_000,
        filter: Some("os=linux and tag:web".into()),
        action: "run".into(),
        args: json!({"cmd": "uptime", "timeout_s": 10, "env": {"B": "2", "A": "1"}}),
        reply_to: "bot/v1/reply/s-1".into(),
        sig: Some("ed25519:op1:c2lnbmF0dXJl".into()),
    }
}

/// A valid reply with every field set.
pub fn reply() -> Reply {
    Reply {
        request_id: "r-1".into(),
        agent_id: "0f1e2d3c".into(),
        agent_name: "web1".into(),
        sender: "agent:0f1e2d3c".into(),
        created_ms: 1_700_000_000_120,
        nonce: "5b0c1f0e2a9d4471".into(),
        status: ReplyStatus::Error,
        data: json!({"exit": 1, "stdout": "", "stderr": "no such file\n", "ratio": 0.1}),
        error: Some("command exited with status 1".into()),
        received_ms: 1_700_000_000_050,
        duration_ms: 70,
        sig: Some("sig".into()),
    }
}

/// A valid status.
pub fn status() -> Status {
    Status {
        id: "0f1e2d3c".into(),
        name: "web1".into(),
        hostname: "web1.example.com".into(),
        ips: vec!["10.0.0.5".into(), "fe80::1%eth0".into()],
        version: "0.1.0".into(),
        online: true,
        facts: facts(json!({
            "name": "web1", "id": "0f1e2d3c", "hostname": "web1.example.com",
            "os": "linux", "cpus": 4, "memory": {"total": 8589934592u64},
        })),
        tags: vec!["web".into(), "prod".into()],
        pools: vec!["build".into()],
        started_ms: 1_700_000_000_000,
        heartbeat_s: 30,
        created_ms: 1_700_000_000_001,
        measure: Some(bot_proto::metrics::Measure {
            enabled: true,
            interval_ms: 10_000,
            collectors: vec!["cpu".into(), "memory".into()],
            revision: 3,
            local: false,
        }),
        key: None,
        sig: None,
    }
}

/// A valid heartbeat.
pub fn heartbeat() -> Heartbeat {
    Heartbeat {
        id: "0f1e2d3c".into(),
        name: "web1".into(),
        seq: 42,
        uptime_s: 1260,
        created_ms: 1_700_000_001_260,
        sig: None,
    }
}

/// `bytes` as a JSON value (test helper).
pub fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

/// `v` as bytes (test helper).
pub fn bytes_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializable")
}
