//! Envelopes: round trips, the exact wire shape, signing bytes, expiry and
//! clock checks, salvage, unknown fields, versions and kinds, type errors.

use bot_proto::envelope::MAX_CLOCK_SKEW_MS;
use bot_proto::filter::Filter;
use bot_proto::{
    DecodeError, Heartbeat, MAX_ENVELOPE_BYTES, MAX_REPLY_BYTES, Reply, ReplyStatus, Request,
    Status,
};
use serde_json::{Value, json};

use crate::{bytes_of, heartbeat, json_of, reply, request, status};

/// The request of `request()` as a JSON value, with `edit` applied.
fn request_json(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut v = json_of(&request().encode());
    if let Value::Object(m) = &mut v {
        edit(m);
    }
    bytes_of(&v)
}

#[test]
fn round_trips() {
    let r = request();
    assert_eq!(Request::decode(&r.encode()), Ok(r.clone()));
    let bare = Request {
        filter: None,
        sig: None,
        args: json!({}),
        ..r
    };
    assert_eq!(Request::decode(&bare.encode()), Ok(bare));

    let p = reply();
    assert_eq!(Reply::decode(&p.encode()), Ok(p.clone()));
    for status in ReplyStatus::ALL {
        let p = Reply {
            status,
            error: None,
            sig: None,
            data: Value::Null,
            ..reply()
        };
        assert_eq!(Reply::decode(&p.encode()), Ok(p));
    }

    let s = status();
    assert_eq!(Status::decode(&s.encode()), Ok(s.clone()));
    let offline = Status {
        online: false,
        facts: Default::default(),
        tags: vec![],
        pools: vec![],
        ips: vec![],
        ..s
    };
    assert_eq!(Status::decode(&offline.encode()), Ok(offline));

    let h = heartbeat();
    assert_eq!(Heartbeat::decode(&h.encode()), Ok(h));
}

#[test]
fn wire_shapes() {
    let r = Request {
        args: json!({"cmd": "uptime"}),
        sig: None,
        ..request()
    };
    assert_eq!(
        String::from_utf8(r.encode()).expect("utf-8"),
        r#"{"v":1,"kind":"request","id":"r-1","sender":"op@admin","created_ms":1700000000000,"nonce":"9f86d081884c7d65","ttl_ms":30000,"filter":"os=linux and tag:web","action":"run","args":{"cmd":"uptime"},"reply_to":"bot/v1/reply/s-1"}"#
    );
    let p = Reply {
        status: ReplyStatus::Ok,
        data: json!({"exit": 0, "stdout": "up\n"}),
        error: None,
        sig: None,
        ..reply()
    };
    assert_eq!(
        String::from_utf8(p.encode()).expect("utf-8"),
        r#"{"v":1,"kind":"reply","request_id":"r-1","agent_id":"0f1e2d3c","agent_name":"web1","sender":"agent:0f1e2d3c","created_ms":1700000000120,"nonce":"5b0c1f0e2a9d4471","status":"ok","data":{"exit":0,"stdout":"up\n"},"received_ms":1700000000050,"duration_ms":70}"#
    );
    assert_eq!(
        String::from_utf8(status().encode()).expect("utf-8"),
        r#"{"v":1,"kind":"status","id":"0f1e2d3c","name":"web1","hostname":"web1.example.com","ips":["10.0.0.5","fe80::1%eth0"],"version":"0.1.0","online":true,"facts":{"cpus":4,"hostname":"web1.example.com","id":"0f1e2d3c","memory":{"total":8589934592},"name":"web1","os":"linux"},"tags":["web","prod"],"pools":["build"],"started_ms":1700000000000,"heartbeat_s":30,"created_ms":1700000000001,"measure":{"enabled":true,"interval_ms":10000,"collectors":["cpu","memory"],"revision":3,"local":false}}"#
    );
    assert_eq!(
        String::from_utf8(heartbeat().encode()).expect("utf-8"),
        r#"{"v":1,"kind":"heartbeat","id":"0f1e2d3c","name":"web1","seq":42,"uptime_s":1260,"created_ms":1700000001260}"#
    );
}

#[test]
fn signing_bytes_leave_out_sig_only() {
    let r = request();
    let signing = json_of(&r.signing_bytes());
    let mut full = json_of(&r.encode());
    assert!(signing.get("sig").is_none());
    full.as_object_mut().expect("object").remove("sig");
    assert_eq!(signing, full);
    // The signature does not change what it signs.
    let unsigned = Request {
        sig: None,
        ..r.clone()
    };
    assert_eq!(unsigned.signing_bytes(), r.signing_bytes());
    assert_eq!(unsigned.encode(), r.signing_bytes());

    let p = reply();
    let unsigned = Reply {
        sig: None,
        ..p.clone()
    };
    assert_eq!(unsigned.signing_bytes(), p.signing_bytes());
    assert_eq!(unsigned.encode(), p.signing_bytes());
    assert!(json_of(&p.signing_bytes()).get("sig").is_none());
}

#[test]
fn signing_bytes_survive_decode_and_reencode() {
    let r = Request {
        args: json!({
            "z": 1, "a": [0.1, 1e-300, 123456.789e10, -0.0, 5e-324, 1.7976931348623157e308],
            "m": {"y": "é\u{1F600}\"\\\n", "b": null, "a": true},
            "big": 18446744073709551615u64, "neg": -9223372036854775808i64,
        }),
        ..request()
    };
    let sent = r.signing_bytes();
    let got = Request::decode(&r.encode()).expect("decodes");
    assert_eq!(got.signing_bytes(), sent);
    assert_eq!(got.encode(), r.encode());
    // Whitespace, key order and escapes on the wire do not matter.
    let text = String::from_utf8(r.encode()).expect("utf-8");
    let pretty = serde_json::to_string_pretty(&json_of(text.as_bytes())).expect("json");
    let reordered = r#"{ "args": {"m": {"a": true, "b": null, "y": "\u00e9\ud83d\ude00\"\\\n"}, "neg": -9223372036854775808,
        "z": 1, "big": 18446744073709551615, "a": [0.1, 1e-300, 1.23456789e15, -0.0, 5e-324, 1.7976931348623157e308]},
        "reply_to": "bot/v1/reply/s-1", "sig": "ed25519:op1:c2lnbmF0dXJl", "action": "run",
        "filter": "os=linux and tag:web", "ttl_ms": 30000, "nonce": "9f86d081884c7d65",
        "created_ms": 1700000000000, "sender": "op\u0040admin", "id": "r-1", "kind": "request", "v": 1,
        "unknown": {"ignored": [1, 2]} }"#;
    for wire in [pretty.as_str(), reordered] {
        let got = Request::decode(wire.as_bytes()).expect("decodes");
        assert_eq!(got, r);
        assert_eq!(got.signing_bytes(), sent, "{wire}");
    }
    // Floats: decode → encode is the identity on the text serde_json writes.
    let p = Reply {
        data: json!([0.1, 0.2, 0.30000000000000004, 2.5e-8, 1e21, 4.35]),
        ..reply()
    };
    let again = Reply::decode(&p.encode()).expect("decodes");
    assert_eq!(again.signing_bytes(), p.signing_bytes());
}

#[test]
fn signing_bytes_cover_every_field() {
    let base = request().signing_bytes();
    let variants = [
        Request {
            id: "r-2".into(),
            ..request()
        },
        Request {
            sender: "op@other".into(),
            ..request()
        },
        Request {
            created_ms: 1,
            ..request()
        },
        Request {
            nonce: "9f86d081884c7d66".into(),
            ..request()
        },
        Request {
            ttl_ms: 1,
            ..request()
        },
        Request {
            filter: None,
            ..request()
        },
        Request {
            action: "ping".into(),
            ..request()
        },
        Request {
            args: json!({}),
            ..request()
        },
        Request {
            reply_to: "elsewhere".into(),
            ..request()
        },
    ];
    for v in variants {
        assert_ne!(v.signing_bytes(), base, "{v:?}");
    }
    // A request's signing bytes are never a reply's.
    assert!(
        String::from_utf8(base)
            .expect("utf-8")
            .starts_with(r#"{"v":1,"kind":"request","#)
    );
}

#[test]
fn expiry() {
    let r = Request {
        created_ms: 1000,
        ttl_ms: 500,
        ..request()
    };
    assert_eq!(r.expires_ms(), 1500);
    assert!(!r.is_expired(0));
    assert!(!r.is_expired(1000));
    assert!(!r.is_expired(1500));
    assert!(r.is_expired(1501));
    let far = Request {
        created_ms: u64::MAX - 1,
        ttl_ms: 10,
        ..request()
    };
    assert_eq!(far.expires_ms(), u64::MAX);
    assert!(!far.is_expired(u64::MAX));
}

#[test]
fn clock_skew() {
    let now = 1_700_000_000_000;
    let at = |created_ms| Request {
        created_ms,
        ..request()
    };
    assert_eq!(at(now).check_clock(now), Ok(()));
    assert_eq!(at(0).check_clock(now), Ok(()));
    assert_eq!(at(now + MAX_CLOCK_SKEW_MS).check_clock(now), Ok(()));
    let e = at(now + MAX_CLOCK_SKEW_MS + 1)
        .check_clock(now)
        .expect_err("too far ahead");
    assert!(e.contains("30001 ms in the future"), "{e}");
    assert!(at(u64::MAX).check_clock(0).is_err());
}

#[test]
fn parsed_filter() {
    let r = Request {
        filter: None,
        ..request()
    };
    assert_eq!(r.parsed_filter(), Ok(Filter::all()));
    let r = request();
    assert_eq!(
        r.parsed_filter().map(|f| f.to_string()),
        Ok("os=linux and tag:web".into())
    );
}

#[test]
fn salvage() {
    let bad_action = request_json(|m| {
        m.insert("action".into(), json!("Bad Action"));
    });
    assert!(Request::decode(&bad_action).is_err());
    assert_eq!(
        Request::salvage(&bad_action),
        Some(("r-1".into(), "bot/v1/reply/s-1".into()))
    );
    // v is not checked: a v2 request gets an answer.
    let v2 = request_json(|m| {
        m.insert("v".into(), json!(2));
    });
    assert!(matches!(Request::decode(&v2), Err(DecodeError::Version(_))));
    assert!(Request::salvage(&v2).is_some());
    // No kind at all is fine.
    assert!(Request::salvage(br#"{"id":"x","reply_to":"r/t"}"#).is_some());
    // Everything else: nothing to answer.
    for bytes in [
        &b"not json"[..],
        b"[1]",
        b"{}",
        br#"{"id":"x"}"#,
        br#"{"reply_to":"r/t"}"#,
        br#"{"id":5,"reply_to":"r/t"}"#,
        br#"{"id":"x","reply_to":5}"#,
        br#"{"id":"bad id","reply_to":"r/t"}"#,
        br#"{"id":"x","reply_to":"r/+"}"#,
        br#"{"id":"x","reply_to":""}"#,
        br#"{"id":"x","reply_to":"bot/v1/req/all"}"#,
        br#"{"id":"x","reply_to":"bot/v1/status/a"}"#,
        br#"{"id":"x","reply_to":"$SYS/x"}"#,
        br#"{"kind":"reply","id":"x","reply_to":"r/t"}"#,
        br#"{"kind":5,"id":"x","reply_to":"r/t"}"#,
    ] {
        assert_eq!(
            Request::salvage(bytes),
            None,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let long_id = format!(r#"{{"id":"{}","reply_to":"r"}}"#, "x".repeat(65));
    assert_eq!(Request::salvage(long_id.as_bytes()), None);
    // Up to 4× the envelope limit is still looked at; beyond, not.
    let pad = |n: usize| format!(r#"{{"id":"x","reply_to":"r","pad":"{}"}}"#, "p".repeat(n));
    assert!(Request::salvage(pad(2 * MAX_ENVELOPE_BYTES).as_bytes()).is_some());
    assert!(Request::salvage(pad(4 * MAX_ENVELOPE_BYTES).as_bytes()).is_none());
}

#[test]
fn unknown_fields_are_ignored() {
    let bytes = request_json(|m| {
        m.insert("future_field".into(), json!({"x": [1, 2, 3]}));
        m.insert("sig_alg".into(), json!("ed25519"));
    });
    assert_eq!(Request::decode(&bytes), Ok(request()));
    let mut s = json_of(&status().encode());
    s["extra"] = json!(true);
    assert_eq!(Status::decode(&bytes_of(&s)), Ok(status()));
}

#[test]
fn versions() {
    for (v, shown) in [
        (json!(2), "2"),
        (json!(0), "0"),
        (json!("1"), "\"1\""),
        (json!(1.0), "1.0"),
        (json!(null), "null"),
        (json!([1]), "[1]"),
    ] {
        let bytes = request_json(|m| {
            m.insert("v".into(), v.clone());
        });
        let e = Request::decode(&bytes).expect_err("bad version");
        assert_eq!(e, DecodeError::Version(v.clone()));
        assert_eq!(
            e.to_string(),
            format!("unsupported protocol version {shown} (this side speaks v1)")
        );
    }
    let bytes = request_json(|m| {
        m.remove("v");
    });
    assert_eq!(
        Request::decode(&bytes),
        Err(DecodeError::Field {
            field: "v",
            reason: "missing".into()
        })
    );
    // The version is checked before the fields: a v2 with other fields.
    assert!(matches!(
        Request::decode(br#"{"v":2,"kind":"request","whatever":1}"#),
        Err(DecodeError::Version(_))
    ));
}

#[test]
fn kinds() {
    let e = Request::decode(&reply().encode()).expect_err("a reply");
    assert_eq!(
        e,
        DecodeError::Kind {
            expected: "request",
            got: "\"reply\"".into()
        }
    );
    assert_eq!(e.to_string(), "kind is \"reply\", expected \"request\"");
    assert!(matches!(
        Reply::decode(&request().encode()),
        Err(DecodeError::Kind {
            expected: "reply",
            ..
        })
    ));
    assert!(matches!(
        Status::decode(&heartbeat().encode()),
        Err(DecodeError::Kind {
            expected: "status",
            ..
        })
    ));
    assert!(matches!(
        Heartbeat::decode(&status().encode()),
        Err(DecodeError::Kind {
            expected: "heartbeat",
            ..
        })
    ));
    let e = Request::decode(br#"{"v":1}"#).expect_err("no kind");
    assert_eq!(
        e,
        DecodeError::Kind {
            expected: "request",
            got: "missing".into()
        }
    );
    let e = Request::decode(br#"{"v":1,"kind":7}"#).expect_err("kind 7");
    assert_eq!(
        e,
        DecodeError::Kind {
            expected: "request",
            got: "7".into()
        }
    );
    let long = format!(r#"{{"v":1,"kind":"{}"}}"#, "k".repeat(100));
    let DecodeError::Kind { got, .. } = Request::decode(long.as_bytes()).expect_err("long") else {
        panic!("not a kind error");
    };
    assert_eq!(got, format!("\"{}…\"", "k".repeat(60)));
}

#[test]
fn not_json() {
    for bytes in [
        &b""[..],
        b"{",
        b"nul",
        b"{\"v\":1,}",
        b"{} {}",
        b"\xff\xfe",
        b"{\"v\":\"\xff\"}",
    ] {
        let e = Request::decode(bytes).expect_err("not JSON");
        assert!(matches!(e, DecodeError::Json(_)), "{e:?}");
    }
    let e = Request::decode(b"{\n  \"v\": 1,\n  oops\n}").expect_err("bad");
    assert_eq!(
        e.to_string(),
        "invalid JSON: key must be a string at line 3 column 3"
    );
    for bytes in [&b"[]"[..], b"1", b"\"x\"", b"null"] {
        let e = Request::decode(bytes).expect_err("not an object");
        assert!(
            e.to_string()
                .starts_with("invalid JSON: expected a JSON object, got"),
            "{e}"
        );
    }
}

#[test]
fn too_large() {
    let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
    assert_eq!(
        Request::decode(&big),
        Err(DecodeError::TooLarge {
            size: MAX_ENVELOPE_BYTES + 1,
            limit: MAX_ENVELOPE_BYTES
        })
    );
    assert!(matches!(
        Status::decode(&big),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        Heartbeat::decode(&big),
        Err(DecodeError::TooLarge { .. })
    ));
    // Replies have their own, larger limit.
    assert!(matches!(Reply::decode(&big), Err(DecodeError::Json(_))));
    let bigger = vec![b' '; MAX_REPLY_BYTES + 1];
    assert_eq!(
        Reply::decode(&bigger),
        Err(DecodeError::TooLarge {
            size: MAX_REPLY_BYTES + 1,
            limit: MAX_REPLY_BYTES
        })
    );
    // Exactly at the limit is decoded (here: valid JSON padded with spaces).
    let mut padded = heartbeat().encode();
    padded.resize(MAX_ENVELOPE_BYTES, b' ');
    assert_eq!(Heartbeat::decode(&padded), Ok(heartbeat()));
}

#[test]
fn optional_fields_may_be_null_or_absent() {
    let bytes = request_json(|m| {
        m.insert("filter".into(), Value::Null);
        m.insert("sig".into(), Value::Null);
    });
    let r = Request::decode(&bytes).expect("decodes");
    assert_eq!((r.filter, r.sig), (None, None));
    let bytes = request_json(|m| {
        m.remove("filter");
        m.remove("sig");
    });
    let r = Request::decode(&bytes).expect("decodes");
    assert_eq!((r.filter, r.sig), (None, None));
    let mut p = json_of(&reply().encode());
    p["error"] = Value::Null;
    assert_eq!(Reply::decode(&bytes_of(&p)).expect("decodes").error, None);
}

#[test]
fn required_fields() {
    for field in [
        "id",
        "sender",
        "created_ms",
        "nonce",
        "ttl_ms",
        "action",
        "args",
        "reply_to",
    ] {
        let bytes = request_json(|m| {
            m.remove(field);
        });
        let e = Request::decode(&bytes).expect_err(field);
        assert_eq!(e.to_string(), format!("field {field:?}: missing"));
    }
    let full = json_of(&reply().encode());
    for field in full.as_object().expect("object").keys() {
        if ["v", "kind", "error", "sig"].contains(&field.as_str()) {
            continue;
        }
        let mut v = full.clone();
        v.as_object_mut().expect("object").remove(field);
        let e = Reply::decode(&bytes_of(&v)).expect_err(field);
        assert_eq!(e.to_string(), format!("field {field:?}: missing"));
    }
    for (bytes, full) in [
        (status().encode(), "status"),
        (heartbeat().encode(), "heartbeat"),
    ] {
        let v = json_of(&bytes);
        for field in v.as_object().expect("object").keys() {
            // `measure` is optional.
            if ["v", "kind", "measure"].contains(&field.as_str()) {
                continue;
            }
            let mut v = v.clone();
            v.as_object_mut().expect("object").remove(field);
            let bytes = bytes_of(&v);
            let e = if full == "status" {
                Status::decode(&bytes).map(|_| ())
            } else {
                Heartbeat::decode(&bytes).map(|_| ())
            };
            assert_eq!(
                e.expect_err(field).to_string(),
                format!("field {field:?}: missing")
            );
        }
    }
}

#[test]
fn wrong_types() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "id",
            json!(5),
            "field \"id\": expected a string, got a number 5",
        ),
        (
            "id",
            Value::Null,
            "field \"id\": expected a string, got null",
        ),
        (
            "created_ms",
            json!(-1),
            "field \"created_ms\": expected a whole number 0..=18446744073709551615, got a number -1",
        ),
        ("created_ms", json!(1.5), "got a number 1.5"),
        ("created_ms", json!(1.0), "got a number 1.0"),
        ("created_ms", json!("5"), "got a string \"5\""),
        ("ttl_ms", json!(1e3), "got a number 1000.0"),
        (
            "args",
            json!([1]),
            "field \"args\": expected an object, got an array [1]",
        ),
        (
            "args",
            json!("{}"),
            "field \"args\": expected an object, got a string \"{}\"",
        ),
        (
            "filter",
            json!(true),
            "field \"filter\": expected a string or null, got a boolean true",
        ),
        (
            "sig",
            json!({"a": 1}),
            "field \"sig\": expected a string or null, got an object {\"a\":1}",
        ),
    ];
    for (field, value, message) in cases {
        let bytes = request_json(|m| {
            m.insert(field.into(), value.clone());
        });
        let e = Request::decode(&bytes).expect_err(field).to_string();
        assert!(e.contains(message), "{field}={value}: {e}");
    }
    let too_big = br#"{"v":1,"kind":"heartbeat","id":"a","name":"a","seq":18446744073709551616,"uptime_s":0,"created_ms":0}"#;
    assert!(Heartbeat::decode(too_big).is_err());
    let mut s = json_of(&status().encode());
    s["online"] = json!("yes");
    assert_eq!(
        Status::decode(&bytes_of(&s))
            .expect_err("online")
            .to_string(),
        "field \"online\": expected true or false, got a string \"yes\""
    );
    let mut s = json_of(&status().encode());
    s["tags"] = json!(["a", 5]);
    assert_eq!(
        Status::decode(&bytes_of(&s)).expect_err("tags").to_string(),
        "field \"tags\": entry 1: expected a string, got a number 5"
    );
    s["tags"] = json!("a");
    assert!(Status::decode(&bytes_of(&s)).is_err());
    let mut p = json_of(&reply().encode());
    p["status"] = json!("done");
    assert_eq!(
        Reply::decode(&bytes_of(&p))
            .expect_err("status")
            .to_string(),
        "field \"status\": \"done\" is not one of ok, error, timeout, rejected"
    );
}

#[test]
fn error_values_are_cut_to_60_characters() {
    let bytes = request_json(|m| {
        m.insert("action".into(), json!("X".repeat(500)));
    });
    let e = Request::decode(&bytes).expect_err("bad action").to_string();
    assert!(e.contains(&format!("\"{}…\"", "X".repeat(60))), "{e}");
    assert!(!e.contains(&"X".repeat(61)));
    let bytes = request_json(|m| {
        m.insert("args".into(), json!(vec!["y"; 500]));
    });
    let e = Request::decode(&bytes).expect_err("bad args").to_string();
    assert!(e.len() < 150, "{e}");
}

#[test]
fn reply_status_names() {
    for (s, name) in ReplyStatus::ALL
        .into_iter()
        .zip(["ok", "error", "timeout", "rejected"])
    {
        assert_eq!(s.as_str(), name);
        assert_eq!(s.to_string(), name);
        assert_eq!(name.parse::<ReplyStatus>(), Ok(s));
        assert_eq!(serde_json::to_value(s).expect("json"), json!(name));
        assert_eq!(
            serde_json::from_value::<ReplyStatus>(json!(name)).expect("json"),
            s
        );
    }
    assert!("OK".parse::<ReplyStatus>().is_err());
}

#[test]
fn status_facts_are_sorted_on_the_wire() {
    let text = String::from_utf8(status().encode()).expect("utf-8");
    let keys = [
        "\"cpus\"",
        "\"hostname\"",
        "\"id\"",
        "\"memory\"",
        "\"name\"",
        "\"os\"",
    ];
    let facts_at = text.find("\"facts\"").expect("facts");
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| facts_at + text[facts_at..].find(k).expect("key"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn validate_matches_decode() {
    assert_eq!(request().validate(), Ok(()));
    assert_eq!(reply().validate(), Ok(()));
    assert_eq!(status().validate(), Ok(()));
    assert_eq!(heartbeat().validate(), Ok(()));
    let bad = Request {
        ttl_ms: 0,
        ..request()
    };
    let e = bad.validate().expect_err("ttl 0");
    assert_eq!(Request::decode(&bad.encode()), Err(e));
}

#[test]
fn status_and_heartbeat_carry_key_and_signature_outside_the_signing_bytes() {
    let s = Status {
        key: Some("ed25519:AAAA".into()),
        sig: Some("kid.sig".into()),
        ..status()
    };
    let back = Status::decode(&s.encode()).expect("decode");
    assert_eq!(back, s);
    let signed = json_of(&s.signing_bytes());
    assert_eq!(signed["key"], "ed25519:AAAA", "the key is signed");
    assert!(signed.get("sig").is_none(), "the signature is not");
    let h = Heartbeat {
        sig: Some("kid.sig".into()),
        ..heartbeat()
    };
    assert_eq!(Heartbeat::decode(&h.encode()).expect("decode"), h);
    assert!(json_of(&h.signing_bytes()).get("sig").is_none());
    // Limits: a key or signature with whitespace is refused, naming the field.
    let bad = Status {
        key: Some("ed25519: x".into()),
        ..status()
    };
    assert!(
        bad.validate()
            .expect_err("bad key")
            .to_string()
            .contains("key")
    );
}
