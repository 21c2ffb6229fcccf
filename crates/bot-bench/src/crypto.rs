//! `bot-sim crypto`: what signing costs per message, measured on this
//! machine: making and signing a request (`Signer::request`), admitting it
//! on the agent (`Trust::admit`: clock, key lookup, typed arguments,
//! Ed25519 verification, policy), signing a reply, and checking a reply
//! (`sign::check`, what the CLI and the server do per reply). Each figure is
//! the median over `--runs` runs of `--n` operations, in microseconds per
//! operation.

use std::process::ExitCode;
use std::time::Instant;

use bot_auth::{SecretKey, Signer, Trust, TrustEntry};
use bot_proto::action::ExecArgs;
use bot_proto::{Action, Draft, Reply, ReplyStatus};
use clap::Args;
use serde_json::json;

/// Options of `bot-sim crypto`.
#[derive(Debug, Clone, Args)]
pub struct CryptoArgs {
    /// Operations per run.
    #[arg(long, default_value_t = 10_000)]
    n: u32,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

struct Me;
impl bot_proto::filter::Target for Me {
    fn fact(&self, _: &str) -> Option<&serde_json::Value> {
        None
    }
    fn has_tag(&self, _: &str) -> bool {
        false
    }
    fn name(&self) -> &str {
        "bench"
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median µs per call of `f`, over `runs` runs of `n` calls.
fn time(n: u32, runs: usize, mut f: impl FnMut()) -> f64 {
    let per_run: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1))
        })
        .collect();
    median(per_run)
}

/// Runs `bot-sim crypto`.
pub fn run(args: CryptoArgs) -> anyhow::Result<ExitCode> {
    let signer = Signer::new(SecretKey::generate()?, "bench@host");
    let trust = Trust::new(&[TrustEntry {
        commands: vec!["/bin/true *".into(), "systemctl restart *".into()],
        ..TrustEntry::full("bench", &signer.public())
    }])
    .map_err(|e| anyhow::anyhow!("{}", e.join("; ")))?;
    let draft = || Draft {
        action: Action::Exec(ExecArgs::command(vec![
            "systemctl".into(),
            "restart".into(),
            "nginx".into(),
        ])),
        filter: Some("role=web and os=linux".into()),
        reply_to: "bot/v1/reply/bench".into(),
        ttl_ms: 60_000,
    };
    let sample = signer.request(draft());
    let bytes = sample.encode().len();
    let sign_request = time(args.n, args.runs, || {
        std::hint::black_box(signer.request(draft()));
    });
    let now = bot_auth::now_ms();
    let admit = time(args.n, args.runs, || {
        let ok = trust.admit(&sample, now, &Me).is_ok();
        assert!(ok, "the sample request is admitted");
    });
    let agent_key = SecretKey::generate()?;
    let mut reply = Reply {
        request_id: sample.id.clone(),
        agent_id: "9eaa4552-9c92-4938-a4f6-fd3031b10590".into(),
        agent_name: "web1".into(),
        sender: "9eaa4552-9c92-4938-a4f6-fd3031b10590".into(),
        created_ms: now,
        nonce: bot_auth::sign::nonce(),
        status: ReplyStatus::Ok,
        data: json!({"exit_code": 0, "stdout": "", "stderr": "", "duration_ms": 3}),
        error: None,
        received_ms: now,
        duration_ms: 3,
        sig: None,
    };
    let sign_reply = time(args.n, args.runs, || {
        reply.sig = Some(bot_auth::sign::detached(&agent_key, &reply.signing_bytes()));
    });
    let public = agent_key.public();
    let check_reply = time(args.n, args.runs, || {
        let ok =
            bot_auth::sign::check(reply.sig.as_deref(), &reply.signing_bytes(), &public).is_ok();
        assert!(ok, "the reply checks out");
    });
    println!("request: {bytes} bytes encoded (exec, filter, reply topic)");
    println!("make and sign a request: {sign_request:.1} µs");
    println!("admit a request on the agent (all checks, one Ed25519 verify): {admit:.1} µs");
    println!("sign a reply: {sign_reply:.1} µs");
    println!("check a reply's signature (CLI, server): {check_reply:.1} µs");
    println!(
        "=> 10,000 replies checked on one core: {:.2} s",
        check_reply * 10_000.0 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}
