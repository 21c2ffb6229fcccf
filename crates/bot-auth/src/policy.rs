//! What an agent lets each key do ([`Trust`], from the `[[trust]]` tables
//! of its config), and the checks every request passes before anything runs
//! ([`Trust::admit`]), cheapest first and the signature before anything that
//! costs:
//!
//! 1. the clock: not created more than [`MAX_FUTURE_MS`] in the future, not
//!    expired (`created_ms + ttl_ms` in the past);
//! 2. signed at all, and the `sig` field well-formed;
//! 3. the key is trusted;
//! 4. the action and its arguments are valid (typed);
//! 5. the Ed25519 signature over the request's canonical signing bytes
//!    (before the policy, so that a forger learns nothing of it);
//! 6. the key's policy: the action, the command line (globs), the agent
//!    itself matching the key's filter.
//!
//! Replays (the same id, or the same nonce under another id) are checked by
//! the caller after this, because remembering a request costs (a journal
//! write) and must only happen for a request that is genuine.

use std::collections::HashMap;

use bot_lang::glob::glob_match_with;
use bot_proto::filter::{self, Filter, Target};
use bot_proto::{Action, Request};
use serde::Deserialize;

use crate::keys::PublicKey;
use crate::sign::split_sig;

/// How far in the future a request's `created_ms` may be (30 s).
pub const MAX_FUTURE_MS: u64 = bot_proto::envelope::MAX_CLOCK_SKEW_MS;

/// One `[[trust]]` table of an agent's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustEntry {
    /// Who this key is (audit lines and logs name it).
    pub name: String,
    /// `ed25519:<base64>` (what `bot keys show` prints).
    pub key: String,
    /// The actions it may request; `["*"]` (the default): all.
    #[serde(default = "all")]
    pub actions: Vec<String>,
    /// Globs over an `exec` command line (argv joined by spaces, matched
    /// exactly: `*` any run of characters, `?` one). `["*"]` (the default):
    /// any command, and also `shell` and `script`, which no narrower list
    /// allows.
    #[serde(default = "all")]
    pub commands: Vec<String>,
    /// Only an agent matching this filter obeys this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

fn all() -> Vec<String> {
    vec!["*".to_owned()]
}

impl TrustEntry {
    /// A key allowed everything.
    pub fn full(name: impl Into<String>, key: &PublicKey) -> TrustEntry {
        TrustEntry {
            name: name.into(),
            key: key.to_string(),
            actions: all(),
            commands: all(),
            filter: None,
        }
    }
}

/// A trusted key with its policy, checked and parsed.
#[derive(Debug, Clone)]
pub struct Trusted {
    /// Its name.
    pub name: String,
    /// The key.
    pub key: PublicKey,
    actions: Vec<String>,
    commands: Vec<String>,
    filter: Option<Filter>,
}

impl Trusted {
    fn allows_action(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == "*" || a == action)
    }

    fn allows_any_command(&self) -> bool {
        self.commands.iter().any(|c| c == "*")
    }
}

/// The keys an agent trusts.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// By key id (base64url text): looked up without decompressing the
    /// claimed key.
    keys: HashMap<String, Trusted>,
}

/// Why a request is refused. Its `Display` goes back to the sender in the
/// reply; [`Rejection::code`] goes to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No `sig`.
    #[error("unsigned: this agent runs only requests signed by a trusted key")]
    Unsigned,
    /// `sig` malformed, or the signature does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// Signed by a key this agent does not trust.
    #[error("unknown key {0}: not in this agent's [[trust]] list")]
    UnknownKey(String),
    /// The action or its arguments are invalid.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The key's policy does not allow it.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// Too old.
    #[error("expired: created {age_ms} ms ago with a TTL of {ttl_ms} ms")]
    Expired {
        /// Age when received.
        age_ms: u64,
        /// Its TTL.
        ttl_ms: u64,
    },
    /// Dated too far in the future.
    #[error("dated {0} ms in the future (more than {MAX_FUTURE_MS} ms of clock skew)")]
    Future(u64),
    /// Seen before.
    #[error("replayed: {0}")]
    Replayed(String),
    /// The agent cannot take it now.
    #[error("busy: {0}")]
    Busy(String),
}

impl Rejection {
    /// A short stable word for logs and audit lines.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Unsigned => "unsigned",
            Rejection::BadSignature(_) => "bad_signature",
            Rejection::UnknownKey(_) => "unknown_key",
            Rejection::Malformed(_) => "malformed",
            Rejection::NotAllowed(_) => "not_allowed",
            Rejection::Expired { .. } => "expired",
            Rejection::Future(_) => "future",
            Rejection::Replayed(_) => "replayed",
            Rejection::Busy(_) => "busy",
        }
    }
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct Admitted<'a> {
    /// The key that signed it, with its policy.
    pub by: &'a Trusted,
    /// The typed action.
    pub action: Action,
}

impl Trust {
    /// The trust list from config entries; every problem is reported, each
    /// naming the entry.
    pub fn new(entries: &[TrustEntry]) -> Result<Trust, Vec<String>> {
        let mut keys = HashMap::new();
        let mut problems = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let at = format!("trust[{i}] ({:?})", e.name);
            if e.name.is_empty() || e.name.chars().any(char::is_control) || e.name.len() > 128 {
                problems.push(format!(
                    "{at}: name must be 1..=128 characters, no control characters"
                ));
            }
            let key = match e.key.parse::<PublicKey>() {
                Ok(k) => Some(k),
                Err(err) => {
                    problems.push(format!("{at}: key: {err}"));
                    None
                }
            };
            for a in &e.actions {
                if a != "*"
                    && a != bot_proto::action::CONFIGURE
                    && !bot_proto::action::NAMES.contains(&a.as_str())
                {
                    problems.push(format!(
                        "{at}: actions: unknown action {a:?} (known: *, {}, {})",
                        bot_proto::action::NAMES.join(", "),
                        bot_proto::action::CONFIGURE
                    ));
                }
            }
            if e.commands.iter().any(String::is_empty) {
                problems.push(format!("{at}: commands: an empty glob matches nothing"));
            }
            let f = match &e.filter {
                Some(text) => match filter::parse(text) {
                    Ok(f) => Some(f),
                    Err(err) => {
                        problems.push(format!("{at}: filter: {err}"));
                        None
                    }
                },
                None => None,
            };
            if let Some(key) = key {
                if keys.contains_key(&key.id()) {
                    problems.push(format!("{at}: key listed twice"));
                }
                keys.insert(
                    key.id(),
                    Trusted {
                        name: e.name.clone(),
                        key,
                        actions: e.actions.clone(),
                        commands: e.commands.clone(),
                        filter: f,
                    },
                );
            }
        }
        if problems.is_empty() {
            Ok(Trust { keys })
        } else {
            Err(problems)
        }
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted (then nothing runs).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key that claims to have signed `request`, if it is trusted
    /// (for naming it in audit lines of a refused request).
    pub fn claimed(&self, request: &Request) -> Option<&Trusted> {
        let (id, _) = split_sig(request.sig.as_deref()?).ok()?;
        self.keys.get(id)
    }

    /// The checks on a measuring config (not a request: no TTL, no
    /// replay; it is retained and the newest wins): signed, by a trusted
    /// key, the signature valid, the key trusted for `configure`, and
    /// addressed to this agent (`my_id`). Returns the key.
    pub fn admit_config(
        &self,
        config: &bot_proto::MeasureConfig,
        my_id: &str,
        now_ms: u64,
        me: &dyn Target,
    ) -> Result<&Trusted, Rejection> {
        let ahead = config.created_ms.saturating_sub(now_ms);
        if ahead > MAX_FUTURE_MS {
            return Err(Rejection::Future(ahead));
        }
        let sig = config.sig.as_deref().ok_or(Rejection::Unsigned)?;
        let (id, sig) = split_sig(sig).map_err(Rejection::BadSignature)?;
        let by = self
            .keys
            .get(id)
            .ok_or_else(|| Rejection::UnknownKey(id.chars().take(12).collect()))?;
        if !by.key.verify(&config.signing_bytes(), &sig) {
            return Err(Rejection::BadSignature(
                "the signature does not match the config (changed after signing, or forged)"
                    .to_owned(),
            ));
        }
        if !by.allows_action(bot_proto::action::CONFIGURE) {
            return Err(Rejection::NotAllowed(format!(
                "key {:?} may not configure (allowed: {})",
                by.name,
                by.actions.join(", ")
            )));
        }
        if config.id != my_id {
            return Err(Rejection::Malformed(format!(
                "the config is for agent {}, not this one",
                config.id.chars().take(40).collect::<String>()
            )));
        }
        if let Some(f) = &by.filter
            && !f.matches(me)
        {
            return Err(Rejection::NotAllowed(format!(
                "key {:?} may act only on agents matching {f}",
                by.name
            )));
        }
        Ok(by)
    }

    /// Every check of the module docs but replay, in that order. `me` is the
    /// agent as filters see it.
    pub fn admit(
        &self,
        request: &Request,
        now_ms: u64,
        me: &dyn Target,
    ) -> Result<Admitted<'_>, Rejection> {
        let ahead = request.created_ms.saturating_sub(now_ms);
        if ahead > MAX_FUTURE_MS {
            return Err(Rejection::Future(ahead));
        }
        if request.is_expired(now_ms) {
            return Err(Rejection::Expired {
                age_ms: now_ms.saturating_sub(request.created_ms),
                ttl_ms: request.ttl_ms,
            });
        }
        let sig = request.sig.as_deref().ok_or(Rejection::Unsigned)?;
        let (id, sig) = split_sig(sig).map_err(Rejection::BadSignature)?;
        let by = self
            .keys
            .get(id)
            .ok_or_else(|| Rejection::UnknownKey(id.chars().take(12).collect()))?;
        let action = request
            .typed_action()
            .map_err(|e| Rejection::Malformed(e.to_string()))?;
        if !by.key.verify(&request.signing_bytes(), &sig) {
            return Err(Rejection::BadSignature(
                "the signature does not match the request (changed after signing, or forged)"
                    .to_owned(),
            ));
        }
        if !by.allows_action(action.name()) {
            return Err(Rejection::NotAllowed(format!(
                "key {:?} may not request {} (allowed: {})",
                by.name,
                action.name(),
                by.actions.join(", ")
            )));
        }
        if let Action::Exec(exec) = &action
            && !by.allows_any_command()
        {
            let Some(line) = exec.command_line() else {
                return Err(Rejection::NotAllowed(format!(
                    "key {:?} may run only commands matching {:?}, not shell or script",
                    by.name, by.commands
                )));
            };
            if !by.commands.iter().any(|g| glob_match_with(g, &line, false)) {
                return Err(Rejection::NotAllowed(format!(
                    "key {:?} may not run \"{}\" (allowed: {:?})",
                    by.name,
                    line.chars().take(100).collect::<String>(),
                    by.commands
                )));
            }
        }
        if let Some(f) = &by.filter
            && !f.matches(me)
        {
            return Err(Rejection::NotAllowed(format!(
                "key {:?} may act only on agents matching {f}",
                by.name
            )));
        }
        Ok(Admitted { by, action })
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use crate::keys::SecretKey;
    use crate::sign::detached;

    struct Me(Vec<String>);
    impl Target for Me {
        fn fact(&self, _: &str) -> Option<&serde_json::Value> {
            None
        }
        fn has_tag(&self, tag: &str) -> bool {
            self.0.iter().any(|t| t == tag)
        }
        fn name(&self) -> &str {
            "me"
        }
    }

    fn config(id: &str) -> bot_proto::MeasureConfig {
        bot_proto::MeasureConfig {
            id: id.into(),
            revision: 1,
            enabled: true,
            interval_ms: 1_000,
            collectors: vec!["cpu".into()],
            created_ms: 1,
            sig: None,
        }
    }

    #[test]
    fn configs_need_a_key_trusted_to_configure() {
        let web = Me(vec!["web".into()]);
        let db = Me(vec!["db".into()]);
        let server = SecretKey::generate().expect("key");
        let ops = SecretKey::generate().expect("key");
        let stranger = SecretKey::generate().expect("key");
        let trust = Trust::new(&[
            TrustEntry::full("server", &server.public()),
            TrustEntry {
                actions: vec!["ping".into(), "exec".into()],
                ..TrustEntry::full("ops", &ops.public())
            },
        ])
        .expect("trust");
        let signed = |key: &SecretKey, id: &str| {
            let mut c = config(id);
            c.sig = Some(detached(key, &c.signing_bytes()));
            c
        };
        assert!(
            trust
                .admit_config(&signed(&server, "me"), "me", 1, &web)
                .is_ok()
        );
        assert_eq!(
            trust.admit_config(&config("me"), "me", 1, &web).err(),
            Some(Rejection::Unsigned)
        );
        let code = |r: Result<&Trusted, Rejection>| r.err().map(|e| e.code());
        assert_eq!(
            code(trust.admit_config(&signed(&stranger, "me"), "me", 1, &web)),
            Some("unknown_key")
        );
        assert_eq!(
            code(trust.admit_config(&signed(&ops, "me"), "me", 1, &web)),
            Some("not_allowed")
        );
        assert_eq!(
            code(trust.admit_config(&signed(&server, "other"), "me", 1, &web)),
            Some("malformed")
        );
        let mut tampered = signed(&server, "me");
        tampered.interval_ms = 100;
        assert_eq!(
            code(trust.admit_config(&tampered, "me", 1, &web)),
            Some("bad_signature")
        );
        // `configure` can be granted alone.
        let narrow = Trust::new(&[TrustEntry {
            actions: vec!["configure".into()],
            ..TrustEntry::full("cfg", &ops.public())
        }])
        .expect("trust");
        assert!(
            narrow
                .admit_config(&signed(&ops, "me"), "me", 1, &web)
                .is_ok()
        );
        // A key's filter holds for configs too.
        let web_only = Trust::new(&[TrustEntry {
            filter: Some("tag:web".into()),
            ..TrustEntry::full("cfg", &ops.public())
        }])
        .expect("trust");
        assert!(
            web_only
                .admit_config(&signed(&ops, "me"), "me", 1, &web)
                .is_ok()
        );
        assert_eq!(
            code(web_only.admit_config(&signed(&ops, "me"), "me", 1, &db)),
            Some("not_allowed")
        );
        // Dated beyond the clock skew: refused.
        let mut future = config("me");
        future.created_ms = 1_000_000;
        future.sig = Some(detached(&server, &future.signing_bytes()));
        assert_eq!(
            code(trust.admit_config(&future, "me", 1, &web)),
            Some("future")
        );
    }
}

#[cfg(test)]
mod tests {
    //! The signed-request rows of the attack table, at the unit level (the
    //! end-to-end tests repeat them against real agents and brokers).
    use super::*;
    use crate::keys::SecretKey;
    use crate::sign::{Signer, now_ms};
    use bot_proto::Draft;
    use bot_proto::action::{ExecArgs, PingArgs};
    use serde_json::{Value, json};

    struct Me(Value);
    impl Target for Me {
        fn fact(&self, key: &str) -> Option<&Value> {
            self.0.get(key)
        }
        fn has_tag(&self, _: &str) -> bool {
            false
        }
        fn name(&self) -> &str {
            "web1"
        }
    }

    fn me() -> Me {
        Me(json!({"role": "web"}))
    }

    fn draft(action: Action) -> Draft {
        Draft {
            action,
            filter: None,
            reply_to: "bot/v1/reply/s".into(),
            ttl_ms: 60_000,
        }
    }

    fn exec(argv: &[&str]) -> Action {
        Action::Exec(ExecArgs::command(
            argv.iter().map(|s| (*s).to_owned()).collect(),
        ))
    }

    fn setup(entry: impl Fn(&PublicKey) -> TrustEntry) -> (Signer, Trust) {
        let signer = Signer::new(SecretKey::generate().expect("key"), "op");
        let trust = Trust::new(&[entry(&signer.public())]).expect("trust");
        (signer, trust)
    }

    fn code(t: &Trust, r: &Request) -> &'static str {
        match t.admit(r, now_ms(), &me()) {
            Ok(_) => "admitted",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn a_full_key_is_admitted() {
        let (s, t) = setup(|k| TrustEntry::full("op", k));
        let r = s.request(draft(exec(&["id"])));
        let a = t.admit(&r, now_ms(), &me()).expect("admitted");
        assert_eq!(a.by.name, "op");
        assert_eq!(a.action.name(), "exec");
    }

    #[test]
    fn unsigned_forged_tampered_unknown() {
        let (s, t) = setup(|k| TrustEntry::full("op", k));
        let mut r = s.request(draft(exec(&["id"])));
        let mut unsigned = r.clone();
        unsigned.sig = None;
        assert_eq!(code(&t, &unsigned), "unsigned");
        // Forged: a signature of other bytes, claiming the trusted key.
        let mut forged = r.clone();
        let sig = r.sig.clone().expect("sig");
        let (kid, _) = sig.split_once('.').expect("dot");
        forged.sig = Some(format!("{kid}.{}", "A".repeat(86)));
        assert_eq!(code(&t, &forged), "bad_signature");
        // Tampered after signing.
        r.args = json!({"shell": "id > /tmp/x"});
        assert_eq!(code(&t, &r), "bad_signature");
        let mut filt = s.request(draft(Action::Ping(PingArgs {})));
        filt.filter = Some("*".into());
        assert_eq!(code(&t, &filt), "bad_signature");
        // Unknown key.
        let stranger = Signer::new(SecretKey::generate().expect("key"), "mallory");
        assert_eq!(
            code(&t, &stranger.request(draft(exec(&["id"])))),
            "unknown_key"
        );
    }

    #[test]
    fn policy_limits_actions_commands_and_agents() {
        let (s, t) = setup(|k| TrustEntry {
            actions: vec!["ping".into()],
            ..TrustEntry::full("pinger", k)
        });
        assert_eq!(
            code(&t, &s.request(draft(Action::Ping(PingArgs {})))),
            "admitted"
        );
        let e = t
            .admit(&s.request(draft(exec(&["id"]))), now_ms(), &me())
            .expect_err("exec refused");
        assert_eq!(e.code(), "not_allowed");
        assert!(e.to_string().contains("may not request exec"), "{e}");

        let (s, t) = setup(|k| TrustEntry {
            commands: vec!["systemctl restart *".into()],
            ..TrustEntry::full("restarter", k)
        });
        assert_eq!(
            code(
                &t,
                &s.request(draft(exec(&["systemctl", "restart", "nginx"])))
            ),
            "admitted"
        );
        assert_eq!(
            code(&t, &s.request(draft(exec(&["systemctl", "stop", "nginx"])))),
            "not_allowed"
        );
        assert_eq!(
            code(&t, &s.request(draft(exec(&["SYSTEMCTL", "restart", "x"])))),
            "not_allowed"
        );
        let shell = Action::Exec(ExecArgs::shell("systemctl restart x; id"));
        assert_eq!(code(&t, &s.request(draft(shell))), "not_allowed");

        let (s, t) = setup(|k| TrustEntry {
            filter: Some("role=db".into()),
            ..TrustEntry::full("dba", k)
        });
        assert_eq!(
            code(&t, &s.request(draft(Action::Ping(PingArgs {})))),
            "not_allowed"
        );
    }

    /// A key may be granted `check` without `exec` (a monitoring
    /// scheduler): checks are admitted, commands are not.
    #[test]
    fn check_can_be_granted_without_exec() {
        let (s, t) = setup(|k| TrustEntry {
            actions: vec!["check".into()],
            ..TrustEntry::full("monitor", k)
        });
        let check = Action::Check(bot_proto::action::CheckArgs {
            name: "load".into(),
        });
        assert_eq!(code(&t, &s.request(draft(check))), "admitted");
        assert_eq!(code(&t, &s.request(draft(exec(&["id"])))), "not_allowed");
        assert_eq!(
            code(&t, &s.request(draft(Action::Exec(ExecArgs::shell("id"))))),
            "not_allowed"
        );
    }

    #[test]
    fn clock_checks() {
        let (s, t) = setup(|k| TrustEntry::full("op", k));
        let now = now_ms();
        let old = s.request_at(draft(Action::Ping(PingArgs {})), "old".into(), now - 61_000);
        assert_eq!(code(&t, &old), "expired");
        let edge = s.request_at(
            draft(Action::Ping(PingArgs {})),
            "edge".into(),
            now + 20_000,
        );
        assert_eq!(code(&t, &edge), "admitted");
        let future = s.request_at(draft(Action::Ping(PingArgs {})), "fut".into(), now + 40_000);
        assert_eq!(code(&t, &future), "future");
    }

    #[test]
    fn malformed_arguments_are_refused_even_when_signed() {
        let (s, t) = setup(|k| TrustEntry::full("op", k));
        let mut r = s.request(draft(Action::Ping(PingArgs {})));
        r.args = json!({"unexpected": true});
        s.sign(&mut r);
        assert_eq!(code(&t, &r), "malformed");
    }

    #[test]
    fn config_problems_are_all_reported() {
        let e = Trust::new(&[TrustEntry {
            name: String::new(),
            key: "nope".into(),
            actions: vec!["reboot".into()],
            commands: vec![String::new()],
            filter: Some("os==linux".into()),
        }])
        .expect_err("bad");
        let text = e.join("\n");
        for want in ["name", "key", "reboot", "empty glob", "filter"] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }
}
