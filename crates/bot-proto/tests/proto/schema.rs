//! The JSON Schemas in `docs/schemas/` against real messages: everything
//! `encode` writes (at the limits too) is valid, the schemas list exactly
//! the fields the types write, and invalid messages are rejected by both the
//! schema and `decode`.

use bot_proto::metrics::{Number, Sample};
use bot_proto::{DecodeError, Heartbeat, MeasureConfig, Metrics, Reply, Request, Status};
use serde_json::{Value, json};

use crate::{bytes_of, heartbeat, json_of, reply, request, status};

const REQUEST: &str = include_str!("../../../../docs/schemas/request.schema.json");
const REPLY: &str = include_str!("../../../../docs/schemas/reply.schema.json");
const STATUS: &str = include_str!("../../../../docs/schemas/status.schema.json");
const HEARTBEAT: &str = include_str!("../../../../docs/schemas/heartbeat.schema.json");
const CONFIG: &str = include_str!("../../../../docs/schemas/config.schema.json");
const METRICS: &str = include_str!("../../../../docs/schemas/metrics.schema.json");

/// A decoder, named by its kind.
type Decode = fn(&[u8]) -> Result<(), DecodeError>;

/// A metrics batch with a sample of every shape.
fn metrics() -> Metrics {
    Metrics {
        id: "0f1e2d3c".into(),
        name: "web1".into(),
        time_ms: 1_700_000_000_000,
        interval_ms: 10_000,
        samples: vec![
            Sample::gauge("cpu.usage", Number::Real(12.5)).label("cpu", "total"),
            Sample::derive("net.rx_bytes", 1).label("iface", "eth0"),
            Sample::gauge("uptime", Number::Int(5)),
        ],
        sig: None,
    }
}

/// The schemas with their decoders and a valid message of each kind.
fn kinds() -> Vec<(&'static str, Value, Decode, Value)> {
    vec![
        (
            "request",
            schema(REQUEST),
            |b| Request::decode(b).map(drop),
            json_of(&request().encode()),
        ),
        (
            "reply",
            schema(REPLY),
            |b| Reply::decode(b).map(drop),
            json_of(&reply().encode()),
        ),
        (
            "status",
            schema(STATUS),
            |b| Status::decode(b).map(drop),
            // Signed, so that the optional fields are written too.
            json_of(
                &Status {
                    key: Some("ed25519:AAAA".into()),
                    sig: Some("kid.sig".into()),
                    ..status()
                }
                .encode(),
            ),
        ),
        (
            "heartbeat",
            schema(HEARTBEAT),
            |b| Heartbeat::decode(b).map(drop),
            json_of(
                &Heartbeat {
                    sig: Some("kid.sig".into()),
                    ..heartbeat()
                }
                .encode(),
            ),
        ),
        (
            "config",
            schema(CONFIG),
            |b| MeasureConfig::decode(b).map(drop),
            json_of(
                &MeasureConfig {
                    id: "0f1e2d3c".into(),
                    revision: 3,
                    enabled: true,
                    interval_ms: 5_000,
                    collectors: vec!["cpu".into(), "memory".into()],
                    created_ms: 1_700_000_000_000,
                    sig: Some("kid.sig".into()),
                }
                .encode(),
            ),
        ),
        (
            "metrics",
            schema(METRICS),
            |b| Metrics::decode(b).map(drop),
            json_of(
                &Metrics {
                    sig: Some("kid.sig".into()),
                    ..metrics()
                }
                .encode(),
            ),
        ),
    ]
}

fn schema(text: &str) -> Value {
    let schema: Value = serde_json::from_str(text).expect("schema is JSON");
    assert!(
        jsonschema::meta::is_valid(&schema),
        "schema is a valid 2020-12 schema"
    );
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    schema
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).expect("schema compiles")
}

/// Asserts `msg` is valid for the schema and for `decode`.
#[track_caller]
fn accepted(kind: &str, v: &jsonschema::Validator, decode: Decode, msg: &Value) {
    let errors: Vec<String> = v.iter_errors(msg).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{kind}: schema rejects {msg}: {errors:?}"
    );
    assert_eq!(
        decode(&bytes_of(msg)),
        Ok(()),
        "{kind}: decode rejects {msg}"
    );
}

/// Asserts `msg` is rejected by the schema and by `decode`.
#[track_caller]
fn rejected(kind: &str, v: &jsonschema::Validator, decode: Decode, msg: &Value) {
    assert!(!v.is_valid(msg), "{kind}: schema accepts {msg}");
    assert!(
        decode(&bytes_of(msg)).is_err(),
        "{kind}: decode accepts {msg}"
    );
}

#[test]
fn encoded_messages_are_valid() {
    for (kind, schema, decode, msg) in kinds() {
        let v = validator(&schema);
        accepted(kind, &v, decode, &msg);
        // Optional fields absent, and null.
        let mut bare = msg.clone();
        let obj = bare.as_object_mut().expect("object");
        for field in ["filter", "sig", "error"] {
            if obj.contains_key(field) {
                obj.remove(field);
            }
        }
        accepted(kind, &v, decode, &bare);
        let mut nulls = msg.clone();
        let obj = nulls.as_object_mut().expect("object");
        for field in ["filter", "sig", "error"] {
            if obj.contains_key(field) {
                obj.insert(field.into(), Value::Null);
            }
        }
        accepted(kind, &v, decode, &nulls);
        // Unknown fields are allowed by both.
        let mut extra = msg.clone();
        extra["x_future"] = json!({"any": [1]});
        accepted(kind, &v, decode, &extra);
    }
}

#[test]
fn messages_at_the_limits_are_valid() {
    let v = validator(&schema(REQUEST));
    let decode: Decode = |b| Request::decode(b).map(drop);
    let at_limits = Request {
        id: "x".repeat(64),
        sender: "é".repeat(256),
        created_ms: u64::MAX,
        nonce: "~".repeat(64),
        ttl_ms: 86_400_000,
        filter: Some(format!("a={}", "x".repeat(4094))),
        action: format!("a{}", "_".repeat(63)),
        args: json!({}),
        reply_to: format!("bot/v1/reply/{}", "x".repeat(499)),
        sig: Some("!".repeat(1024)),
    };
    accepted("request", &v, decode, &json_of(&at_limits.encode()));
    let low = Request {
        id: "x".into(),
        sender: "x".into(),
        created_ms: 0,
        nonce: "!".repeat(8),
        ttl_ms: 1,
        filter: Some("*".into()),
        action: "a".into(),
        reply_to: "r".into(),
        sig: Some("s".into()),
        ..request()
    };
    accepted("request", &v, decode, &json_of(&low.encode()));

    let v = validator(&schema(STATUS));
    let decode: Decode = |b| Status::decode(b).map(drop);
    let level = "x".repeat(128);
    let at_limits = Status {
        id: level.clone(),
        name: level.clone(),
        hostname: "h".repeat(255),
        ips: vec!["i".repeat(64); 64],
        version: "v".repeat(64),
        facts: (0..512).map(|i| (format!("{i:0>128}"), json!(i))).collect(),
        tags: vec![level.clone(); 64],
        pools: vec![level; 64],
        heartbeat_s: 86_400,
        ..status()
    };
    accepted("status", &v, decode, &json_of(&at_limits.encode()));

    let v = validator(&schema(REPLY));
    let decode: Decode = |b| Reply::decode(b).map(drop);
    let at_limits = Reply {
        error: Some("e\n\t".repeat(1365)),
        agent_id: "é".repeat(64),
        ..reply()
    };
    accepted("reply", &v, decode, &json_of(&at_limits.encode()));
}

#[test]
fn schemas_list_exactly_the_fields_the_types_write() {
    for (kind, schema, _, msg) in kinds() {
        let written: Vec<&String> = msg.as_object().expect("object").keys().collect();
        let listed: Vec<&String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        let mut written_sorted = written.clone();
        written_sorted.sort();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        assert_eq!(written_sorted, listed_sorted, "{kind}: properties");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .map(|v| v.as_str().expect("string"))
            .collect();
        let optional = ["filter", "sig", "error", "key", "measure"];
        let expected: Vec<&str> = written
            .iter()
            .map(|s| s.as_str())
            .filter(|k| !optional.contains(k))
            .collect();
        let mut required_sorted = required.clone();
        required_sorted.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(required_sorted, expected_sorted, "{kind}: required");
    }
}

/// A field and its new value (`None`: removed).
type Edit = (&'static str, Option<Value>);

/// The message `msg` with `field` set to `value` (or removed, for `None`).
fn with(msg: &Value, field: &str, value: Option<Value>) -> Value {
    let mut m = msg.clone();
    let obj = m.as_object_mut().expect("object");
    match value {
        Some(v) => obj.insert(field.into(), v),
        None => obj.remove(field),
    };
    m
}

#[test]
fn invalid_messages_are_rejected_by_both() {
    let common: Vec<Edit> = vec![
        ("v", Some(json!(2))),
        ("v", Some(json!("1"))),
        ("v", None),
        ("kind", Some(json!("other"))),
        ("kind", None),
    ];
    let specific: Vec<(&str, Vec<Edit>)> = vec![
        (
            "request",
            vec![
                ("id", None),
                ("id", Some(json!(""))),
                ("id", Some(json!("a b"))),
                ("id", Some(json!("x".repeat(65)))),
                ("sender", Some(json!(""))),
                ("sender", Some(json!("a\u{1}"))),
                ("sender", Some(json!("x".repeat(257)))),
                ("created_ms", Some(json!(-1))),
                ("created_ms", Some(json!("1"))),
                ("nonce", Some(json!("short"))),
                ("nonce", Some(json!("with space in it"))),
                ("ttl_ms", Some(json!(0))),
                ("ttl_ms", Some(json!(86_400_001))),
                ("filter", Some(json!(""))),
                ("filter", Some(json!(5))),
                ("filter", Some(json!(format!("a={}", "x".repeat(4095))))),
                ("action", Some(json!("Run"))),
                ("action", Some(json!(""))),
                ("action", Some(json!("x".repeat(65)))),
                ("args", Some(json!([]))),
                ("args", Some(json!(null))),
                ("reply_to", Some(json!("a/+"))),
                ("reply_to", Some(json!("a/#"))),
                ("reply_to", Some(json!("$SYS/x"))),
                ("reply_to", Some(json!(""))),
                ("reply_to", Some(json!("x".repeat(513)))),
                ("reply_to", Some(json!("bot/v1/req/all"))),
                ("reply_to", Some(json!("bot/v1"))),
                ("sig", Some(json!(""))),
                ("sig", Some(json!("a b"))),
                ("sig", Some(json!("x".repeat(1025)))),
            ],
        ),
        (
            "reply",
            vec![
                ("request_id", Some(json!("a/b"))),
                ("agent_id", Some(json!("a/b"))),
                ("agent_id", Some(json!(""))),
                ("agent_name", Some(json!("a b"))),
                ("agent_name", Some(json!("x".repeat(129)))),
                ("status", Some(json!("done"))),
                ("status", Some(json!("OK"))),
                ("data", None),
                ("error", Some(json!("x".repeat(4097)))),
                ("error", Some(json!("bell\u{7}"))),
                ("duration_ms", Some(json!(1.5))),
            ],
        ),
        (
            "status",
            vec![
                ("id", Some(json!("a+b"))),
                ("name", Some(json!("a#"))),
                ("hostname", Some(json!("a b"))),
                ("hostname", Some(json!(""))),
                ("ips", Some(json!(["10.0.0.1 x"]))),
                ("ips", Some(json!(vec!["1"; 65]))),
                ("ips", Some(json!("10.0.0.1"))),
                ("version", Some(json!(""))),
                ("online", Some(json!(1))),
                ("facts", Some(json!([]))),
                ("facts", Some(json!({"": 1}))),
                ("facts", Some(json!({"x".repeat(129): 1}))),
                ("tags", Some(json!(["a/b"]))),
                ("tags", Some(json!(vec!["t"; 65]))),
                ("pools", Some(json!([""]))),
                ("heartbeat_s", Some(json!(86_401))),
            ],
        ),
        (
            "heartbeat",
            vec![
                ("id", Some(json!("a/b"))),
                ("name", Some(json!(""))),
                ("seq", Some(json!(-1))),
                ("uptime_s", Some(json!(null))),
            ],
        ),
        (
            "config",
            vec![
                ("id", Some(json!("a b"))),
                ("revision", Some(json!(-1))),
                ("enabled", Some(json!("yes"))),
                ("interval_ms", Some(json!(99))),
                ("interval_ms", Some(json!(86_400_001))),
                ("collectors", Some(json!(["CPU"]))),
                ("collectors", Some(json!(["cpu", "cpu"]))),
                ("created_ms", None),
            ],
        ),
        (
            "metrics",
            vec![
                ("id", Some(json!("a/b"))),
                ("name", None),
                ("time_ms", Some(json!(-1))),
                ("interval_ms", Some(json!("10"))),
                ("samples", Some(json!({}))),
                (
                    "samples",
                    Some(json!(vec![json!(["m", {}, 1, "GAUGE"]); 4097])),
                ),
            ],
        ),
    ];
    let mut checked = 0;
    for (kind, schema, decode, msg) in kinds() {
        let v = validator(&schema);
        let cases = specific
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| c.clone())
            .expect("cases");
        for (field, value) in common.iter().cloned().chain(cases) {
            rejected(kind, &v, decode, &with(&msg, field, value));
            checked += 1;
        }
        // Not an object at all.
        rejected(kind, &v, decode, &json!([msg.clone()]));
    }
    assert!(checked > 60, "{checked}");
}

#[test]
fn too_many_facts_are_rejected_by_both() {
    let v = validator(&schema(STATUS));
    let facts: serde_json::Map<String, Value> =
        (0..513).map(|i| (format!("f{i}"), json!(i))).collect();
    let msg = with(
        &json_of(&status().encode()),
        "facts",
        Some(Value::Object(facts)),
    );
    rejected("status", &v, |b| Status::decode(b).map(drop), &msg);
}

/// A malformed sample is refused by the schema, and `decode` leaves it out
/// and counts it, keeping the rest.
#[test]
fn malformed_samples_are_described_by_the_schema_and_counted_by_decode() {
    let v = validator(&schema(METRICS));
    let good = json_of(&metrics().encode());
    for bad in [
        json!(["bad metric", {}, 1, "GAUGE"]),
        json!(["m", {"Cpu": "0"}, 1, "GAUGE"]),
        json!(["m", {"cpu": 0}, 1, "GAUGE"]),
        json!(["m", {}, "1", "GAUGE"]),
        json!(["m", {}, 1, "gauge"]),
        json!(["m", {}, 1]),
        json!("m"),
    ] {
        let mut msg = good.clone();
        msg["samples"]
            .as_array_mut()
            .expect("array")
            .push(bad.clone());
        assert!(!v.is_valid(&msg), "schema accepts {bad}");
        let d = Metrics::decode(&bytes_of(&msg)).expect("the batch decodes");
        assert_eq!(d.rejected, 1, "{bad}");
        assert_eq!(d.metrics.samples, metrics().samples, "{bad}");
    }
}
