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

/// Architecture invariant: the agent never links the broker, the server, the
/// database or the web stack.
#[test]
fn the_agent_does_not_depend_on_heavy_crates() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "bot-agent",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    for forbidden in [
        "bot-broker",
        "rmqtt",
        "axum",
        "hyper",
        "sqlx",
        "rusqlite",
        "tokio-postgres",
        "tungstenite",
    ] {
        assert!(
            !tree
                .lines()
                .any(|l| l.starts_with(&format!("{forbidden} "))),
            "bot-agent depends on {forbidden}"
        );
    }
    assert!(
        tree.lines().any(|l| l.starts_with("bot-bus ")),
        "tree looks wrong:\n{tree}"
    );
}
