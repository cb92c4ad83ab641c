//! Keyed state end to end: rescaling a keyed word count across savepoints, restarts and kills;
//! a crash loop whose parallelism changes between attempts; state far beyond the memory
//! ceiling; a damaged piece falling back to an older checkpoint; queries live and offline.

use crate::common::*;
use std::path::Path;

/// file source → tokenize → `hash` → word count (keyed state, `parallelism`) → `rebalance` →
/// file sink (`sinks` subtasks).
fn keyed_pipeline(parallelism: u32, sinks: u32, rate: u32) -> String {
    format!(
        r#"
[checkpoint]
interval = "100ms"

[node.lines]
kind = "source"
plugin = "file"
config = {{ path = "/in/input.txt", rate = {rate} }}
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
parallelism = {parallelism}

[node.out]
kind = "sink"
plugin = "file"
input = "count"
partition = "rebalance"
parallelism = {sinks}
config = {{ path = "/out/counts.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        tokenize = guest("tokenize").display(),
        count = guest("wordcount").display(),
    )
}

fn setup(lines: usize) -> (tempfile::TempDir, String) {
    let dir = scratch();
    for d in ["in", "out"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let text = sample_text(lines, 5);
    std::fs::write(dir.path().join("in/input.txt"), &text).unwrap();
    (dir, text)
}

fn set_parallelism(dir: &Path, parallelism: u32, rate: u32) {
    set_parallelisms(dir, parallelism, 1, rate);
}

fn set_parallelisms(dir: &Path, parallelism: u32, sinks: u32, rate: u32) {
    std::fs::write(dir.join("p.toml"), keyed_pipeline(parallelism, sinks, rate)).unwrap();
}

/// The output lines sorted: with several count subtasks the file sink interleaves their
/// updates, but every `word<TAB>n` must be there exactly once.
fn sorted_lines(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().collect();
    v.sort_unstable();
    v
}

/// Every file the sink subtasks wrote (`counts.txt`, `counts.txt.<i>` at parallelism > 1).
fn assert_exact(dir: &Path, text: &str) {
    let mut got = String::new();
    for entry in std::fs::read_dir(dir.join("out")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let suffix = name.strip_prefix("counts.txt").unwrap_or("?");
        if suffix.is_empty()
            || suffix
                .strip_prefix('.')
                .is_some_and(|i| i.parse::<u32>().is_ok())
        {
            got.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let want = expected_updates(text);
    let (g, w) = (sorted_lines(&got), sorted_lines(&want));
    if g != w {
        let first = g.iter().zip(&w).position(|(a, b)| a != b);
        panic!(
            "output differs: {} lines, expected {}; first difference at sorted line {first:?}",
            g.len(),
            w.len()
        );
    }
}

#[test]
fn rescaled_two_three_killed_one_the_output_is_exact_and_queries_answer() {
    let (dir, text) = setup(200_000);
    let d = dir.path();
    set_parallelism(d, 2, 40_000);
    precompile("p.toml", d);

    // Parallelism 2, stopped with a savepoint.
    let mut first = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 1);
    wait_for_checkpoints(&mut first, d, 1, 3);
    sigterm(&first);
    assert!(first.wait().unwrap().success(), "{}", attempt_log(d, 1));
    let out = std::fs::read_to_string(d.join("attempt-1.out")).unwrap();
    let savepoint = printed_savepoint(&out)
        .unwrap_or_else(|| panic!("no savepoint printed:\n{out}\n{}", attempt_log(d, 1)));

    // Parallelism 3 from the savepoint, asked live, then killed.
    set_parallelism(d, 3, 40_000);
    let mut second =
        spawn_weir_logging_checkpoints(&["run", "--from-savepoint", &savepoint, "p.toml"], d, 2);
    wait_for_checkpoints(&mut second, d, 2, 3);
    let live = run_weir(&["state", "get", "p.toml", "count", "weir"], d);
    assert!(live.status.success(), "{}", stderr(&live));
    assert!(
        stderr(&live).contains("from the running job"),
        "{}",
        stderr(&live)
    );
    let live_count: u64 = stdout(&live)
        .strip_prefix("counts\t")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a count: {:?}", stdout(&live)));
    assert!(live_count > 0);
    assert!(
        second.try_wait().unwrap().is_none(),
        "the run ended too soon to kill it"
    );
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(
        attempt_log(d, 2).contains("rescaling node `count` from parallelism 2 to 3"),
        "{}",
        attempt_log(d, 2)
    );

    // Parallelism 1 from the latest checkpoint, to the end.
    set_parallelism(d, 1, 1_000_000);
    let third = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 3)
        .wait()
        .unwrap();
    assert!(third.success(), "{}", attempt_log(d, 3));
    assert!(
        attempt_log(d, 3).contains("rescaling node `count` from parallelism 3 to 1"),
        "{}",
        attempt_log(d, 3)
    );
    assert_exact(d, &text);

    // Offline queries answer from the final checkpoint, as a count computed here says.
    let counts = count_words(&text);
    let got = run_weir(&["state", "get", "p.toml", "count", "weir"], d);
    assert!(got.status.success(), "{}", stderr(&got));
    assert!(stderr(&got).contains("from checkpoint"), "{}", stderr(&got));
    assert_eq!(stdout(&got), format!("counts\t{}\n", counts["weir"]));
    assert!(counts["weir"] >= live_count);
    let scan = run_weir(
        &[
            "state", "scan", "p.toml", "count", "--prefix", "s", "--limit", "3",
        ],
        d,
    );
    assert!(scan.status.success(), "{}", stderr(&scan));
    let want: Vec<String> = counts
        .iter()
        .filter(|(w, _)| w.starts_with('s'))
        .take(3)
        .map(|(w, n)| format!("{w}\tcounts\t{n}"))
        .collect();
    assert_eq!(stdout(&scan).lines().collect::<Vec<_>>(), want);
    let missing = run_weir(&["state", "get", "p.toml", "count", "no-such-word"], d);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no state for key"),
        "{}",
        stderr(&missing)
    );
    let wrong = run_weir(&["state", "get", "p.toml", "words", "weir"], d);
    assert_clean_failure(&wrong, &["`words` holds no keyed state", "count"]);
}

/// The keyed operator's and the exactly-once sink's parallelism both change between attempts.
#[test]
fn a_crash_loop_that_changes_the_parallelism_every_time_is_exact() {
    let (dir, text) = setup(400_000);
    let d = dir.path();
    let kills = crash_loop_changing(
        &["run", "p.toml"],
        d,
        10,
        100,
        400,
        |attempt, last| match last {
            false => set_parallelisms(d, [1, 2, 3][attempt % 3], [2, 1, 3][attempt % 3], 30_000),
            true => set_parallelisms(d, 2, 2, 1_000_000),
        },
    );
    let attempt = kills + 1;
    let rescaled = (2..=attempt)
        .filter(|a| attempt_log(d, *a).contains("rescaling node `count`"))
        .count();
    assert!(rescaled >= 5, "only {rescaled} attempts rescaled");
    assert_exact(d, &text);
}

/// Chained in some attempts, apart in others: checkpoints cannot tell a chain from separate
/// subtasks, so restores across the change stay exact.
#[test]
fn a_crash_loop_that_chains_and_unchains_an_operator_is_exact() {
    let (dir, text) = setup(300_000);
    let d = dir.path();
    let write = |chain: bool, rate: u32| {
        let p = keyed_pipeline(2, 1, rate).replace(
            "input = \"lines\"\n",
            &format!("input = \"lines\"\nchain = {chain}\n"),
        );
        std::fs::write(d.join("p.toml"), p).unwrap();
    };
    let kills = crash_loop_changing(&["run", "p.toml"], d, 6, 100, 400, |attempt, last| {
        write(attempt % 2 == 1, if last { 1_000_000 } else { 30_000 })
    });
    let chained = "node `words` runs chained into `lines`";
    // The killed attempts log the coordinator's debug lines.
    for attempt in 1..=kills {
        assert_eq!(
            attempt_log(d, attempt).contains(chained),
            attempt % 2 == 1,
            "attempt {attempt}: chained when it should not be, or not when it should:\n{}",
            attempt_log(d, attempt)
        );
    }
    assert_exact(d, &text);
}

#[test]
fn keyed_state_far_beyond_the_memory_ceiling_runs_and_is_queryable() {
    let dir = scratch();
    let d = dir.path();
    // 150 000 keys of 1000 bytes: about 150 MB of state under a 64 MiB ceiling.
    let pipeline = format!(
        r#"
[checkpoint]
interval = "1s"

[node.keys]
kind = "source"
plugin = "sequence"
config = {{ count = 150000 }}

[node.fill]
kind = "operator"
plugin = "{fill}"
input = "keys"
memory = "64MiB"
config = {{ value_bytes = 1000 }}

[node.out]
kind = "sink"
plugin = "stdout"
input = "fill"
"#,
        fill = guest("keyed-fill").display()
    );
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "p.toml"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 150_000);
    let got = run_weir(&["state", "get", "p.toml", "fill", "149999"], d);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(stdout(&got), format!("blobs\t\"{}\"\n", "x".repeat(1000)));
    let store = weir_host::state::StateStore::open(&d.join(".weir/p")).unwrap();
    let last = store.list().unwrap().pop().unwrap();
    let bytes = last.keyed["fill"].bytes();
    assert!(bytes > 150_000_000, "only {bytes} bytes of keyed state");
}

#[test]
fn a_damaged_piece_of_keyed_state_falls_back_to_an_older_checkpoint() {
    let (dir, text) = setup(150_000);
    let d = dir.path();
    set_parallelism(d, 2, 50_000);
    precompile("p.toml", d);
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 1);
    wait_for_checkpoints(&mut child, d, 1, 4);
    child.kill().unwrap();
    child.wait().unwrap();
    let state_dir = d.join(".weir/p");
    let last = {
        let store = weir_host::state::StateStore::open(&state_dir).unwrap();
        let complete: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .filter(|m| m.status == weir_host::state::Status::Complete)
            .collect();
        assert!(
            complete.len() >= 2,
            "need an older checkpoint to fall back to"
        );
        let last = complete.last().unwrap().clone();
        let manifest = &last.keyed["count"];
        let damaged = manifest
            .pieces()
            .filter(|(g, p)| {
                p.checkpoint == last.id && store.pieces().corrupt_piece("count", *g, p)
            })
            .count();
        assert!(damaged > 0);
        last.id
    };
    let show = run_weir(&["checkpoints", "show", "p.toml", &last.to_string()], d);
    assert!(stdout(&show).contains("CORRUPT"), "{}", stdout(&show));
    let o = run_weir(&["run", "p.toml"], d);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("checkpoint {last} is corrupt or partial")),
        "no fallback warning:\n{err}"
    );
    assert_exact(d, &text);
}

/// Wait until `path` has at least `n` lines (the sink committed them: a checkpoint covering
/// their records completed), or the run ended.
fn wait_for_lines(child: &mut std::process::Child, path: &Path, n: usize) {
    let stuck = std::time::Instant::now() + STUCK;
    loop {
        let lines = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
        if lines >= n {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended at {lines} lines"
        );
        assert!(
            std::time::Instant::now() < stuck,
            "stuck at {lines} of {n} lines"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The newest checkpoint attempt `attempt` logged as complete ("checkpoint N complete in").
fn newest_complete(dir: &Path, attempt: usize) -> u64 {
    attempt_log(dir, attempt)
        .lines()
        .filter_map(|l| {
            let rest = l.split("checkpoint ").nth(1)?;
            let (id, tail) = rest.split_once(' ')?;
            tail.starts_with("complete in").then(|| id.parse().ok())?
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_checkpoint_after_one_percent_of_the_keys_changed_writes_under_five_percent_of_a_full_one() {
    let dir = scratch();
    let d = dir.path();
    for sub in ["in", "out"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let pipeline = format!(
        r#"
[checkpoint]
interval = "100ms"

[node.keys]
kind = "source"
plugin = "directory"
config = {{ path = "/in", scan_ms = 20 }}
grants.dirs = [{{ host = "in", guest = "/in" }}]

[node.fill]
kind = "operator"
plugin = "{fill}"
input = "keys"
config = {{ value_bytes = 100 }}

[node.out]
kind = "sink"
plugin = "file"
input = "fill"
config = {{ path = "/out/updates.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        fill = guest("keyed-fill").display()
    );
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    let keys = 20_000;
    let put = |name: &str, n: usize| {
        let text: String = (0..n).map(|i| format!("k{i}\n")).collect();
        std::fs::write(d.join(format!("in/.{name}")), text).unwrap();
        std::fs::rename(d.join(format!("in/.{name}")), d.join(format!("in/{name}"))).unwrap();
    };
    put("a.txt", keys);
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 1);
    let out = d.join("out/updates.txt");
    wait_for_lines(&mut child, &out, keys);
    let full_at = newest_complete(d, 1);
    // 1 % of the keys change.
    put("b.txt", keys / 100);
    wait_for_lines(&mut child, &out, keys + keys / 100);
    sigterm(&child);
    assert!(child.wait().unwrap().success(), "{}", attempt_log(d, 1));
    let store = weir_host::state::StateStore::open(&d.join(".weir/p")).unwrap();
    let complete: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .filter(|m| m.status == weir_host::state::Status::Complete)
        .collect();
    let last = complete.last().unwrap();
    let full = last.keyed["fill"].bytes();
    let after: u64 = complete
        .iter()
        .filter(|m| m.id > full_at)
        .map(|m| m.keyed.get("fill").map_or(0, |k| k.bytes_written_by(m.id)))
        .sum();
    assert!(
        full > (keys * 100) as u64,
        "full state is only {full} bytes"
    );
    assert!(after > 0, "the changes were never checkpointed");
    assert!(
        after * 20 < full,
        "checkpoints after 1 % of the keys changed wrote {after} bytes, full state is {full}"
    );
    // The state itself is right: a changed key holds both updates.
    drop(store);
    let got = run_weir(&["state", "get", "p.toml", "fill", "k7"], d);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(stdout(&got), format!("blobs\t\"{}\"\n", "x".repeat(100)));
}
