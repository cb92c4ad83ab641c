//! Checkpoints end to end: SIGKILL crash loops, a plugin that traps once, at-least-once mode,
//! a corrupted checkpoint, stop-with-savepoint and a plugin swap, and a checkpoint timeout.

use crate::common::*;
use std::path::Path;

/// file source → [extra operator] → word count → exactly-once file sink.
fn setup(lines: usize, pipeline: &str) -> (tempfile::TempDir, String) {
    let dir = scratch();
    for d in ["in", "out", "marker"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let text = sample_text(lines, 11);
    std::fs::write(dir.path().join("in/input.txt"), &text).unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    (dir, text)
}

fn output(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("out/counts.txt")).unwrap()
}

/// Compare without printing 100 MB on failure.
fn assert_same(got: &str, want: &str) {
    if got != want {
        let g: Vec<&str> = got.lines().collect();
        let w: Vec<&str> = want.lines().collect();
        let first = g
            .iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .unwrap_or(g.len().min(w.len()));
        panic!(
            "output differs: {} lines, expected {}; first difference at line {first}: got {:?}, want {:?}",
            g.len(),
            w.len(),
            g.get(first),
            w.get(first)
        );
    }
}

#[test]
fn killed_ten_times_the_output_is_exactly_the_uninterrupted_result() {
    let settings = "[checkpoint]\ninterval = \"100ms\"";
    let pipeline = wordcount_pipeline(settings, &guest("wordcount"), "", "lines");
    let (dir, text) = setup(500_000, &throttled(&pipeline, 80_000));
    let kills = crash_loop(&["run", "p.toml"], dir.path(), 10, 200, 600);
    assert!(kills >= 10);
    assert_same(&output(dir.path()), &expected_updates(&text));
}

#[test]
fn a_plugin_that_traps_once_is_restarted_and_the_output_is_exact() {
    let settings = "[checkpoint]\ninterval = \"100ms\"\n\n[restart]\nstrategy = \"fixed-delay\"\nattempts = 2\ndelay = \"100ms\"";
    let trap = format!(
        r#"
[node.trap]
kind = "operator"
plugin = "{}"
input = "lines"
config = {{ mode = "panic", after = 150000, once_marker = "/marker/tripped" }}
grants.dirs = [{{ host = "marker", guest = "/marker", mode = "read-write" }}]
"#,
        guest("misbehave").display()
    );
    let (dir, text) = setup(
        300_000,
        &wordcount_pipeline(settings, &guest("wordcount"), &trap, "trap"),
    );
    let o = run_weir(&["run", "p.toml"], dir.path());
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        dir.path().join("marker/tripped").exists(),
        "the plugin never trapped"
    );
    assert!(
        err.contains("panicked: misbehave: deliberate panic") && err.contains("restart 1"),
        "{err}"
    );
    assert_same(&output(dir.path()), &expected_updates(&text));
}

#[test]
fn at_least_once_mode_may_duplicate_but_loses_nothing() {
    let settings = "[checkpoint]\ninterval = \"100ms\"\nmode = \"at-least-once\"";
    let pipeline = format!(
        r#"
{settings}

[node.lines]
kind = "source"
plugin = "file"
config = {{ path = "/in/input.txt" }}
grants.dirs = [{{ host = "in", guest = "/in" }}]

[node.words]
kind = "operator"
plugin = "{tokenize}"
input = "lines"

[node.count]
kind = "operator"
plugin = "{count}"
input = "words"
partition = "hash"
parallelism = 2

[node.out]
kind = "sink"
plugin = "file"
input = "count"
partition = "rebalance"
config = {{ path = "/out/counts.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        tokenize = guest("tokenize").display(),
        count = guest("wordcount").display()
    );
    let (dir, text) = setup(300_000, &throttled(&pipeline, 100_000));
    crash_loop(&["run", "p.toml"], dir.path(), 4, 200, 600);
    let written = output(dir.path());
    let seen: std::collections::HashSet<&str> = written.lines().collect();
    for (word, n) in count_words(&text) {
        for k in 1..=n {
            let line = format!("{word}\t{k}");
            assert!(seen.contains(line.as_str()), "lost {line:?}");
        }
    }
}

#[test]
fn a_corrupted_checkpoint_falls_back_to_the_previous_one() {
    let settings = "[checkpoint]\ninterval = \"50ms\"\nretain = 3";
    let (dir, text) = setup(
        200_000,
        &wordcount_pipeline(settings, &guest("wordcount"), "", "lines"),
    );
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // Corrupt the operator's state in the newest (final) checkpoint.
    let state_dir = dir.path().join(".weir/p");
    let last = {
        let store = weir_host::state::StateStore::open(&state_dir).unwrap();
        let list = store.list().unwrap();
        assert!(
            list.len() >= 2,
            "need an older checkpoint to fall back to: {list:?}"
        );
        list.last().unwrap().id
    };
    corrupt_blob(&state_dir, last, "count");
    let show = run_weir(
        &["checkpoints", "show", "p.toml", &last.to_string()],
        dir.path(),
    );
    assert!(stdout(&show).contains("CORRUPT"), "{}", stdout(&show));
    let o = run_weir(&["run", "p.toml"], dir.path());
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("checkpoint {last} is corrupt or partial"))
            && err.contains("falling back"),
        "no fallback warning:\n{err}"
    );
    assert_same(&output(dir.path()), &expected_updates(&text));
}

#[test]
fn stop_with_savepoint_then_resume_with_a_new_plugin_build_keeps_the_state() {
    let settings = "[checkpoint]\ninterval = \"500ms\"";
    let pipeline = wordcount_pipeline(settings, &guest("wordcount"), "", "lines");
    let (dir, text) = setup(300_000, &throttled(&pipeline, 100_000));
    let mut child = spawn_weir(&["run", "p.toml"], dir.path(), 1);
    // Stop once a first checkpoint has published output, so the stop lands mid-stream: wait for
    // that event (no deadline a loaded machine could miss), unless the run ends first.
    while std::fs::read_to_string(dir.path().join("out/counts.txt")).map_or(true, |s| s.is_empty())
    {
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(dir.path().join("attempt-1.err"));
            panic!("weir ended ({status}) before publishing anything: {err:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sigterm(&child);
    let status = child.wait().unwrap();
    let out = std::fs::read_to_string(dir.path().join("attempt-1.out")).unwrap();
    let err = std::fs::read_to_string(dir.path().join("attempt-1.err")).unwrap();
    assert!(
        status.success(),
        "stop with savepoint failed: {status}\n{err}"
    );
    let savepoint = printed_savepoint(&out)
        .unwrap_or_else(|| panic!("no savepoint path printed:\n{out}\n{err}"));
    assert!(Path::new(&savepoint).join("_metadata.json").exists());
    // A savepoint is self-contained: resume from a copy somewhere else.
    let copy = dir.path().join("moved-savepoint");
    std::fs::create_dir_all(&copy).unwrap();
    for f in std::fs::read_dir(&savepoint).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
    }
    std::fs::remove_dir_all(&savepoint).unwrap();
    let savepoint = copy.display().to_string();

    // A uid the savepoint knows is gone: refused unless explicitly allowed. (Another pipeline
    // file is another job: its savepoint is taken on purpose.)
    let renamed = wordcount_pipeline(settings, &guest("wordcount-v2"), "", "lines")
        .replace("[node.count]", "[node.tally]")
        .replace("input = \"count\"", "input = \"tally\"");
    std::fs::write(dir.path().join("renamed.toml"), renamed).unwrap();
    let o = run_weir(
        &["run", "--from-savepoint", &savepoint, "renamed.toml"],
        dir.path(),
    );
    assert_clean_failure(&o, &["belongs to another job", "--allow-other-job"]);
    let o = run_weir(
        &[
            "run",
            "--from-savepoint",
            &savepoint,
            "--allow-other-job",
            "renamed.toml",
        ],
        dir.path(),
    );
    assert_clean_failure(&o, &["`count`", "--allow-non-restored-state"]);

    // Swap the operator for another build and resume: the counts carry on.
    std::fs::write(
        dir.path().join("p.toml"),
        wordcount_pipeline(settings, &guest("wordcount-v2"), "", "lines"),
    )
    .unwrap();
    let o = run_weir(
        &["run", "--from-savepoint", &savepoint, "p.toml"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let written = output(dir.path());
    let v2 = written.lines().filter(|l| l.ends_with("\tv2")).count();
    assert!(
        v2 > 0 && v2 < written.lines().count(),
        "the stop did not land mid-stream ({v2} v2 lines)"
    );
    let untagged: String = written
        .lines()
        .map(|l| format!("{}\n", l.trim_end_matches("\tv2")))
        .collect();
    assert_same(&untagged, &expected_updates(&text));
}

#[test]
fn a_stalled_prepare_fails_its_checkpoint_not_the_job() {
    let pipeline = format!(
        r#"
[checkpoint]
interval = "100ms"
timeout = "400ms"
retain = 100

[node.numbers]
kind = "source"
plugin = "sequence"
config = {{ count = 3000000 }}

[node.out]
kind = "sink"
plugin = "{}"
input = "numbers"
config = {{ stall_ms = 1500 }}
"#,
        guest("stall-sink").display()
    );
    let (dir, _) = setup(1, &pipeline);
    let o = run_weir(&["run", "p.toml"], dir.path());
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("failed: not complete after") && err.contains("the job goes on"),
        "{err}"
    );
    let list = stdout(&run_weir(&["checkpoints", "list", "p.toml"], dir.path()));
    assert!(list.contains("failed: not complete after 400ms"), "{list}");
    assert!(list.contains("complete (final)"), "{list}");
}

#[test]
fn with_checkpointing_off_nothing_is_kept_and_the_sinks_still_commit() {
    let settings = "[checkpoint]\nenabled = false";
    let (dir, text) = setup(
        20_000,
        &wordcount_pipeline(settings, &guest("wordcount"), "", "lines"),
    );
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same(&output(dir.path()), &expected_updates(&text));
    // The state directory holds only the run's lock and the job's identity: no checkpoints.
    assert!(
        !dir.path().join(".weir/p/db").exists() && !dir.path().join(".weir/p/savepoints").exists(),
        "state was kept with checkpointing off"
    );
    let o = run_weir(
        &["run", "--from-savepoint", "nowhere", "p.toml"],
        dir.path(),
    );
    assert_clean_failure(&o, &["checkpointing is off"]);
}

#[test]
fn fresh_needs_a_confirmation_when_not_on_a_terminal_and_replaces_the_output() {
    let (dir, text) = setup(
        100,
        &wordcount_pipeline("", &guest("wordcount"), "", "lines"),
    );
    assert!(run_weir(&["run", "p.toml"], dir.path()).status.success());
    let o = run_weir(&["run", "--fresh", "p.toml"], dir.path());
    assert_clean_failure(&o, &["--fresh would delete 1 checkpoint(s)", "--yes"]);
    let o = run_weir(&["run", "--fresh", "--yes", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // Started over from the beginning: the output is replaced, not appended a second time.
    assert_same(&output(dir.path()), &expected_updates(&text));
    // A finished job stays finished, and says how to run it again.
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("--dev"), "{}", stderr(&o));
    // --dev: the edit-and-rerun loop starts over every time, without asking.
    for _ in 0..2 {
        let o = run_weir(&["run", "--dev", "p.toml"], dir.path());
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stderr(&o).contains("already finished"), "{}", stderr(&o));
        assert_same(&output(dir.path()), &expected_updates(&text));
    }
}

#[test]
fn a_final_commit_that_failed_is_completed_by_the_next_run() {
    let pipeline = format!(
        r#"
[checkpoint]
interval = "1h"

[restart]
strategy = "none"

[node.numbers]
kind = "source"
plugin = "sequence"
config = {{ count = 1000 }}

[node.out]
kind = "sink"
plugin = "{}"
input = "numbers"
config = {{ stall_ms = 0, fail_commit_marker = "/marker/failed", commit_log = "/marker/commits" }}
grants.dirs = [{{ host = "marker", guest = "/marker", mode = "read-write" }}]
"#,
        guest("stall-sink").display()
    );
    let (dir, _) = setup(1, &pipeline);
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert_clean_failure(&o, &["deliberate failure committing checkpoint 1"]);
    assert!(!dir.path().join("marker/commits").exists());
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already finished (checkpoint 1)"),
        "{}",
        stderr(&o)
    );
    let log = std::fs::read_to_string(dir.path().join("marker/commits")).unwrap();
    assert_eq!(
        log, "commit 1\n",
        "the finished checkpoint was not committed by the second run"
    );
}

/// A source file cut below the offset a checkpoint holds is an error naming the file, never a
/// silent "finished with 0 records".
#[test]
fn a_source_file_truncated_below_its_checkpointed_offset_is_an_error() {
    let settings = "[checkpoint]\ninterval = \"200ms\"\n[restart]\nstrategy = \"none\"";
    let pipeline = wordcount_pipeline(settings, &guest("wordcount"), "", "lines");
    let (dir, _) = setup(200_000, &throttled(&pipeline, 50_000));
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], dir.path(), 1);
    wait_for_a_checkpoint(&mut child, dir.path(), 1);
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(dir.path().join("in/input.txt"), "short\n").unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert_clean_failure(
        &o,
        &[
            "node `lines`",
            "/in/input.txt has 6 bytes, fewer than the",
            "truncated or replaced",
        ],
    );
}

/// More subtasks than tokio's blocking pool holds (512) all run: each subtask has its own thread.
#[test]
fn a_job_of_more_than_512_subtasks_runs_to_the_end() {
    let dir = scratch();
    // 300 subtasks need at least 300 key groups.
    let text = "[pipeline]\nmax_parallelism = 512\n\n[checkpoint]\ninterval = \"200ms\"\n\n[node.src]\nkind = \"source\"\nplugin = \"sequence\"\nparallelism = 300\nconfig = { count = 3000 }\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"src\"\nparallelism = 300\n";
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let mut got: Vec<u64> = stdout(&o).lines().map(|l| l.parse().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..3000).collect::<Vec<u64>>());
}

/// Flip the first byte of node `node`'s state blobs in checkpoint `id`, in sled directly, as a
/// damaged disk would (blob keys: the id big-endian, the node name, a NUL, the subtask).
fn corrupt_blob(state_dir: &std::path::Path, id: u64, node: &str) {
    let db = sled::open(state_dir.join("db")).unwrap();
    let blobs = db.open_tree("blobs").unwrap();
    let mut prefix = id.to_be_bytes().to_vec();
    prefix.extend_from_slice(node.as_bytes());
    prefix.push(0);
    let keys: Vec<_> = blobs
        .scan_prefix(&prefix)
        .keys()
        .map(Result::unwrap)
        .collect();
    assert!(
        !keys.is_empty(),
        "checkpoint {id} holds no state of `{node}`"
    );
    for key in keys {
        let mut v = blobs.get(&key).unwrap().unwrap().to_vec();
        v[0] ^= 0xff;
        blobs.insert(key, v).unwrap();
    }
    db.flush().unwrap();
}

/// State the plugin refuses at restore (here: a node given another plugin under the same uid)
/// fails the same way at every restart: the run ends at once, saying so, instead of restarting.
#[test]
fn state_a_plugin_refuses_is_not_restarted_into_again() {
    let dir = scratch();
    let d = dir.path();
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::create_dir_all(d.join("in")).unwrap();
    let pipeline = |source: &str| {
        format!(
            "[checkpoint]\ninterval = \"100ms\"\n\n[node.src]\nkind = \"source\"\n{source}\n\n[node.out]\nkind = \"sink\"\nplugin = \"file\"\ninput = \"src\"\nconfig = {{ path = \"/out/o.txt\" }}\ngrants.dirs = [{{ host = \"out\", guest = \"/out\", mode = \"read-write\" }}]\n"
        )
    };
    std::fs::write(
        d.join("p.toml"),
        pipeline("plugin = \"sequence\"\nconfig = { count = 1000000000 }"),
    )
    .unwrap();
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 1);
    wait_for_a_checkpoint(&mut child, d, 1);
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(
        d.join("p.toml"),
        pipeline(
            "plugin = \"directory\"\nconfig = { path = \"/in\" }\ngrants.dirs = [{ host = \"in\", guest = \"/in\" }]",
        ),
    )
    .unwrap();
    let o = run_weir(&["run", "p.toml"], d);
    assert_clean_failure(
        &o,
        &[
            "was not restarted",
            "refuses the stored state",
            "node `src`",
            "in `restore`",
        ],
    );
    assert!(!stderr(&o).contains("restart 1"), "{}", stderr(&o));
}
