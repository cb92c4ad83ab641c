//! A job's identity and its state directory: one run at a time, one pipeline file per state
//! directory, savepoints of other jobs refused, a lost store never silently starts over.

use crate::common::*;
use std::path::Path;

/// sequence (`count` numbers) → exactly-once file sink `out/<output>`.
fn numbers_pipeline(name: &str, count: u64, output: &str, checkpoint: &str) -> String {
    format!(
        r#"
[pipeline]
name = "{name}"

[checkpoint]
{checkpoint}

[node.src]
kind = "source"
plugin = "sequence"
config = {{ count = {count} }}

[node.out]
kind = "sink"
plugin = "file"
input = "src"
config = {{ path = "/out/{output}" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#
    )
}

fn numbers(count: u64) -> String {
    (0..count).map(|i| format!("{i}\n")).collect()
}

fn prepare(dir: &Path) {
    std::fs::create_dir_all(dir.join("out")).unwrap();
}

#[test]
fn two_pipeline_files_with_one_name_never_share_state() {
    let dir = scratch();
    let d = dir.path();
    prepare(d);
    std::fs::write(d.join("p.toml"), numbers_pipeline("same", 100, "p.txt", "")).unwrap();
    std::fs::write(d.join("q.toml"), numbers_pipeline("same", 50, "q.txt", "")).unwrap();
    std::fs::write(d.join("out/q.txt"), "q's earlier output\n").unwrap();
    let o = run_weir(&["run", "p.toml"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_weir(&["run", "q.toml"], d);
    assert_clean_failure(
        &o,
        &[
            "belongs to pipeline file \"p.toml\"",
            "not to \"q.toml\"",
            "[pipeline] name",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out/q.txt")).unwrap(),
        "q's earlier output\n",
        "q's output was touched"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out/p.txt")).unwrap(),
        numbers(100)
    );
}

#[test]
fn a_second_run_of_one_pipeline_is_refused_with_checkpoints_off() {
    let dir = scratch();
    let d = dir.path();
    prepare(d);
    std::fs::write(
        d.join("p.toml"),
        numbers_pipeline("p", 100_000_000, "p.txt", "enabled = false"),
    )
    .unwrap();
    let mut first = spawn_weir(&["run", "p.toml"], d, 0);
    // The first run holds the lock once its state directory has one and it is running.
    while !d.join(".weir/p/job.json").exists() {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = run_weir(&["run", "p.toml"], d);
    let _ = first.kill();
    let _ = first.wait();
    assert_clean_failure(&o, &["another `weir run` of this pipeline holds"]);
}

/// Two different pipelines (own names, own state) on one output file: the second is refused
/// before it writes a byte, checkpoints on or off; once the first ends, the output is free.
#[test]
fn two_jobs_never_write_one_output_at_once() {
    let dir = scratch();
    let d = dir.path();
    prepare(d);
    std::fs::write(
        d.join("p.toml"),
        numbers_pipeline("p", 100_000_000, "shared.txt", "enabled = false"),
    )
    .unwrap();
    std::fs::write(
        d.join("q.toml"),
        numbers_pipeline("q", 10, "shared.txt", ""),
    )
    .unwrap();
    let mut first = spawn_weir(&["run", "p.toml"], d, 0);
    // The first run holds its output's lock before its sink writes anything.
    while !d.join("out/shared.txt.inprogress").exists() {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = run_weir(&["run", "q.toml"], d);
    assert_clean_failure(
        &o,
        &[
            "node `out` writes",
            "shared.txt",
            "another weir run is writing",
        ],
    );
    let _ = first.kill();
    let _ = first.wait();
    let o = run_weir(&["run", "q.toml"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.join("out/shared.txt")).unwrap(),
        numbers(10)
    );
    assert!(
        !d.join("out/.shared.txt.weir-lock").exists(),
        "a run that ended left its lock file"
    );
}

#[test]
fn a_savepoint_of_another_job_is_refused_unless_taken_on_purpose() {
    let dir = scratch();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        prepare(d);
    }
    // Job b: stopped with a savepoint mid-stream.
    std::fs::write(
        b.join("p.toml"),
        numbers_pipeline("b", 20_000_000, "n.txt", "interval = \"100ms\""),
    )
    .unwrap();
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], &b, 0);
    wait_for_a_checkpoint(&mut child, &b, 0);
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    let out = std::fs::read_to_string(b.join("attempt-0.out")).unwrap();
    let savepoint = out
        .lines()
        .find_map(|l| {
            l.split_once(": ")
                .filter(|(k, _)| k.starts_with("savepoint"))
        })
        .map(|(_, p)| p.to_owned())
        .unwrap_or_else(|| panic!("no savepoint printed:\n{out}"));

    // Job a, same node names: refused, whether or not it ran before.
    std::fs::write(a.join("p.toml"), numbers_pipeline("a", 1000, "n.txt", "")).unwrap();
    let o = run_weir(&["run", "--from-savepoint", &savepoint, "p.toml"], &a);
    assert_clean_failure(
        &o,
        &[
            "belongs to another job",
            "pipeline \"b\"",
            "--allow-other-job",
        ],
    );
    assert!(!a.join("out/n.txt").exists());
    // On purpose: it takes b's source offsets (b's sink state, about b's own output file, is
    // left behind with --allow-non-restored-state), so it does not start again at 0.
    std::fs::write(
        a.join("p.toml"),
        numbers_pipeline("a", 1000, "n.txt", "").replace("[node.out]", "[node.out2]"),
    )
    .unwrap();
    let o = run_weir(
        &[
            "run",
            "--from-savepoint",
            &savepoint,
            "--allow-other-job",
            "--allow-non-restored-state",
            "p.toml",
        ],
        &a,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("on purpose"), "{}", stderr(&o));
    let taken = std::fs::read_to_string(a.join("out/n.txt")).unwrap_or_default();
    assert!(
        !taken.starts_with("0\n"),
        "a started over instead of taking b's offsets"
    );
    // b itself resumes from its own savepoint without a word (made short: its offset is
    // already past the new count).
    std::fs::write(
        b.join("p.toml"),
        numbers_pipeline("b", 1000, "n.txt", "interval = \"100ms\""),
    )
    .unwrap();
    let o = run_weir(&["run", "--from-savepoint", &savepoint, "p.toml"], &b);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("another job"), "{}", stderr(&o));
}

#[test]
fn a_lost_store_is_detected_and_fresh_starts_over_exactly_once() {
    let dir = scratch();
    let d = dir.path();
    prepare(d);
    std::fs::write(
        d.join("p.toml"),
        numbers_pipeline("p", 3_000_000, "n.txt", "interval = \"100ms\""),
    )
    .unwrap();
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 0);
    wait_for_a_checkpoint(&mut child, d, 0);
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(d.join(".weir/p/db")).unwrap();
    let o = run_weir(&["run", "p.toml"], d);
    assert_clean_failure(
        &o,
        &["lost or damaged", "--from-savepoint", "--fresh --yes"],
    );
    // A store that cannot even be opened: --fresh still works, and replaces the output.
    std::fs::create_dir_all(d.join(".weir/p/db")).unwrap();
    std::fs::write(d.join(".weir/p/db/db"), b"not a sled database at all").unwrap();
    let o = run_weir(&["run", "--fresh", "--yes", "p.toml"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(d.join("out/n.txt")).unwrap() == numbers(3_000_000),
        "the output is not exactly one copy"
    );
}
