//! Repository invariants that are cheap to check and easy to break: every
//! source file says why it exists, and the agent stays small.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_comment() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! comment:\n{}",
        missing.join("\n")
    );
}

/// The normal dependencies of `package` (with `extra` cargo tree flags), one
/// `name version` per line.
fn tree(package: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .args(extra)
        .current_dir(workspace_root())
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const HEAVY: [&str; 10] = [
    "bot-broker",
    "bot-server",
    "bot-store",
    "rmqtt",
    "axum",
    "hyper",
    "sqlx",
    "rusqlite",
    "tokio-postgres",
    "tungstenite",
];

fn assert_light(what: &str, tree: &str) {
    for forbidden in HEAVY {
        assert!(
            !tree
                .lines()
                .any(|l| l.starts_with(&format!("{forbidden} "))),
            "{what} depends on {forbidden}"
        );
    }
    assert!(
        tree.lines().any(|l| l.starts_with("bot-bus ")),
        "tree looks wrong:\n{tree}"
    );
}

/// Architecture invariant: the agent never links the broker, the server, the
/// database or the web stack — neither the agent crate nor the fleet build
/// of `bot` (`--no-default-features`: agent + CLI).
#[test]
fn the_agent_does_not_depend_on_heavy_crates() {
    assert_light("bot-agent", &tree("bot-agent", &[]));
    assert_light(
        "bot --no-default-features",
        &tree("bot", &["--no-default-features"]),
    );
    // And the check can fail: the full build does link them.
    let full = tree("bot", &[]);
    assert!(full.lines().any(|l| l.starts_with("sqlx ")), "{full}");
    assert!(full.lines().any(|l| l.starts_with("axum ")), "{full}");
}
