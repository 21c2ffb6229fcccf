//! Every validation limit of every envelope: the value at the limit passes
//! `validate` and survives `encode` → `decode`; the value past it fails
//! both, with a `Field` error naming the field.

use bot_proto::envelope::{
    MAX_ARGS_BYTES, MAX_ERROR_CHARS, MAX_FACT_KEY_BYTES, MAX_FACTS, MAX_HEARTBEAT_S,
    MAX_HOSTNAME_BYTES, MAX_ID_CHARS, MAX_IP_BYTES, MAX_LIST_ENTRIES, MAX_NONCE_CHARS,
    MAX_REPLY_DATA_BYTES, MAX_SENDER_CHARS, MAX_SIG_CHARS, MAX_TTL_MS, MAX_VERSION_CHARS,
    MIN_NONCE_CHARS,
};
use bot_proto::filter::MAX_FILTER_BYTES;
use bot_proto::{DecodeError, Facts, Heartbeat, Reply, Request, Status};
use serde_json::{Value, json};

use crate::{heartbeat, reply, request, status};

/// The operations every envelope has.
trait Envelope: Sized + PartialEq + std::fmt::Debug {
    fn check(&self) -> Result<(), DecodeError>;
    fn bytes(&self) -> Vec<u8>;
    fn from_bytes(b: &[u8]) -> Result<Self, DecodeError>;
}

macro_rules! envelope {
    ($t:ty) => {
        impl Envelope for $t {
            fn check(&self) -> Result<(), DecodeError> {
                self.validate()
            }
            fn bytes(&self) -> Vec<u8> {
                self.encode()
            }
            fn from_bytes(b: &[u8]) -> Result<Self, DecodeError> {
                <$t>::decode(b)
            }
        }
    };
}
envelope!(Request);
envelope!(Reply);
envelope!(Status);
envelope!(Heartbeat);

#[track_caller]
fn ok<E: Envelope>(e: E) {
    assert_eq!(e.check(), Ok(()), "{e:?}");
    assert_eq!(E::from_bytes(&e.bytes()), Ok(e));
}

#[track_caller]
fn bad<E: Envelope>(e: E, field: &str) {
    let err = e.check().expect_err("should be invalid");
    match &err {
        DecodeError::Field { field: f, .. } => assert_eq!(*f, field, "{err}"),
        other => panic!("expected a field error on {field}, got {other:?}"),
    }
    assert_eq!(E::from_bytes(&e.bytes()), Err(err));
}

fn s(n: usize) -> String {
    "x".repeat(n)
}

#[test]
fn request_id() {
    ok(Request {
        id: s(MAX_ID_CHARS),
        ..request()
    });
    ok(Request {
        id: "aZ09_-".into(),
        ..request()
    });
    for id in [
        String::new(),
        s(MAX_ID_CHARS + 1),
        "a b".into(),
        "é".into(),
        "a.b".into(),
        "a/b".into(),
    ] {
        bad(Request { id, ..request() }, "id");
    }
}

#[test]
fn request_sender() {
    ok(Request {
        sender: "é".repeat(MAX_SENDER_CHARS),
        ..request()
    });
    ok(Request {
        sender: "CN=op, O=ops".into(),
        ..request()
    });
    for sender in [
        String::new(),
        s(MAX_SENDER_CHARS + 1),
        "a\nb".into(),
        "\u{0}".into(),
    ] {
        bad(
            Request {
                sender,
                ..request()
            },
            "sender",
        );
    }
}

#[test]
fn nonce() {
    ok(Request {
        nonce: s(MIN_NONCE_CHARS),
        ..request()
    });
    ok(Request {
        nonce: s(MAX_NONCE_CHARS),
        ..request()
    });
    ok(Request {
        nonce: "AZaz09+/=-_~!".into(),
        ..request()
    });
    for nonce in [
        s(MIN_NONCE_CHARS - 1),
        s(MAX_NONCE_CHARS + 1),
        "abcd efgh".into(),
        "ééééééééé".into(),
    ] {
        bad(
            Request {
                nonce: nonce.clone(),
                ..request()
            },
            "nonce",
        );
        bad(Reply { nonce, ..reply() }, "nonce");
    }
}

#[test]
fn ttl() {
    ok(Request {
        ttl_ms: 1,
        ..request()
    });
    ok(Request {
        ttl_ms: MAX_TTL_MS,
        ..request()
    });
    bad(
        Request {
            ttl_ms: 0,
            ..request()
        },
        "ttl_ms",
    );
    bad(
        Request {
            ttl_ms: MAX_TTL_MS + 1,
            ..request()
        },
        "ttl_ms",
    );
}

#[test]
fn filter() {
    let at_limit = format!("a={}", s(MAX_FILTER_BYTES - 2));
    ok(Request {
        filter: Some(at_limit),
        ..request()
    });
    let past = format!("a={}", s(MAX_FILTER_BYTES - 1));
    bad(
        Request {
            filter: Some(past),
            ..request()
        },
        "filter",
    );
    bad(
        Request {
            filter: Some(String::new()),
            ..request()
        },
        "filter",
    );
    let e = Request {
        filter: Some("os==linux".into()),
        ..request()
    }
    .validate()
    .expect_err("bad filter");
    assert_eq!(
        e.to_string(),
        "field \"filter\": \"os==linux\": filter error at column 3: unknown operator `==`; use `=`"
    );
}

#[test]
fn action() {
    ok(Request {
        action: "a".into(),
        ..request()
    });
    ok(Request {
        action: "run_2".into(),
        ..request()
    });
    ok(Request {
        action: format!("a{}", s(63)),
        ..request()
    });
    for action in [
        String::new(),
        format!("a{}", s(64)),
        "Run".into(),
        "1run".into(),
        "run-x".into(),
        "_run".into(),
        "run x".into(),
    ] {
        bad(
            Request {
                action,
                ..request()
            },
            "action",
        );
    }
}

#[test]
fn args() {
    // {"k":"…"} is 8 bytes plus the string.
    ok(Request {
        args: json!({"k": s(MAX_ARGS_BYTES - 8)}),
        ..request()
    });
    bad(
        Request {
            args: json!({"k": s(MAX_ARGS_BYTES - 7)}),
            ..request()
        },
        "args",
    );
    // Only reachable through validate (decode checks the type first).
    for args in [json!([]), json!(null), json!("x")] {
        let e = Request { args, ..request() }
            .validate()
            .expect_err("not an object");
        assert_eq!(e.to_string(), "field \"args\": must be a JSON object");
    }
}

#[test]
fn reply_to() {
    ok(Request {
        reply_to: s(512),
        ..request()
    });
    ok(Request {
        reply_to: "results/nagios".into(),
        ..request()
    });
    ok(Request {
        reply_to: "bot/v1/reply/s-1/x".into(),
        ..request()
    });
    for reply_to in [
        String::new(),
        s(513),
        "a/+".into(),
        "a/#".into(),
        "a\0b".into(),
        "$share/g/x".into(),
        "bot/v1/req/all".into(),
        "bot/v1/status/x".into(),
    ] {
        bad(
            Request {
                reply_to,
                ..request()
            },
            "reply_to",
        );
    }
}

#[test]
fn sig() {
    ok(Request {
        sig: Some(s(MAX_SIG_CHARS)),
        ..request()
    });
    ok(Reply {
        sig: Some(s(MAX_SIG_CHARS)),
        ..reply()
    });
    for sig in [String::new(), s(MAX_SIG_CHARS + 1), "a b".into()] {
        bad(
            Request {
                sig: Some(sig.clone()),
                ..request()
            },
            "sig",
        );
        bad(
            Reply {
                sig: Some(sig),
                ..reply()
            },
            "sig",
        );
    }
}

#[test]
fn reply_ids_and_names() {
    ok(Reply {
        request_id: s(MAX_ID_CHARS),
        ..reply()
    });
    bad(
        Reply {
            request_id: s(MAX_ID_CHARS + 1),
            ..reply()
        },
        "request_id",
    );
    bad(
        Reply {
            request_id: "a b".into(),
            ..reply()
        },
        "request_id",
    );
    ok(Reply {
        agent_id: s(128),
        agent_name: s(128),
        ..reply()
    });
    for level in [
        String::new(),
        s(129),
        "a/b".into(),
        "a+".into(),
        "#".into(),
        "a b".into(),
    ] {
        bad(
            Reply {
                agent_id: level.clone(),
                ..reply()
            },
            "agent_id",
        );
        bad(
            Reply {
                agent_name: level,
                ..reply()
            },
            "agent_name",
        );
    }
    bad(
        Reply {
            sender: String::new(),
            ..reply()
        },
        "sender",
    );
    bad(
        Reply {
            sender: s(MAX_SENDER_CHARS + 1),
            ..reply()
        },
        "sender",
    );
}

#[test]
fn reply_data() {
    // A string encodes as itself plus two quotes.
    ok(Reply {
        data: json!(s(MAX_REPLY_DATA_BYTES - 2)),
        ..reply()
    });
    bad(
        Reply {
            data: json!(s(MAX_REPLY_DATA_BYTES - 1)),
            ..reply()
        },
        "data",
    );
    ok(Reply {
        data: Value::Null,
        ..reply()
    });
    ok(Reply {
        data: json!([1, "two", {"three": 3.0}]),
        ..reply()
    });
}

#[test]
fn reply_error() {
    ok(Reply {
        error: Some("é".repeat(MAX_ERROR_CHARS)),
        ..reply()
    });
    ok(Reply {
        error: Some("line 1\n\tline 2".into()),
        ..reply()
    });
    ok(Reply {
        error: Some(String::new()),
        ..reply()
    });
    bad(
        Reply {
            error: Some(s(MAX_ERROR_CHARS + 1)),
            ..reply()
        },
        "error",
    );
    bad(
        Reply {
            error: Some("a\u{1b}[31m".into()),
            ..reply()
        },
        "error",
    );
}

#[test]
fn status_identity() {
    ok(Status {
        id: s(128),
        name: s(128),
        ..status()
    });
    for level in [
        String::new(),
        s(129),
        "a/b".into(),
        "a b".into(),
        "a\tb".into(),
    ] {
        bad(
            Status {
                id: level.clone(),
                ..status()
            },
            "id",
        );
        bad(
            Status {
                name: level.clone(),
                ..status()
            },
            "name",
        );
        bad(
            Heartbeat {
                id: level.clone(),
                ..heartbeat()
            },
            "id",
        );
        bad(
            Heartbeat {
                name: level,
                ..heartbeat()
            },
            "name",
        );
    }
    ok(Heartbeat {
        id: s(128),
        name: s(128),
        seq: u64::MAX,
        uptime_s: u64::MAX,
        created_ms: u64::MAX,
        sig: None,
    });
    ok(Status {
        hostname: s(MAX_HOSTNAME_BYTES),
        ..status()
    });
    for hostname in [String::new(), s(MAX_HOSTNAME_BYTES + 1), "a b".into()] {
        bad(
            Status {
                hostname,
                ..status()
            },
            "hostname",
        );
    }
    ok(Status {
        version: s(MAX_VERSION_CHARS),
        ..status()
    });
    ok(Status {
        version: "1.0 (beta)".into(),
        ..status()
    });
    for version in [String::new(), s(MAX_VERSION_CHARS + 1), "1\n".into()] {
        bad(
            Status {
                version,
                ..status()
            },
            "version",
        );
    }
    ok(Status {
        heartbeat_s: 0,
        ..status()
    });
    ok(Status {
        heartbeat_s: MAX_HEARTBEAT_S,
        ..status()
    });
    bad(
        Status {
            heartbeat_s: MAX_HEARTBEAT_S + 1,
            ..status()
        },
        "heartbeat_s",
    );
}

#[test]
fn status_ips() {
    ok(Status {
        ips: vec!["10.0.0.1".into(); MAX_LIST_ENTRIES],
        ..status()
    });
    ok(Status {
        ips: vec![s(MAX_IP_BYTES)],
        ..status()
    });
    bad(
        Status {
            ips: vec!["10.0.0.1".into(); MAX_LIST_ENTRIES + 1],
            ..status()
        },
        "ips",
    );
    for ip in [String::new(), s(MAX_IP_BYTES + 1), "10.0.0.1 x".into()] {
        bad(
            Status {
                ips: vec![ip],
                ..status()
            },
            "ips",
        );
    }
}

#[test]
fn status_tags_and_pools() {
    let many: Vec<String> = (0..MAX_LIST_ENTRIES).map(|i| format!("t{i}")).collect();
    ok(Status {
        tags: many.clone(),
        pools: many.clone(),
        ..status()
    });
    let too_many: Vec<String> = (0..=MAX_LIST_ENTRIES).map(|i| format!("t{i}")).collect();
    bad(
        Status {
            tags: too_many.clone(),
            ..status()
        },
        "tags",
    );
    bad(
        Status {
            pools: too_many,
            ..status()
        },
        "pools",
    );
    ok(Status {
        tags: vec![s(128)],
        pools: vec![s(128)],
        ..status()
    });
    for entry in [
        String::new(),
        s(129),
        "a/b".into(),
        "a+b".into(),
        "a b".into(),
    ] {
        bad(
            Status {
                tags: vec![entry.clone()],
                ..status()
            },
            "tags",
        );
        bad(
            Status {
                pools: vec![entry],
                ..status()
            },
            "pools",
        );
    }
}

#[test]
fn status_facts() {
    let many: Facts = (0..MAX_FACTS)
        .map(|i| (format!("f{i}"), json!(i)))
        .collect();
    ok(Status {
        facts: many.clone(),
        ..status()
    });
    let mut too_many = many;
    too_many.insert("one_more".into(), json!(1));
    bad(
        Status {
            facts: too_many,
            ..status()
        },
        "facts",
    );
    let key = |k: String| -> Facts { [(k, json!(1))].into_iter().collect() };
    ok(Status {
        facts: key(s(MAX_FACT_KEY_BYTES)),
        ..status()
    });
    ok(Status {
        facts: key("memory.total".into()),
        ..status()
    });
    for k in [String::new(), s(MAX_FACT_KEY_BYTES + 1), "a\nb".into()] {
        bad(
            Status {
                facts: key(k),
                ..status()
            },
            "facts",
        );
    }
}
