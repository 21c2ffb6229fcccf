//! `bot task submit`: the flags, their checks, and the `NewTask` body they
//! build. Everything that can be checked without the server is checked here
//! (the filter parses, the thresholds are in range, exactly one way of
//! choosing targets), so a typo costs no round trip and names the bad value.

use std::collections::HashSet;

use bot_proto::api::NewTask;
use clap::{ArgGroup, Args};
use serde_json::json;

use super::client::ServerArgs;

/// `bot task submit` (its help text is on `TaskCommand::Submit`).
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("where")
        .args(["filter", "targets", "pool"])
        .required(true)
        .multiple(false)
))]
pub struct SubmitArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// With -F: leave out matching agents that are offline (by default they
    /// become LOST targets at once, so the task shows they did not run).
    #[arg(long, requires = "filter")]
    pub online_only: bool,
    /// Agents matching this filter when the task is submitted (e.g. 'os=linux and cpus>=4', 'web*', 'tag:db'); repeat to narrow (joined with `and`).
    #[arg(short = 'F', long)]
    pub filter: Vec<String>,
    /// These agents (ids or names), in rollout order: comma-separated, or repeat the flag.
    #[arg(short = 'T', long = "target", value_name = "ID", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Pull mode: any idle agents of this work-queue pool take the runs (with --count).
    #[arg(long, requires = "count", value_parser = pool_name)]
    pub pool: Option<String>,
    /// Pull mode: how many times to run the command in --pool.
    #[arg(long, value_name = "N", requires = "pool", value_parser = parse_count)]
    pub count: Option<u32>,
    /// Targets running at once, a sliding window (default: all).
    #[arg(long, value_name = "N", value_parser = parse_parallel)]
    pub parallel: Option<u32>,
    /// Once this many targets have failed, the task is FAILED and no further target starts: N ≥ 1, or -1 = never (the default).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_fail_count)]
    pub fail_count: Option<i64>,
    /// Once failures / targets exceed this fraction (0..=1), the task is FAILED and no further target starts; 1 = never (the default).
    #[arg(long, value_name = "F", value_parser = parse_fail_rate)]
    pub fail_rate: Option<f64>,
    /// Seconds each target may run before its process group is killed (default 60).
    #[arg(long, value_name = "S", value_parser = crate::positive_secs)]
    pub timeout: Option<f64>,
    /// Run the command with /bin/sh -c; give it as one argument: -- 'a | b'.
    #[arg(long)]
    pub shell: bool,
    /// Then watch the task until it ends, like `bot task watch`.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between polls with --watch.
    #[arg(long, value_name = "S", default_value_t = 0.5, value_parser = crate::positive_secs, requires = "watch")]
    pub interval: f64,
    /// Print the task as JSON (with --watch: the task once it has ended).
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments (after --).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn pool_name(s: &str) -> Result<String, String> {
    bot_proto::topics::valid_topic_level(s)
        .map(|()| s.to_owned())
        .map_err(|e| format!("pool {s:?}: {e}"))
}

/// The largest `--count`.
const MAX_COUNT: u32 = 100_000;

fn check_count(n: u32) -> Result<u32, String> {
    if (1..=MAX_COUNT).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be in 1..={MAX_COUNT}"))
    }
}

fn check_parallel(n: u32) -> Result<u32, String> {
    if n >= 1 {
        Ok(n)
    } else {
        Err("must be at least 1".to_owned())
    }
}

fn check_fail_count(n: i64) -> Result<i64, String> {
    if n >= 1 || n == -1 {
        Ok(n)
    } else {
        Err("must be 1 or more (the failures at which the task has failed; 1 = at the first) or -1 (never)".to_owned())
    }
}

fn check_fail_rate(f: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err("must be a fraction in 0..=1 (0.1 = 10%)".to_owned())
    }
}

fn whole<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

/// `--count`: 1..=100000.
pub fn parse_count(s: &str) -> Result<u32, String> {
    whole(s).and_then(check_count)
}

/// `--parallel`: at least 1.
pub fn parse_parallel(s: &str) -> Result<u32, String> {
    whole(s).and_then(check_parallel)
}

/// `--fail-count`: 1 or more, or -1.
pub fn parse_fail_count(s: &str) -> Result<i64, String> {
    whole(s).and_then(check_fail_count)
}

/// `--fail-rate`: a fraction in 0..=1.
pub fn parse_fail_rate(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("{s:?} is not a number"))
        .and_then(check_fail_rate)
}

/// Builds the body of `POST /api/tasks`, or says what is wrong with the flags.
pub fn new_task(a: &SubmitArgs) -> Result<NewTask, String> {
    let Some(first) = a.command.first() else {
        return Err(
            "no command: give it after --, e.g. bot task submit -F 'web*' -- uptime".into(),
        );
    };
    let args = if a.shell {
        if a.command.len() != 1 {
            return Err(format!(
                "--shell takes the command as one argument, not {} ({:?}): quote it, e.g. -- 'ls | wc -l'",
                a.command.len(),
                a.command
            ));
        }
        if first.trim().is_empty() {
            return Err("the --shell command is empty".into());
        }
        json!({ "shell": first })
    } else {
        if first.is_empty() {
            return Err("the command name is empty".into());
        }
        json!({ "command": a.command })
    };

    let forms = usize::from(!a.filter.is_empty())
        + usize::from(!a.targets.is_empty())
        + usize::from(a.pool.is_some());
    if forms == 0 {
        return Err("say where to run it: -F FILTER, -T ID,… or --pool P --count N".into());
    }
    if forms > 1 {
        return Err("give only one of -F/--filter, -T/--target and --pool".into());
    }
    for f in &a.filter {
        if f.trim().is_empty() {
            return Err("--filter is empty (every agent: -F '*')".into());
        }
        bot_proto::filter::parse(f).map_err(|e| format!("--filter {f:?}: {e}"))?;
    }
    let mut seen = HashSet::new();
    let mut targets = Vec::with_capacity(a.targets.len());
    for t in &a.targets {
        let t = t.trim();
        if t.is_empty() {
            return Err(format!(
                "--target has an empty id in {:?} (ids are separated by commas)",
                a.targets.join(",")
            ));
        }
        if !seen.insert(t) {
            return Err(format!("--target {t:?} is given twice"));
        }
        targets.push(t.to_owned());
    }
    match (&a.pool, a.count) {
        (Some(p), None) => return Err(format!("--pool {p:?} needs --count N (how many runs)")),
        (None, Some(n)) => return Err(format!("--count {n} needs --pool P")),
        (Some(p), Some(_)) => {
            pool_name(p)?;
        }
        (None, None) => {}
    }

    let flag =
        |name: &str, value: &dyn std::fmt::Display, e: String| format!("--{name} {value}: {e}");
    if let Some(n) = a.count {
        check_count(n).map_err(|e| flag("count", &n, e))?;
    }
    if let Some(n) = a.parallel {
        check_parallel(n).map_err(|e| flag("parallel", &n, e))?;
    }
    if let Some(n) = a.fail_count {
        check_fail_count(n).map_err(|e| flag("fail-count", &n, e))?;
    }
    if let Some(f) = a.fail_rate {
        check_fail_rate(f).map_err(|e| flag("fail-rate", &f, e))?;
    }
    if let Some(t) = a.timeout {
        crate::positive_secs(&t.to_string()).map_err(|e| flag("timeout", &t, e))?;
    }

    Ok(NewTask {
        action: "exec".to_owned(),
        args,
        targets,
        filter: crate::fleet::join_filters(&a.filter),
        pool: a.pool.clone(),
        count: a.count,
        timeout_s: a.timeout,
        parallel: a.parallel,
        fail_count: a.fail_count,
        fail_rate: a.fail_rate,
        online_only: a.online_only.then_some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        submit: SubmitArgs,
    }

    fn parse(argv: &[&str]) -> Result<SubmitArgs, clap::Error> {
        let mut all = vec!["submit"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).map(|c| c.submit)
    }

    fn build(argv: &[&str]) -> Result<NewTask, String> {
        let args = parse(argv).map_err(|e| e.to_string())?;
        new_task(&args)
    }

    #[test]
    fn builds_exec_tasks_from_flags() {
        let t = build(&["-F", "web*", "--", "uname", "-a"]).expect("filter task");
        assert_eq!(t.action, "exec");
        assert_eq!(t.args, json!({"command": ["uname", "-a"]}));
        assert_eq!(t.filter.as_deref(), Some("web*"));
        let t = build(&["-F", "web*", "-F", "os=linux or tag:x", "--", "true"]).expect("two");
        assert_eq!(
            t.filter.as_deref(),
            Some("(web*) and (os=linux or tag:x)"),
            "repeated -F are joined with and"
        );
        assert!(t.targets.is_empty() && t.pool.is_none() && t.count.is_none());
        assert_eq!(
            (t.parallel, t.fail_count, t.fail_rate, t.timeout_s),
            (None, None, None, None)
        );

        let t = build(&[
            "-T",
            "a,b",
            "--target",
            "c",
            "--parallel",
            "2",
            "--fail-count",
            "-1",
            "--fail-rate",
            "0.25",
            "--timeout",
            "5",
            "--shell",
            "--",
            "ls | wc -l",
        ])
        .expect("explicit targets");
        assert_eq!(t.targets, ["a", "b", "c"]);
        assert_eq!(t.args, json!({"shell": "ls | wc -l"}));
        assert_eq!(
            (t.parallel, t.fail_count, t.fail_rate, t.timeout_s),
            (Some(2), Some(-1), Some(0.25), Some(5.0))
        );

        let t = build(&["--pool", "builders", "--count", "3", "--", "make"]).expect("pool");
        assert_eq!((t.pool.as_deref(), t.count), (Some("builders"), Some(3)));

        // The body is what the server's NewTask accepts (deny_unknown_fields).
        let text = serde_json::to_string(&t).expect("encode");
        let back: NewTask = serde_json::from_str(&text).expect("decode");
        assert_eq!(back, t);
    }

    #[test]
    fn bad_values_are_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["-F", "x", "--parallel", "0", "--", "true"], "'0'"),
            (
                &["-F", "x", "--fail-count", "-2", "--", "true"],
                "1 or more",
            ),
            (&["-F", "x", "--fail-rate", "1.5", "--", "true"], "'1.5'"),
            (&["-F", "x", "--fail-rate", "NaN", "--", "true"], "fraction"),
            (
                &["-F", "x", "--fail-rate", "lots", "--", "true"],
                "\"lots\" is not a number",
            ),
            (&["-F", "x", "--timeout", "0", "--", "true"], "'0'"),
            (&["--pool", "p", "--count", "0", "--", "true"], "1..=100000"),
            (
                &["--pool", "a/b", "--count", "1", "--", "true"],
                "pool \"a/b\"",
            ),
            (&["-F", "x", "-T", "a", "--", "true"], "cannot be used with"),
            (
                &["-F", "x", "--pool", "p", "--count", "1", "--", "true"],
                "cannot be used with",
            ),
            (&["-F", "x", "--fail-count", "0", "--", "true"], "1 or more"),
            (&["--", "true"], "required"),
            (&["--pool", "p", "--", "true"], "--count"),
            (&["-F", "x"], "COMMAND"),
            (
                &["-F", "x", "--shell", "--", "ls", "-l"],
                "--shell takes the command as one argument, not 2",
            ),
            (&["-F", "os=", "--", "true"], "--filter \"os=\""),
            (&["-F", " ", "--", "true"], "--filter is empty"),
            (&["-T", "a,,b", "--", "true"], "empty id in \"a,,b\""),
            (
                &["-T", "a,b", "-T", "a", "--", "true"],
                "--target \"a\" is given twice",
            ),
            (&["-F", "x", "--", ""], "command name is empty"),
        ];
        for (argv, want) in cases {
            let e = build(argv).expect_err(&format!("{argv:?} must fail"));
            assert!(e.contains(want), "{argv:?}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_parallel(" 3"), Ok(3));
        assert!(parse_parallel("-1").is_err_and(|e| e.contains("\"-1\"")));
        assert_eq!(parse_fail_count("-1"), Ok(-1));
        assert_eq!(parse_fail_count("1"), Ok(1));
        assert!(parse_fail_count("0").is_err_and(|e| e.contains("1 or more")));
        assert!(parse_fail_count("-2").is_err());
        assert_eq!(parse_fail_rate("0"), Ok(0.0));
        assert_eq!(parse_fail_rate("1"), Ok(1.0));
        assert!(parse_fail_rate("-0.1").is_err());
        assert!(parse_fail_rate("inf").is_err());
        assert_eq!(parse_count("100000"), Ok(100_000));
        assert!(parse_count("100001").is_err());
    }

    #[test]
    fn checks_do_not_rely_on_clap_alone() {
        // A SubmitArgs made in code (not parsed) is checked the same way.
        let mut a = parse(&["-F", "x", "--", "true"]).expect("parse");
        a.parallel = Some(0);
        assert_eq!(new_task(&a), Err("--parallel 0: must be at least 1".into()));
        a.parallel = None;
        a.fail_rate = Some(2.0);
        assert!(new_task(&a).is_err_and(|e| e.starts_with("--fail-rate 2:")));
        a.fail_rate = None;
        a.targets = vec!["a".into()];
        assert!(new_task(&a).is_err_and(|e| e.contains("only one of")));
        a.filter.clear();
        a.targets.clear();
        assert!(new_task(&a).is_err_and(|e| e.contains("say where")));
    }
}
