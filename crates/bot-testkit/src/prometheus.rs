//! A private Prometheus server per test, scraping one target: the stock
//! `prometheus` binary (Debian's package, 2.42) on a free loopback port, its
//! configuration and TSDB in a fresh temporary directory, killed and removed
//! on drop. It proves that a `/metrics` endpoint is read by a real
//! Prometheus (format, content type, bearer authorization), not just by our
//! own parser.
//!
//! The configuration names nothing beyond the target: no alertmanagers, no
//! remote write, no service discovery but the one static target; the web
//! listener binds 127.0.0.1 only. When the binary is missing,
//! [`Prometheus::start`] fails saying to install it (`scripts/test.sh`
//! does): a test of the metrics endpoint never passes without Prometheus.
//!
//! Prometheus applies its targets about 5 s after it starts (its scrape
//! manager batches discovery updates every 5 s): `/-/ready` answers before
//! the target is even listed, so wait for results ([`Prometheus::wait_for`]),
//! with a deadline of several seconds whatever the scrape interval.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;

use crate::{Lines, TempDir, WAIT, free_port, kill};

/// A private Prometheus scraping one target.
#[derive(Debug)]
pub struct Prometheus {
    port: u16,
    child: Child,
    /// Its log (stderr), for failure messages.
    stderr: Mutex<Lines>,
    http: ureq::Agent,
    /// The configuration and the TSDB; removed after the child is killed.
    _dir: TempDir,
}

impl Prometheus {
    /// Starts prometheus on a free loopback port with a config scraping
    /// `target` (`host:port`) at `metrics_path` every `interval`, sending
    /// `Authorization: Bearer <token>` when `bearer_token` is given; the
    /// scrape timeout is four fifths of the interval. Returns once its HTTP
    /// API answers `/-/ready`.
    pub fn start(
        target: &str,
        metrics_path: &str,
        bearer_token: Option<&str>,
        interval: Duration,
    ) -> Result<Prometheus> {
        let bin = find_bin()?;
        let interval_ms = interval.as_millis();
        ensure!(
            interval_ms >= 5,
            "scrape interval {interval:?} too short (at least 5ms)"
        );
        let dir = TempDir::new("prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            config_yaml(target, metrics_path, bearer_token, interval_ms),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            // Loopback only: never through an HTTP_PROXY of the environment.
            .proxy(None)
            .build()
            .into();
        // A free port can be taken between our check and prometheus's bind:
        // then try another.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            match spawn(&bin, &config, dir.path(), port, &http) {
                Ok((child, stderr)) => {
                    return Ok(Prometheus {
                        port,
                        child,
                        stderr: Mutex::new(stderr),
                        http,
                        _dir: dir,
                    });
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!("prometheus did not start:\n{}", failures.join("\n---\n"))
    }

    /// Its HTTP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs an instant PromQL query (`/api/v1/query`) and returns the
    /// `data.result` array.
    pub fn query(&self, promql: &str) -> Result<Value> {
        let data = self
            .api("/api/v1/query", &[("query", promql)])
            .with_context(|| format!("query {promql:?}"))?;
        data.get("result")
            .cloned()
            .ok_or_else(|| anyhow!("query {promql:?}: no data.result in {data}"))
    }

    /// Polls [`Prometheus::query`] until `pred` holds for its result, or
    /// fails after `timeout` naming the query and the last result.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(promql)?;
            if pred(&result) {
                return Ok(result);
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting on the query {promql:?}; \
                     last result: {result}\ntargets: {}\nprometheus log:\n{}",
                    self.targets()
                        .map_or_else(|e| format!("({e:#})"), |t| t.to_string()),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The scrape targets (`/api/v1/targets`): the `data.activeTargets`
    /// array; each has `health` (`up`, `down`, `unknown`), `lastError`,
    /// `scrapeUrl`, `labels`.
    pub fn targets(&self) -> Result<Value> {
        let data = self.api("/api/v1/targets", &[("state", "active")])?;
        data.get("activeTargets")
            .cloned()
            .ok_or_else(|| anyhow!("no data.activeTargets in {data}"))
    }

    /// The last lines prometheus logged (for failure messages).
    pub fn log_tail(&self) -> String {
        let mut lines = self
            .stderr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tail(&mut lines)
    }

    /// GET `path?params` of the HTTP API: the `data` of a `success` answer.
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut req = self.http.get(&url);
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        let mut resp = req.call().with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer of GET {url}"))?;
        let json: Value = serde_json::from_str(&body)
            .with_context(|| format!("GET {url}: HTTP {status}, not JSON: {body}"))?;
        if json.get("status").and_then(Value::as_str) != Some("success") {
            bail!("GET {url}: HTTP {status}: {body}");
        }
        json.get("data")
            .cloned()
            .ok_or_else(|| anyhow!("GET {url}: no data in {body}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// `/usr/bin/prometheus` (Debian's), else `prometheus` on PATH.
fn find_bin() -> Result<PathBuf> {
    let debian = Path::new("/usr/bin/prometheus");
    if debian.is_file() {
        return Ok(debian.to_owned());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "the prometheus binary is not installed: run `apt-get install prometheus` \
                 (scripts/test.sh installs it)"
            )
        })
}

/// The configuration: one job, one static target. Strings are written as
/// JSON strings, which YAML reads as double-quoted scalars.
fn config_yaml(
    target: &str,
    metrics_path: &str,
    bearer_token: Option<&str>,
    interval_ms: u128,
) -> String {
    let q = |s: &str| Value::from(s).to_string();
    let timeout_ms = (interval_ms * 4 / 5).max(1);
    let mut yaml = format!(
        "global:\n  \
           scrape_interval: {interval_ms}ms\n  \
           scrape_timeout: {timeout_ms}ms\n  \
           evaluation_interval: {interval_ms}ms\n\
         scrape_configs:\n  \
           - job_name: \"bot\"\n    \
             scheme: http\n    \
             metrics_path: {}\n    \
             static_configs:\n      \
               - targets: [{}]\n",
        q(metrics_path),
        q(target)
    );
    if let Some(token) = bearer_token {
        yaml.push_str(&format!(
            "    authorization:\n      type: Bearer\n      credentials: {}\n",
            q(token)
        ));
    }
    yaml
}

/// Starts prometheus on `port` and waits until `/-/ready` answers 200.
fn spawn(
    bin: &Path,
    config: &Path,
    dir: &Path,
    port: u16,
    http: &ureq::Agent,
) -> Result<(Child, Lines)> {
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        // Not derived from the host's name.
        .arg(format!("--web.external-url=http://{listen}/"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut stderr = match child.stderr.take() {
        Some(pipe) => Lines::from_pipe(pipe),
        None => {
            kill(&mut child);
            bail!("no stderr pipe");
        }
    };
    let ready_url = format!("http://{listen}/-/ready");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait()? {
            // Let the reader thread catch the last lines.
            while stderr.next(Duration::from_millis(200)).is_some() {}
            bail!(
                "prometheus on port {port} exited ({status}):\n{}",
                tail(&mut stderr)
            );
        }
        if let Ok(resp) = http.get(&ready_url).call()
            && resp.status() == 200
        {
            return Ok((child, stderr));
        }
        if Instant::now() > deadline {
            kill(&mut child);
            bail!(
                "prometheus on port {port} not ready after {WAIT:?}:\n{}",
                tail(&mut stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last 20 lines of `lines`, after taking in what has arrived.
fn tail(lines: &mut Lines) -> String {
    while lines.next(Duration::ZERO).is_some() {}
    let seen = &lines.seen;
    seen[seen.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    const TOKEN: &str = "s3cret-token";
    const BODY: &str =
        "# HELP demo_gauge A demo.\n# TYPE demo_gauge gauge\ndemo_gauge{agent=\"a1\"} 42\n";

    /// A tiny `/metrics` server on a free loopback port: every request
    /// with `Authorization: Bearer TOKEN` gets [`BODY`] in the text format,
    /// any other a 401. Returns its `host:port`.
    fn metrics_server() -> Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || {
                    let _ = serve(stream);
                });
            }
        });
        Ok(addr)
    }

    /// Answers the requests of one connection (a scraper keeps it alive).
    fn serve(stream: std::net::TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        loop {
            let mut authorized = false;
            let mut request_line = String::new();
            if reader.read_line(&mut request_line)? == 0 {
                return Ok(());
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                    && value.trim() == format!("Bearer {TOKEN}")
                {
                    authorized = true;
                }
            }
            let (status, ctype, body) = if authorized {
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8", BODY)
            } else {
                ("401 Unauthorized", "text/plain", "unauthorized\n")
            };
            write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            out.flush()?;
        }
    }

    /// Polls [`Prometheus::targets`] until the one target satisfies `pred`.
    fn wait_target(prom: &Prometheus, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let targets = prom.targets()?;
            if let Some(t) = targets.as_array().and_then(|a| a.first())
                && pred(t)
            {
                return Ok(t.clone());
            }
            ensure!(
                Instant::now() < deadline,
                "targets not as expected after {WAIT:?}: {targets}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn prometheus_scrapes_with_bearer_token() -> Result<()> {
        let target = metrics_server()?;
        let prom = Prometheus::start(&target, "/metrics", Some(TOKEN), Duration::from_secs(1))?;
        let result = prom.wait_for(r#"demo_gauge{agent="a1"}"#, WAIT, |r| {
            r.as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["value"][1].as_str() == Some("42"))
        })?;
        assert_eq!(result[0]["metric"]["instance"], target.as_str());
        let t = wait_target(&prom, |t| t["health"] == "up")?;
        assert_eq!(t["lastError"], "", "{t}");
        assert_eq!(t["scrapeUrl"], format!("http://{target}/metrics"));
        Ok(())
    }

    #[test]
    fn prometheus_wrong_token_is_down_with_401() -> Result<()> {
        let target = metrics_server()?;
        let prom = Prometheus::start(&target, "/metrics", Some("wrong"), Duration::from_secs(1))?;
        let t = wait_target(&prom, |t| t["health"] == "down")?;
        let err = t["lastError"].as_str().unwrap_or_default();
        assert!(err.contains("401"), "lastError: {t}");
        // Nothing was ingested.
        assert_eq!(prom.query("demo_gauge")?, serde_json::json!([]));
        assert_eq!(
            prom.query(r#"up{job="bot"}"#)?[0]["value"][1],
            "0",
            "up of a refused scrape"
        );
        Ok(())
    }

    #[test]
    fn prometheus_config_quotes_strings() {
        let y = config_yaml("127.0.0.1:1", "/m", Some("a\"b"), 1000);
        assert!(y.contains("scrape_timeout: 800ms"), "{y}");
        assert!(y.contains(r#"credentials: "a\"b""#), "{y}");
        assert!(y.contains(r#"- targets: ["127.0.0.1:1"]"#), "{y}");
    }
}
