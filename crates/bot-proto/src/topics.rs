//! The MQTT topics of the structured protocol, all under [`PREFIX`], and the
//! checks that keep ids, names, tags and reply destinations safe to put in a
//! topic.
//!
//! | topic | publisher | payload | notes |
//! |---|---|---|---|
//! | `bot/v1/status/<id>` | agent | [`Status`](crate::Status) | retained; the last will is the same status with `online: false` |
//! | `bot/v1/heartbeat/<id>` | agent | [`Heartbeat`](crate::Heartbeat) | not retained |
//! | `bot/v1/config/<id>` | server | [`MeasureConfig`](crate::MeasureConfig) | retained: the measuring settings the agent should run with |
//! | `bot/v1/metrics/<id>` | agent | [`Metrics`](crate::Metrics) | not retained, QoS 0: one message per measuring round |
//! | `bot/v1/req/all` | requester | [`Request`](crate::Request) | every agent receives it and evaluates the filter |
//! | `bot/v1/req/agent/<id>` | requester | [`Request`](crate::Request) | addressed to one agent |
//! | `bot/v1/req/pool/<pool>` | requester | [`Request`](crate::Request) | a work queue: agents of the pool share `$share/<pool>/…` |
//! | `bot/v1/reply/<session>` | agent | [`Reply`](crate::Reply) | the usual `reply_to`; any other valid topic outside `bot/v1/` works too |
//!
//! The builders below do not validate their argument: callers pass ids that
//! were checked with [`valid_topic_level`] (every decoded envelope's ids are).

/// Every structured topic starts with this (the protocol version is in it).
pub const PREFIX: &str = "bot/v1";

/// Subscribes to every agent's status.
pub const STATUS_WILDCARD: &str = "bot/v1/status/+";

/// Subscribes to every agent's heartbeat.
pub const HEARTBEAT_WILDCARD: &str = "bot/v1/heartbeat/+";

/// Subscribes to every agent's samples.
pub const METRICS_WILDCARD: &str = "bot/v1/metrics/+";

/// Requests for every agent; each one evaluates the request's filter.
pub const REQUEST_BROADCAST: &str = "bot/v1/req/all";

/// Longest topic level, in bytes (ids, names, tags, pools, sessions).
pub const MAX_TOPIC_LEVEL_BYTES: usize = 128;

/// Longest topic a message may be published to, in bytes.
pub const MAX_PUBLISH_TOPIC_BYTES: usize = 512;

/// The retained status of one agent (its last will is an offline status).
pub fn status_topic(agent_id: &str) -> String {
    format!("{PREFIX}/status/{agent_id}")
}

/// The heartbeats of one agent.
pub fn heartbeat_topic(agent_id: &str) -> String {
    format!("{PREFIX}/heartbeat/{agent_id}")
}

/// The retained measuring settings the server wants one agent to run with.
pub fn config_topic(agent_id: &str) -> String {
    format!("{PREFIX}/config/{agent_id}")
}

/// The samples of one agent, a batch per measuring round.
pub fn metrics_topic(agent_id: &str) -> String {
    format!("{PREFIX}/metrics/{agent_id}")
}

/// Requests addressed to one agent.
pub fn request_agent_topic(agent_id: &str) -> String {
    format!("{PREFIX}/req/agent/{agent_id}")
}

/// The work queue of a pool: publish here, and exactly one agent of the pool
/// (subscribed with [`pool_share_filter`]) takes each request.
pub fn request_pool_topic(pool: &str) -> String {
    format!("{PREFIX}/req/pool/{pool}")
}

/// The shared-subscription filter an agent of `pool` subscribes to (MQTT 5,
/// and most 3.1.1 brokers as an extension); the share group is the pool name.
pub fn pool_share_filter(pool: &str) -> String {
    format!("$share/{pool}/{PREFIX}/req/pool/{pool}")
}

/// Where replies of one requesting session go (the usual `reply_to`).
pub fn reply_topic(session: &str) -> String {
    format!("{PREFIX}/reply/{session}")
}

/// Where replies of one session go when they must not be lost: agents
/// publish to it at QoS 1 (to [`reply_topic`] at QoS 0), so a consumer with
/// a persistent session gets the replies sent while it was away. The server's
/// task engine uses it.
pub fn durable_reply_topic(session: &str) -> String {
    format!("{PREFIX}/reply/{session}/durable")
}

/// Where scheduled checks' results go by default: a durable reply topic
/// (QoS 1), read by the server (a persistent session) and by `bot bridge
/// nagios` (its own persistent session, or a share group of several).
pub const CHECK_RESULTS: &str = "bot/v1/reply/checks/durable";

/// Whether replies to `reply_to` go at QoS 1: every destination except the
/// interactive `bot/v1/reply/<session>` topics.
pub fn reply_wants_qos1(reply_to: &str) -> bool {
    match reply_to.strip_prefix(&reply_topic("")) {
        Some(rest) => rest.ends_with("/durable"),
        None => true,
    }
}

/// Task events (`bot/v1/event/task/<task id>`), published by the server at
/// every transition of a task or a target.
pub fn task_event_topic(task_id: &str) -> String {
    format!("{PREFIX}/event/task/{task_id}")
}

/// Checks one topic level (an agent id or name, a tag, a pool, a session):
/// 1..=128 bytes, no `/`, `+`, `#`, NUL, whitespace or other control
/// characters. The error says what is wrong, quoting at most 60 characters.
pub fn valid_topic_level(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.len() > MAX_TOPIC_LEVEL_BYTES {
        return Err(format!(
            "{} is {} bytes, longer than {MAX_TOPIC_LEVEL_BYTES}",
            quote(s),
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| matches!(c, '/' | '+' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{} contains {c:?} (not allowed in a topic level)",
            quote(s)
        ));
    }
    Ok(())
}

/// Checks a topic to publish to: 1..=512 bytes, no wildcard (`+`, `#`), no
/// NUL or other control characters, not starting with `$` (brokers reserve
/// `$SYS/…`; `$share/…` is a subscription filter, not a topic).
pub fn valid_publish_topic(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.len() > MAX_PUBLISH_TOPIC_BYTES {
        return Err(format!(
            "{} is {} bytes, longer than {MAX_PUBLISH_TOPIC_BYTES}",
            quote(s),
            s.len()
        ));
    }
    if s.starts_with('$') {
        return Err(format!(
            "{} starts with `$` (reserved by brokers)",
            quote(s)
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| matches!(c, '+' | '#') || c.is_control())
    {
        return Err(format!(
            "{} contains {c:?} (not allowed in a topic name)",
            quote(s)
        ));
    }
    Ok(())
}

/// Checks a request's `reply_to`: a valid publish topic that, inside
/// [`PREFIX`], is under `bot/v1/reply/`. Agents publish replies there, so a
/// request must not be able to point them at the request, status or
/// heartbeat topics of the fleet.
pub fn valid_reply_topic(s: &str) -> Result<(), String> {
    valid_publish_topic(s)?;
    let in_prefix = s
        .strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if in_prefix && !s.starts_with(&format!("{PREFIX}/reply/")) {
        return Err(format!(
            "{} is inside {PREFIX}/ but not under {PREFIX}/reply/",
            quote(s)
        ));
    }
    Ok(())
}

/// `s` quoted and cut for an error message (at most 60 characters of it).
pub(crate) fn quote(s: &str) -> String {
    crate::envelope::show(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders() {
        assert_eq!(status_topic("a1"), "bot/v1/status/a1");
        assert_eq!(heartbeat_topic("a1"), "bot/v1/heartbeat/a1");
        assert_eq!(request_agent_topic("a1"), "bot/v1/req/agent/a1");
        assert_eq!(request_pool_topic("build"), "bot/v1/req/pool/build");
        assert_eq!(durable_reply_topic("s1"), "bot/v1/reply/s1/durable");
        assert!(!reply_wants_qos1(&reply_topic("s1")));
        assert!(reply_wants_qos1(&durable_reply_topic("s1")));
        assert!(reply_wants_qos1(CHECK_RESULTS));
        assert!(valid_reply_topic(CHECK_RESULTS).is_ok());
        assert!(reply_wants_qos1("results/ops"));
        assert!(valid_reply_topic(&durable_reply_topic("s1")).is_ok());
        assert_eq!(task_event_topic("t1"), "bot/v1/event/task/t1");
        assert_eq!(
            pool_share_filter("build"),
            "$share/build/bot/v1/req/pool/build"
        );
        assert_eq!(reply_topic("s-9"), "bot/v1/reply/s-9");
        assert!(status_topic("x").starts_with(PREFIX));
        assert_eq!(STATUS_WILDCARD, format!("{}/status/+", PREFIX));
        assert_eq!(HEARTBEAT_WILDCARD, format!("{}/heartbeat/+", PREFIX));
        assert_eq!(REQUEST_BROADCAST, format!("{}/req/all", PREFIX));
    }

    #[test]
    fn topic_levels() {
        for ok in ["a", "web-01", "Ünïcode", "a.b:c=d", &"x".repeat(128)] {
            assert_eq!(valid_topic_level(ok), Ok(()), "{ok}");
        }
        let long = "x".repeat(129);
        for bad in [
            "", "a/b", "a+", "#", "a\0b", "a b", "a\tb", "a\nb", "\u{7f}", &long,
        ] {
            assert!(valid_topic_level(bad).is_err(), "{bad:?}");
        }
        // 43 three-byte characters = 129 bytes.
        assert!(valid_topic_level(&"€".repeat(43)).is_err());
        assert!(valid_topic_level(&"€".repeat(42)).is_ok());
        let e = valid_topic_level("a/b").expect_err("a slash");
        assert!(e.contains("\"a/b\"") && e.contains("'/'"), "{e}");
    }

    #[test]
    fn publish_topics() {
        for ok in [
            "a",
            "bot/v1/reply/x",
            "results/nagios",
            "a b",
            "/x/",
            &"x".repeat(512),
        ] {
            assert_eq!(valid_publish_topic(ok), Ok(()), "{ok}");
        }
        let long = "x".repeat(513);
        for bad in [
            "",
            "a/+/b",
            "a/#",
            "a\0",
            "a\nb",
            "$SYS/x",
            "$share/g/t",
            &long,
        ] {
            assert!(valid_publish_topic(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reply_topics() {
        for ok in [
            "bot/v1/reply/s1",
            "bot/v1/reply/s1/more",
            "results",
            "bot/v10/x",
            "bot/v1x",
        ] {
            assert_eq!(valid_reply_topic(ok), Ok(()), "{ok}");
        }
        for bad in [
            "bot/v1",
            "bot/v1/",
            "bot/v1/req/all",
            "bot/v1/status/a",
            "bot/v1/heartbeat/a",
            "bot/v1/reply",
            "a/#",
        ] {
            assert!(valid_reply_topic(bad).is_err(), "{bad:?}");
        }
    }
}
