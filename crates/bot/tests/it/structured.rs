//! The structured protocol end to end: registration and presence, filters,
//! `bot run` with exit codes, output, timeouts and the no-reply list,
//! idempotency, TTL, malformed envelopes, work queues and async results.
//! Several real agent processes with different facts, on both brokers.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, ensure};
use bot_proto::envelope::{Reply, ReplyStatus, Request, Status};
use bot_testkit::{publish, run_bot};
use serde_json::{Value, json};

use crate::{Agent, Broker, BrokerKind, Sub, WAIT, bot, both_brokers};

both_brokers!(
    filters_select_exactly_the_right_agents,
    run_reports_exit_codes_output_timeouts_and_no_reply,
    requests_run_once_expire_and_malformed_ones_get_errors,
    a_restarted_agent_still_refuses_a_request_it_ran,
    presence_is_retained_and_offline_is_seen_at_once,
    a_busy_agent_answers_ping_and_refuses_execs_beyond_its_queue,
    a_huge_reply_is_cut_to_fit_and_nothing_else_is_lost,
    work_queue_and_async_results,
    offline_matches_are_listed_counted_and_fail_the_command,
    requests_are_not_lost_in_a_classic_flood,
    ctrl_c_during_run_cancels_the_remote_command,
    checks_run_debians_monitoring_plugins,
);

fn fleet(broker: &Broker) -> Result<Vec<Agent>> {
    let url = [broker.url()];
    Ok(vec![
        Agent::start(
            bot(),
            "web1",
            &url,
            "tags = [\"web\"]\n[facts]\nrole = \"web\"\nrack = 1\n",
        )?,
        Agent::start(
            bot(),
            "db1",
            &url,
            "tags = [\"db\"]\n[facts]\nrole = \"db\"\nrack = 2\n",
        )?,
        Agent::start(bot(), "web2", &url, "[facts]\nrole = \"web\"\nrack = 3\n")?,
    ])
}

fn json_of(out: &str) -> Result<Value> {
    serde_json::from_str(out).map_err(|e| anyhow::anyhow!("not JSON ({e}): {out}"))
}

fn names(v: &Value, key: &str) -> BTreeSet<String> {
    v[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn filters_select_exactly_the_right_agents(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let _agents = fleet(&broker)?;
    let url = broker.url();
    let cases: [(&str, &[&str]); 11] = [
        ("*", &["web1", "db1", "web2"]),
        ("role=web", &["web1", "web2"]),
        ("role!=web", &["db1"]),
        ("rack>=2", &["db1", "web2"]),
        ("rack<2", &["web1"]),
        ("tag:db", &["db1"]),
        ("not role=web", &["db1"]),
        ("(role=web and rack<3) or tag:db", &["web1", "db1"]),
        ("web*", &["web1", "web2"]),
        ("name=~^db", &["db1"]),
        (
            "os=linux and cpus>=1 and memory>0",
            &["web1", "db1", "web2"],
        ),
    ];
    for (filter, want) in cases {
        let (code, out, err) = run_bot(
            bot(),
            &["ping", "-b", &url, "-F", filter, "--json", "--wait", "20"],
        )?;
        assert_eq!(code, 0, "{filter}: {out} {err}");
        let v = json_of(&out)?;
        assert_eq!(names(&v, "replies"), set(want), "filter {filter}");
        assert_eq!(names(&v, "no_reply"), set(&[]), "filter {filter}");
    }
    // -F repeated (as Choria operators type it): joined with `and`, for
    // ping and run alike.
    let (code, out, err) = run_bot(
        bot(),
        &[
            "ping", "-b", &url, "-F", "role=web", "-F", "rack>=2", "--json", "--wait", "20",
        ],
    )?;
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(names(&json_of(&out)?, "replies"), set(&["web2"]));
    let (code, out, err) = run_bot(
        bot(),
        &[
            "run",
            "-b",
            &url,
            "-F",
            "web*",
            "-F",
            "not rack>=2",
            "--",
            "echo",
            "ran",
        ],
    )?;
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("web1") && !out.contains("web2") && !out.contains("db1"),
        "{out}"
    );
    // A filter matching nobody is an error, and so is a bad filter (pointing at the column).
    let (code, _, err) = run_bot(bot(), &["ping", "-b", &url, "-F", "role=mainframe"])?;
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run_bot(bot(), &["ping", "-b", &url, "-F", "role==web"])?;
    assert_eq!(code, 1);
    assert!(err.contains("column"), "{err}");
    // Facts table with counts.
    let (code, out, err) = run_bot(bot(), &["facts", "-b", &url, "role"])?;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("role:")
            && out
                .lines()
                .any(|l| l.trim_start().starts_with("web") && l.trim_end().ends_with('2')),
        "{out}"
    );
    Ok(())
}

fn run_reports_exit_codes_output_timeouts_and_no_reply(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let agents = fleet(&broker)?;
    let url = broker.url();

    // Output and exit codes, per node; the summary; exit code 1 on failure.
    let (code, out, err) = run_bot(
        bot(),
        &[
            "run",
            "-b",
            &url,
            "-F",
            "role=web",
            "--shell",
            "--",
            "echo out-$((40+2)); echo oops >&2; exit 3",
        ],
    )?;
    assert_eq!(code, 1, "{out} {err}");
    assert_eq!(out.matches("out-42").count(), 2, "{out}");
    assert!(out.contains("stderr: oops"), "{out}");
    assert!(
        out.contains("summary: 0 ok, 2 failed, 0 no reply (of 2 expected)"),
        "{out}"
    );
    assert!(
        out.contains("web1 [exit 3]") && out.contains("web2 [exit 3]"),
        "{out}"
    );

    // --json shape.
    let (code, out, _) = run_bot(bot(), &["run", "-b", &url, "--json", "--", "echo", "a;b"])?;
    assert_eq!(code, 0, "{out}");
    let v = json_of(&out)?;
    assert_eq!(
        v["summary"],
        json!({"ok": 3, "failed": 0, "no_reply": 0, "offline": 0})
    );
    for r in v["replies"].as_array().into_iter().flatten() {
        assert_eq!(r["stdout"], "a;b\n", "argv is not a shell");
        assert_eq!(r["exit_code"], 0);
        for key in [
            "id",
            "name",
            "status",
            "exit_code",
            "stdout",
            "stderr",
            "error",
            "duration_ms",
        ] {
            assert!(r.get(key).is_some(), "reply lacks {key}: {r}");
        }
    }

    // Timeouts.
    let (code, out, _) = run_bot(
        bot(),
        &[
            "run",
            "-b",
            &url,
            "-F",
            "db1",
            "--timeout",
            "0.5",
            "--json",
            "--",
            "sleep",
            "30",
        ],
    )?;
    assert_eq!(code, 1);
    let v = json_of(&out)?;
    assert_eq!(v["replies"][0]["status"], "timeout", "{v}");

    // A frozen agent (still connected, so still "online") is listed as not replying.
    agents[1].signal("STOP")?;
    let (code, out, err) = run_bot(bot(), &["run", "-b", &url, "--timeout", "1", "--", "true"])?;
    agents[1].signal("CONT")?;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("summary: 2 ok, 0 failed, 1 no reply (of 3 expected)"),
        "{out}"
    );
    assert!(err.contains("no reply from 1 agent: db1 ("), "{err}");

    // --batch: all run, a few at a time.
    let (code, out, _) = run_bot(
        bot(),
        &["run", "-b", &url, "--batch", "1", "--json", "--", "true"],
    )?;
    assert_eq!(code, 0, "{out}");
    assert_eq!(json_of(&out)?["summary"]["ok"], 3);
    Ok(())
}

fn request(action: &str, args: Value, reply_to: &str) -> Request {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut r = Request {
        id: format!("test{}", now % 1_000_000_000),
        sender: "tester@test".into(),
        created_ms: now,
        nonce: format!("{:016x}", fastrand_u64()),
        ttl_ms: 60_000,
        filter: None,
        action: action.into(),
        args,
        reply_to: reply_to.into(),
        sig: None,
    };
    bot_testkit::operator_signer().sign(&mut r);
    r
}

/// A unique-enough number for nonces (no extra dependency).
fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn next_reply(sub: &mut Sub, timeout: Duration) -> Option<Reply> {
    let (_, payload) = sub.next(timeout)?;
    Reply::decode(payload.as_bytes()).ok()
}

fn requests_run_once_expire_and_malformed_ones_get_errors(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let mut agent = Agent::start(bot(), "solo", &[broker.url()], "")?;
    let id = agent.id()?;
    let topic = bot_proto::topics::request_agent_topic(&id);
    let mut sub = Sub::start(broker.port, &["test/replies"])?;
    let dir = bot_testkit::TempDir::new("once");
    let marker = dir.path().join("ran");

    // The same request delivered twice runs once.
    let req = request(
        "exec",
        json!({"shell": format!("echo x >> {}", marker.display())}),
        "test/replies",
    );
    publish(broker.port, &topic, &req.encode())?;
    publish(broker.port, &topic, &req.encode())?;
    let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("no reply"))?;
    assert_eq!(
        (r.request_id.as_str(), r.status),
        (req.id.as_str(), ReplyStatus::Ok)
    );
    agent
        .log
        .wait_for("the duplicate log line", WAIT, |l| l.contains("duplicate"))?;
    assert!(
        next_reply(&mut sub, Duration::from_millis(500)).is_none(),
        "a second reply came"
    );
    assert_eq!(
        std::fs::read_to_string(&marker)?,
        "x\n",
        "ran more than once"
    );

    // An expired request is not run.
    let mut old = request(
        "exec",
        json!({"shell": format!("echo late >> {}", marker.display())}),
        "test/replies",
    );
    old.id = "expired1".into();
    old.created_ms -= 120_000;
    old.ttl_ms = 1_000;
    bot_testkit::operator_signer().sign(&mut old);
    publish(broker.port, &topic, &old.encode())?;
    agent.log.wait_for("the expiry log line", WAIT, |l| {
        l.contains("expired") && l.contains("expired1")
    })?;
    let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("no expiry reply"))?;
    assert_eq!(
        (r.request_id.as_str(), r.status),
        ("expired1", ReplyStatus::Rejected)
    );
    assert!(
        r.error.as_deref().unwrap_or("").starts_with("expired"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&marker)?,
        "x\n",
        "an expired request ran"
    );

    // Malformed and oversized envelopes get error replies naming the problem.
    publish(
        broker.port,
        &topic,
        br#"{"v":1,"kind":"request","id":"bad1","reply_to":"test/replies","action":5}"#,
    )?;
    let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("no error reply"))?;
    assert_eq!(
        (r.request_id.as_str(), r.status),
        ("bad1", ReplyStatus::Rejected)
    );
    assert!(
        r.error.as_deref().unwrap_or("").contains("malformed"),
        "{r:?}"
    );
    let big = format!(
        r#"{{"v":1,"kind":"request","id":"big1","reply_to":"test/replies","pad":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    publish(broker.port, &topic, big.as_bytes())?;
    let r = next_reply(&mut sub, WAIT)
        .ok_or_else(|| anyhow::anyhow!("no error reply for the big one"))?;
    assert_eq!(r.request_id, "big1");
    assert!(r.error.as_deref().unwrap_or("").contains("262144"), "{r:?}");
    publish(broker.port, &topic, &[0xff, 0x00, 0x12])?;
    // Still alive and answering.
    let ping = request("ping", json!({}), "test/replies");
    publish(broker.port, &topic, &ping.encode())?;
    let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("no ping reply"))?;
    assert_eq!(
        (r.request_id, r.status, r.data),
        (ping.id, ReplyStatus::Ok, json!({"pong": true}))
    );
    assert!(agent.is_running());
    Ok(())
}

fn presence_is_retained_and_offline_is_seen_at_once(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let mut agent = Agent::start(
        bot(),
        "mortal",
        &[broker.url()],
        "keep_alive = 2\ntags = [\"t1\"]\n[facts]\nrole = \"cache\"\n",
    )?;
    let id = agent.id()?;
    let status_topic = bot_proto::topics::status_topic(&id);
    // A late subscriber gets the retained status with the facts.
    let mut sub = Sub::start(broker.port, &[&status_topic])?;
    let (_, payload) = sub
        .next(WAIT)
        .ok_or_else(|| anyhow::anyhow!("no retained status"))?;
    let s = Status::decode(payload.as_bytes())?;
    ensure!(s.online && s.name == "mortal" && s.id == id, "{s:?}");
    assert_eq!(s.facts["role"], "cache");
    assert_eq!(s.tags, ["t1"]);
    assert!(
        s.facts.contains_key("kernel")
            && s.facts.contains_key("cpus")
            && s.facts.contains_key("ips")
    );
    // Killed without a goodbye: the broker publishes the retained last will.
    agent.signal("KILL")?;
    agent.wait_exit()?;
    let (_, payload) = sub
        .next(WAIT)
        .ok_or_else(|| anyhow::anyhow!("no offline status"))?;
    let s = Status::decode(payload.as_bytes())?;
    ensure!(!s.online && s.id == id, "{s:?}");
    // `bot inventory` shows it offline.
    let (code, out, err) = run_bot(bot(), &["inventory", "-b", &broker.url(), "mortal"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("state:     offline"), "{out}");
    Ok(())
}

fn work_queue_and_async_results(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let url = broker.url();
    let _workers: Vec<Agent> = (0..3)
        .map(|i| {
            Agent::start(
                bot(),
                &format!("worker{i}"),
                std::slice::from_ref(&url),
                "pools = [\"builders\"]\n",
            )
        })
        .collect::<Result<_>>()?;
    let (code, out, err) = run_bot(
        bot(),
        &[
            "run", "-b", &url, "--any", "2", "--pool", "builders", "--json", "--", "echo", "job",
        ],
    )?;
    assert_eq!(code, 0, "{out} {err}");
    let v = json_of(&out)?;
    assert_eq!(v["summary"]["ok"], 2, "{v}");

    // Fire and forget: replies go to a topic that `bot results` consumes later,
    // from a persistent session that queued them meanwhile.
    let (code, _, err) = run_bot(
        bot(),
        &[
            "results",
            "-b",
            &url,
            "--session",
            "later",
            "--topic",
            "app/results",
            "-W",
            "0.2",
        ],
    )?;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_bot(
        bot(),
        &[
            "run",
            "-b",
            &url,
            "-F",
            "worker1",
            "--reply-to",
            "app/results",
            "--",
            "echo",
            "async",
        ],
    )?;
    assert_eq!(code, 0, "{err}");
    let request_id = out.trim().to_owned();
    assert_eq!(request_id.len(), 32, "{out}");
    let (code, out, err) = run_bot(
        bot(),
        &[
            "results",
            "-b",
            &url,
            "--session",
            "later",
            "--topic",
            "app/results",
            "-C",
            "1",
            "-W",
            "20",
            "--json",
        ],
    )?;
    assert_eq!(code, 0, "{err}");
    let v = json_of(out.trim())?;
    assert_eq!(v["request_id"], request_id.as_str());
    assert_eq!(v["name"], "worker1");
    assert_eq!(v["data"]["stdout"], "async\n");
    Ok(())
}

/// The duplicate check survives an agent restart (the request journal in the
/// state directory): a request resent after the restart is not run again.
fn a_restarted_agent_still_refuses_a_request_it_ran(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let dir = bot_testkit::TempDir::new("journal");
    let state = format!(
        "state_dir = {:?}\n",
        dir.path().join("state").display().to_string()
    );
    let marker = dir.path().join("ran");
    let mut agent = Agent::start(bot(), "solo", &[broker.url()], &state)?;
    let id = std::fs::read_to_string(dir.path().join("state").join("agent-id"))?;
    let topic = bot_proto::topics::request_agent_topic(id.trim());
    let mut sub = Sub::start(broker.port, &["test/replies"])?;
    let req = request(
        "exec",
        json!({"shell": format!("echo x >> {}", marker.display())}),
        "test/replies",
    );
    publish(broker.port, &topic, &req.encode())?;
    let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("no reply"))?;
    ensure!(r.status == ReplyStatus::Ok, "{r:?}");
    agent.terminate()?;

    let mut again = Agent::start(bot(), "solo", &[broker.url()], &state)?;
    publish(broker.port, &topic, &req.encode())?;
    again
        .log
        .wait_for("the duplicate log line", WAIT, |l| l.contains("duplicate"))?;
    ensure!(
        next_reply(&mut sub, Duration::from_millis(300)).is_none(),
        "the restarted agent answered again"
    );
    ensure!(std::fs::read_to_string(&marker)? == "x\n", "ran twice");
    Ok(())
}

/// Issue 12, item 6: `exec` requests wait for a slot in a bounded queue
/// (beyond it: `busy` with the queue length), and `ping` never waits behind
/// them.
fn a_busy_agent_answers_ping_and_refuses_execs_beyond_its_queue(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let agent = Agent::start(
        bot(),
        "busy",
        &[broker.url()],
        "max_concurrent_requests = 1\nmax_queued_requests = 1\n",
    )?;
    let topic = bot_proto::topics::request_agent_topic(&agent.id()?);
    let mut sub = Sub::start(broker.port, &["test/busy"])?;
    let mut reqs = Vec::new();
    for n in 0..3 {
        let mut r = request("exec", json!({"shell": "sleep 3"}), "test/busy");
        r.id = format!("busy{n}-{}", r.id);
        bot_testkit::operator_signer().sign(&mut r);
        publish(broker.port, &topic, &r.encode())?;
        reqs.push(r);
    }
    // The third finds one running and one waiting: refused at once.
    let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("no busy reply"))?;
    ensure!(
        r.request_id == reqs[2].id && r.status == ReplyStatus::Rejected,
        "{r:?}"
    );
    ensure!(
        r.error
            .as_deref()
            .is_some_and(|e| e.starts_with("busy: 1 requests already wait")),
        "{r:?}"
    );
    // A ping is answered while the exec slot is taken.
    let mut ping = request("ping", json!({}), "test/busy");
    ping.id = format!("ping-{}", ping.id);
    bot_testkit::operator_signer().sign(&mut ping);
    let sent = std::time::Instant::now();
    publish(broker.port, &topic, &ping.encode())?;
    let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("no pong"))?;
    ensure!(
        r.request_id == ping.id && r.status == ReplyStatus::Ok,
        "{r:?}"
    );
    ensure!(
        sent.elapsed() < Duration::from_secs(2),
        "the ping waited behind the execs ({:?})",
        sent.elapsed()
    );
    // The two accepted execs both end ok.
    let mut done = BTreeSet::new();
    while done.len() < 2 {
        let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("an exec never ended"))?;
        ensure!(r.status == ReplyStatus::Ok, "{r:?}");
        done.insert(r.request_id);
    }
    ensure!(done == BTreeSet::from([reqs[0].id.clone(), reqs[1].id.clone()]));
    Ok(())
}

/// Issue 12, item 3: 2 MB of NUL bytes with a 1 MiB output limit used to be
/// a 6.3 MB reply (NUL is `\u0000` in JSON): the broker refused it, the
/// agent's connection dropped, and an unrelated running command ended LOST.
/// Now the reply is cut to fit (the tail kept, `truncated` set), and the
/// other command's reply arrives too.
fn a_huge_reply_is_cut_to_fit_and_nothing_else_is_lost(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let agent = Agent::start(bot(), "big", &[broker.url()], "")?;
    let topic = bot_proto::topics::request_agent_topic(&agent.id()?);
    let mut sub = Sub::start(broker.port, &["test/big"])?;
    let mut sleeper = request(
        "exec",
        json!({"shell": "sleep 2; echo still-here"}),
        "test/big",
    );
    sleeper.id = format!("sleeper-{}", sleeper.id);
    bot_testkit::operator_signer().sign(&mut sleeper);
    publish(broker.port, &topic, &sleeper.encode())?;
    let mut big = request(
        "exec",
        json!({"shell": "head -c 2000000 /dev/zero", "output_limit": 1_048_576}),
        "test/big",
    );
    big.id = format!("big-{}", big.id);
    bot_testkit::operator_signer().sign(&mut big);
    publish(broker.port, &topic, &big.encode())?;
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 2 {
        let r = next_reply(&mut sub, WAIT)
            .ok_or_else(|| anyhow::anyhow!("replies missing: got {:?}", got.keys()))?;
        got.insert(r.request_id.clone(), r);
    }
    let b = &got[&big.id];
    ensure!(b.status == ReplyStatus::Ok, "{:?}", b.error);
    ensure!(b.data["truncated"] == true, "not marked truncated");
    ensure!(
        b.data["stdout_bytes"] == 2_000_000,
        "{}",
        b.data["stdout_bytes"]
    );
    let kept = b.data["stdout"].as_str().map_or(0, str::len);
    ensure!(
        kept > 10_000 && kept < 1_048_576,
        "kept {kept} bytes of the tail"
    );
    let s = &got[&sleeper.id];
    ensure!(
        s.status == ReplyStatus::Ok && s.data["stdout"] == "still-here\n",
        "the other command: {s:?}"
    );
    Ok(())
}

/// Issue 9 item 2: matching agents that are known but offline are named
/// and counted, and the command exits 1, unless --online.
fn offline_matches_are_listed_counted_and_fail_the_command(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let mut agents = fleet(&broker)?;
    let url = broker.url();
    // web2 and db1 stop cleanly: known, offline.
    for i in [2, 1] {
        let status = agents[i].terminate()?;
        assert!(status.success(), "{status}");
    }
    let (code, out, err) = run_bot(bot(), &["run", "-b", &url, "-F", "role=web", "--", "true"])?;
    assert_eq!(code, 1, "an offline match did not run: {out} {err}");
    assert!(
        out.contains("summary: 1 ok, 0 failed, 0 no reply, 1 offline (of 2 matching)"),
        "{out}"
    );
    assert!(
        // With its age: "(last status just now)", "(last status 5s ago)".
        err.contains("offline, not run: 1 agent: web2")
            && (err.contains("(last status just now)") || err.contains("s ago)")),
        "{err}"
    );
    let (code, out, err) = run_bot(
        bot(),
        &[
            "run", "-b", &url, "-F", "role=web", "--online", "--", "true",
        ],
    )?;
    assert_eq!(code, 0, "--online: {out} {err}");
    assert!(
        out.contains("summary: 1 ok, 0 failed, 0 no reply (of 1 expected)"),
        "{out}"
    );
    // Every match offline: named as such, not "no known agent".
    let (code, out, err) = run_bot(bot(), &["ping", "-b", &url, "-F", "role=db"])?;
    assert_eq!(code, 1, "{out} {err}");
    assert!(
        err.contains("offline, not run: 1 agent: db1") && !err.contains("no known agent"),
        "{err}"
    );
    let (code, out, err) = run_bot(bot(), &["ping", "-b", &url, "--json", "-F", "role=web"])?;
    assert_eq!(code, 1, "{out} {err}");
    let v = json_of(&out)?;
    assert_eq!(names(&v, "replies"), set(&["web1"]));
    assert_eq!(names(&v, "offline"), set(&["web2"]));
    let (code, _, err) = run_bot(bot(), &["facts", "-b", &url, "role"])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("db1") && err.contains("web2"), "{err}");
    let (code, _, err) = run_bot(bot(), &["facts", "-b", &url, "--online", "role"])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

/// Issue 12, item 5: a flood of classic programs (QoS 0) filled the agent's
/// incoming queue and structured requests (QoS 1) that the broker had
/// delivered were dropped without a word. Classic programs now have their
/// own bounded queue and task: the excess of them is shed (and logged), and
/// every request of ten sent during the flood is answered.
fn requests_are_not_lost_in_a_classic_flood(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let mut agent = Agent::start(bot(), "flooded", &[broker.url()], "")?;
    let topic = bot_proto::topics::request_agent_topic(&agent.id()?);
    let mut sub = Sub::start(broker.port, &["test/flood"])?;
    // Programs that take the interpreter a while (33 KB of arithmetic),
    // many more than any queue on the way holds.
    let program = "1: 1: ADD DROP ".repeat(2_200);
    let lines: Vec<String> = (0..2_500).map(|_| program.clone()).collect();
    let port = broker.port;
    let flood = std::thread::spawn(move || bot_testkit::publish_lines(port, "BUS/flooded", &lines));
    // Requests interleaved with the flood.
    let mut ids = BTreeSet::new();
    for n in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        let mut r = request("ping", json!({}), "test/flood");
        r.id = format!("flood{n}-{}", r.id);
        r.ttl_ms = 120_000;
        bot_testkit::operator_signer().sign(&mut r);
        publish(broker.port, &topic, &r.encode())?;
        ids.insert(r.id);
    }
    flood
        .join()
        .map_err(|_| anyhow::anyhow!("the flood thread panicked"))??;
    let mut answered = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while answered.len() < ids.len() && std::time::Instant::now() < deadline {
        if let Some(r) = next_reply(&mut sub, Duration::from_secs(5)) {
            ensure!(r.status == ReplyStatus::Ok, "{r:?}");
            answered.insert(r.request_id);
        }
    }
    ensure!(
        answered == ids,
        "{} of {} requests answered during the flood",
        answered.len(),
        ids.len()
    );
    // The classic channel itself still works after the flood.
    let mut res = Sub::start(broker.port, &["RES"])?;
    publish(broker.port, "BUS/flooded", b"PING")?;
    res.wait_for("PONG after the flood", WAIT, |t, p| {
        t == "RES" && p == "'flooded':PONG"
    })?;
    ensure!(agent.is_running());
    Ok(())
}

/// Issue 12: the first Ctrl-C during `bot run` tells the agents to cancel
/// what still runs and prints how it ended (exit 130); the remote command
/// is gone.
fn ctrl_c_during_run_cancels_the_remote_command(kind: BrokerKind) -> Result<()> {
    use std::process::{Command, Stdio};
    let broker = Broker::start(kind, bot())?;
    let _agent = Agent::start(bot(), "runner", &[broker.url()], "")?;
    // An argument no other test uses, to find the remote process by.
    let secs = match kind {
        BrokerKind::Embedded => "31.71",
        BrokerKind::Mosquitto => "31.72",
    };
    let running = || {
        Command::new("pgrep")
            // Anchored: `bot run … sleep SECS` itself must not match.
            .args(["-f", &format!("^sleep {secs}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut run = bot_testkit::bot_command(bot())
        .args(["run", "-b", &broker.url(), "--", "sleep", secs])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + WAIT;
    while !running() {
        ensure!(
            std::time::Instant::now() < deadline,
            "the remote sleep never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = bot_testkit::interrupt(&mut run, WAIT, "bot run")?;
    let out = run.wait_with_output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    ensure!(status.code() == Some(130), "{status:?}\n{stdout}\n{stderr}");
    ensure!(stderr.contains("interrupted: cancelling"), "{stderr}");
    ensure!(
        stdout.contains("runner") && stdout.contains("summary:"),
        "{stdout}"
    );
    let deadline = std::time::Instant::now() + WAIT;
    while running() {
        ensure!(
            std::time::Instant::now() < deadline,
            "the remote sleep still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The `check` action with Debian's monitoring plugins, unchanged: states
/// by exit code, the first line and the performance data apart, a timeout
/// UNKNOWN with its reason, and only configured names run.
fn checks_run_debians_monitoring_plugins(kind: BrokerKind) -> Result<()> {
    let plugins = "/usr/lib/nagios/plugins";
    anyhow::ensure!(
        std::path::Path::new(&format!("{plugins}/check_load")).exists(),
        "{plugins}/check_load is missing: run scripts/test.sh (apt-get install monitoring-plugins-basic)"
    );
    let broker = Broker::start(kind, bot())?;
    let toml = format!(
        "[checks.load]\ncommand = [\"{plugins}/check_load\", \"-w\", \"1000,1000,1000\", \"-c\", \"2000,2000,2000\"]\n\
         [checks.root]\ncommand = [\"{plugins}/check_disk\", \"-w\", \"0%\", \"-c\", \"0%\", \"-p\", \"/\"]\n\
         [checks.warn]\ncommand = [\"{plugins}/check_dummy\", \"1\", \"something odd\"]\n\
         [checks.crit]\ncommand = [\"{plugins}/check_dummy\", \"2\", \"it is down\"]\n\
         [checks.slow]\ncommand = [\"/bin/sleep\", \"10\"]\ntimeout = 0.5\n"
    );
    let agent = Agent::start(bot(), "checked", &[broker.url()], &toml)?;
    let topic = bot_proto::topics::request_agent_topic(&agent.id()?);
    let mut sub = Sub::start(broker.port, &["test/checks"])?;
    let check = |name: &str, sub: &mut Sub| -> Result<Value> {
        let req = request("check", json!({ "name": name }), "test/checks");
        publish(broker.port, &topic, &req.encode())?;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let r =
                next_reply(sub, WAIT).ok_or_else(|| anyhow::anyhow!("no reply to check {name}"))?;
            if r.request_id == req.id {
                anyhow::ensure!(r.status == ReplyStatus::Ok, "check {name}: {r:?}");
                return Ok(r.data);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "no reply to check {name}"
            );
        }
    };
    let load = check("load", &mut sub)?;
    assert_eq!(load["state"], "OK", "{load}");
    assert!(
        load["output"]
            .as_str()
            .is_some_and(|o| o.contains("load average")),
        "{load}"
    );
    let (perf, bad) = bot_proto::nagios::parse_perfdata(load["perfdata"].as_str().unwrap_or(""));
    assert_eq!(bad, 0, "{load}");
    assert!(perf.iter().any(|p| p.label == "load1"), "{load}");
    let samples = bot_proto::nagios::perf_samples("load", &perf);
    assert!(
        samples
            .iter()
            .all(|s| s.validate().is_ok() && s.metric == "check.load")
    );
    let root = check("root", &mut sub)?;
    assert_eq!(root["state"], "OK", "{root}");
    assert!(
        root["perfdata"].as_str().is_some_and(|p| p.contains("/=")),
        "{root}"
    );
    let warn = check("warn", &mut sub)?;
    assert_eq!(
        (warn["state"].as_str(), warn["code"].as_u64()),
        (Some("WARNING"), Some(1))
    );
    assert!(
        warn["output"]
            .as_str()
            .is_some_and(|o| o.contains("something odd")),
        "{warn}"
    );
    assert_eq!(check("crit", &mut sub)?["state"], "CRITICAL");
    let slow = check("slow", &mut sub)?;
    assert_eq!(
        (slow["state"].as_str(), slow["reason"].as_str()),
        (Some("UNKNOWN"), Some("timed out"))
    );
    // A name that is not configured runs nothing.
    let req = request("check", json!({"name": "rm-everything"}), "test/checks");
    publish(broker.port, &topic, &req.encode())?;
    let r = next_reply(&mut sub, WAIT).ok_or_else(|| anyhow::anyhow!("no reply"))?;
    assert_eq!(r.status, ReplyStatus::Error, "{r:?}");
    assert!(r.error.unwrap_or_default().contains("no check named"));
    // The same from the CLI: one line per agent, the counts, and the exit code.
    let (code, out, err) = run_bot(bot(), &["check", "-b", &broker.url(), "load"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("checked") && out.contains("OK") && out.contains("load average"),
        "{out}"
    );
    assert!(
        out.contains("check load: 1 OK, 0 WARNING, 0 CRITICAL, 0 UNKNOWN of 1 expected"),
        "{out}"
    );
    let (code, out, err) = run_bot(
        bot(),
        &["check", "-b", &broker.url(), "-F", "checked", "warn"],
    )?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("WARNING") && out.contains("something odd"),
        "{out}"
    );
    let (code, _, err) = run_bot(bot(), &["check", "-b", &broker.url(), "bad name!"])?;
    assert_eq!(code, 2, "{err}");
    Ok(())
}
