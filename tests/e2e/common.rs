//! Shared helpers: build the test guests once, run `weir`, compute expected word counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Guest crates the tests use, built to wasm32-wasip2 components.
const GUESTS: &[&str] = &["wordcount", "tokenize", "misbehave"];

/// Path of the component built from guest crate `name`; builds all test guests on first use.
/// Cargo's own up-to-date check makes later runs cheap.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target = root().join("target").join("wasm");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root())
            .args([
                "build",
                "--profile",
                "guest",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target);
        for g in GUESTS {
            cmd.args(["-p", g]);
        }
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
        ] {
            cmd.env_remove(var);
        }
        let out = cmd.output().expect("run cargo to build the test guests");
        assert!(
            out.status.success(),
            "building the test guests failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("wasm32-wasip2").join("guest")
    });
    assert!(GUESTS.contains(&name), "unknown test guest {name}");
    dir.join(format!("{name}.wasm"))
}

/// A `weir` command with a private component cache and quiet logs.
pub fn weir() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.env(
        "WEIR_CACHE_DIR",
        root().join("target").join("weir-test-cache"),
    );
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Run `weir args...`, returning the output (whatever the exit status).
pub fn run_weir(args: &[&str], cwd: &Path) -> Output {
    weir()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("spawn weir")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert that `weir` failed cleanly: exit code 1 (not a signal, not a panic) and `stderr`
/// holds every one of `needles`.
pub fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit code 1, got {:?}; stderr:\n{err}",
        o.status
    );
    assert!(!err.contains("panicked at"), "the host panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

/// Word counts by the operator's rule: maximal alphanumeric runs, lowercased.
pub fn count_words(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// The final count per word in `word\tcount` update lines; also checks every word's updates
/// count up 1, 2, 3... with none missing or repeated.
pub fn final_counts(updates: &str) -> BTreeMap<String, u64> {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for line in updates.lines() {
        let (word, count) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let count: u64 = count
            .parse()
            .unwrap_or_else(|_| panic!("bad count in {line:?}"));
        let prev = last.insert(word.to_owned(), count).unwrap_or(0);
        assert_eq!(
            count,
            prev + 1,
            "updates for {word:?} jump from {prev} to {count}"
        );
    }
    last
}

/// Deterministic text of `lines` lines over a small vocabulary (mixed case, punctuation).
pub fn sample_text(lines: usize, seed: u64) -> String {
    const WORDS: &[&str] = &[
        "River",
        "weir",
        "stream",
        "Water",
        "bends",
        "records",
        "count",
        "barrier",
        "state",
        "sled",
        "wasm",
        "COMPONENT",
        "host",
        "sink",
        "source",
        "operator",
        "crash",
        "exactly",
        "once",
        "émigré",
        "naïve",
        "x1",
        "42",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = String::new();
    for _ in 0..lines {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (x >> 60) as usize + 1;
        for j in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
            out.push_str(if j % 3 == 2 { ", " } else { " " });
        }
        out.push_str(".\n");
    }
    out
}

/// A scratch directory under target/, removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    let base = root().join("target").join("e2e-scratch");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::TempDir::new_in(base).unwrap()
}
