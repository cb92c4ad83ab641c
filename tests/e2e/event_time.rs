//! Event time end to end: windowed counts over out-of-order input (the windowed-counts
//! example), exact through SIGKILLs; late records on `<node>.late` only; a keyed window at
//! parallelism 2 behind a `hash` edge; inputs that go quiet and sources that emit their own
//! watermarks; timers restored from a checkpoint; session windows.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One event: (user, ts ms).
pub type Event = (String, i64);

/// `n` events of a few users, ~150 ms apart, out of order by less than `disorder_ms`: each
/// arrives at its timestamp plus a random delay below it (so no event comes `disorder_ms` or
/// more behind the newest before it).
fn shuffled_events(n: usize, seed: u64, disorder_ms: i64) -> Vec<Event> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    let mut t = base;
    let mut keyed: Vec<(i64, Event)> = (0..n)
        .map(|_| {
            t += (next() % 300) as i64;
            let user = format!("user{}", next() % 7);
            (t + (next() % disorder_ms as u64) as i64, (user, t))
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, e)| e).collect()
}

fn jsonl(events: &[Event]) -> String {
    events
        .iter()
        .map(|(u, ts)| format!("{{\"user\":\"{u}\",\"ts\":{ts},\"page\":\"/p\"}}\n"))
        .collect()
}

/// `<window start>\t<user>\t<count>` per window of `size` and user, sorted.
pub fn window_counts<'a>(events: impl IntoIterator<Item = &'a Event>, size: i64) -> Vec<String> {
    let mut counts: BTreeMap<(i64, &str), u64> = BTreeMap::new();
    for (u, ts) in events {
        *counts.entry((ts - ts.rem_euclid(size), u)).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((start, u), c)| format!("{start}\t{u}\t{c}"))
        .collect()
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// A copy of examples/windowed-counts (its pipeline file as it is, the operator built from
/// its source) in `<scratch>/windowed-counts/`, with `events` as its events.jsonl. Returns the
/// copy's directory. `edit` may change the pipeline text.
fn example_copy(scratch: &Path, events: &[Event], edit: impl Fn(String) -> String) -> PathBuf {
    example_copy_with(scratch, events, edit, &guest("windowed-counts"))
}

/// [`example_copy`] with the operator component `plugin`.
fn example_copy_with(
    scratch: &Path,
    events: &[Event],
    edit: impl Fn(String) -> String,
    plugin: &Path,
) -> PathBuf {
    let example = root().join("examples/windowed-counts");
    let dir = scratch.join("windowed-counts");
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let pipeline = std::fs::read_to_string(example.join("pipeline.toml")).unwrap();
    std::fs::write(dir.join("pipeline.toml"), edit(pipeline)).unwrap();
    std::fs::copy(plugin, dir.join("windowed-counts.wasm")).unwrap();
    std::fs::write(dir.join("events.jsonl"), jsonl(events)).unwrap();
    dir
}

#[test]
fn windowed_counts_of_shuffled_input_equal_a_count_computed_here() {
    let scratch = scratch();
    let events = shuffled_events(5000, 7, 5000);
    let dir = example_copy(scratch.path(), &events, |p| p);
    let o = run_weir(&["run", "pipeline.toml"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = sorted_lines(&dir.join("out/counts.txt"));
    let want = window_counts(&events, 60_000);
    assert!(want.len() > 50, "the input spans too few windows");
    assert_eq!(got, want);
    // The state lives beside the example directory, not in it.
    assert!(scratch.path().join(".weir/windowed-counts").is_dir());
}

#[test]
fn the_python_window_operator_gives_the_rust_ones_result() {
    let events = shuffled_events(4000, 5, 5000);
    let mut outputs = Vec::new();
    for plugin in [guest("windowed-counts"), python_windowed_counts()] {
        let scratch = scratch();
        let dir = example_copy_with(scratch.path(), &events, |p| p, &plugin);
        let o = run_weir(&["run", "pipeline.toml"], &dir);
        assert!(o.status.success(), "{}: {}", plugin.display(), stderr(&o));
        outputs.push(sorted_lines(&dir.join("out/counts.txt")));
    }
    assert_eq!(outputs[0], window_counts(&events, 60_000));
    assert_eq!(outputs[1], outputs[0], "Python and Rust windows agree");
}

#[test]
fn windowed_counts_killed_ten_times_are_exact() {
    let scratch = scratch();
    let events = shuffled_events(40_000, 99, 5000);
    let dir = example_copy(scratch.path(), &events, |p| {
        p.replace(
            "path = \"/in/events.jsonl\" }",
            "path = \"/in/events.jsonl\", rate = 2000 }",
        )
        .replace("interval = \"1s\"", "interval = \"300ms\"")
    });
    let kills = crash_loop(&["run", "pipeline.toml"], &dir, 10, 100, 500);
    assert!(kills >= 10);
    assert_eq!(
        sorted_lines(&dir.join("out/counts.txt")),
        window_counts(&events, 60_000),
        "every window once, exactly"
    );
}

#[test]
fn late_records_arrive_on_the_late_output_and_nowhere_else() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    // In order but for a few stragglers far behind; a watermark after every record.
    let mut events: Vec<Event> = (0..400).map(|i| (format!("u{}", i % 3), i * 250)).collect();
    for (at, ts) in [
        (100, 1_000),
        (200, 30_500),
        (250, 2_000),
        (390, 95_000),
        (391, 99_000),
    ] {
        events.insert(at, ("late".to_string(), ts));
    }
    let ooo = 1000;
    let size = 10_000;
    let (mut kept, mut late) = (Vec::new(), Vec::new());
    let mut max = i64::MIN;
    for e in &events {
        let wm = if max == i64::MIN {
            i64::MIN
        } else {
            max - ooo - 1
        };
        let end = e.1 - e.1.rem_euclid(size) + size;
        if end - 1 <= wm {
            late.push(e.clone());
        } else {
            kept.push(e.clone());
        }
        max = max.max(e.1);
    }
    assert!(
        late.len() >= 3 && late.len() < 5,
        "the test input needs stragglers"
    );
    std::fs::write(dir.path().join("in/events.jsonl"), jsonl(&events)).unwrap();
    let pipeline = format!(
        r#"
[pipeline]
batch_size = 1

[node.events]
kind = "source"
plugin = "file"
config = {{ path = "/in/events.jsonl" }}
grants.dirs = [{{ host = "in", guest = "/in" }}]
watermarks = {{ timestamp = "json:ts", out_of_orderness = "{ooo}ms", interval = "0s" }}

[node.by-user]
kind = "operator"
plugin = "key-by"
input = "events"
config = {{ field = "user" }}

[node.count]
kind = "operator"
plugin = "{plugin}"
input = "by-user"
config = {{ window_ms = {size} }}

[node.counts]
kind = "sink"
plugin = "file"
input = "count"
config = {{ path = "/out/counts.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]

[node.stragglers]
kind = "sink"
plugin = "file"
input = "count.late"
config = {{ path = "/out/late.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        plugin = guest("windowed-counts").display()
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        sorted_lines(&dir.path().join("out/counts.txt")),
        window_counts(&kept, size)
    );
    let mut want_late: Vec<String> = jsonl(&late).lines().map(str::to_owned).collect();
    want_late.sort();
    assert_eq!(sorted_lines(&dir.path().join("out/late.txt")), want_late);
    assert!(
        stderr(&o).contains(&format!(
            "count: {} late record(s) sent to count.late",
            late.len()
        )),
        "the summary counts them:\n{}",
        stderr(&o)
    );

    // Without a node reading count.late they are dropped, and the summary says so.
    let without = std::fs::read_to_string(dir.path().join("p.toml"))
        .unwrap()
        .split("[node.stragglers]")
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(dir.path().join("q.toml"), without).unwrap();
    let o = run_weir(&["run", "q.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("of them dropped: no node reads count.late"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_keyed_window_at_parallelism_two_behind_a_hash_edge() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let events = shuffled_events(6000, 3, 2000);
    std::fs::write(dir.path().join("in/events.jsonl"), jsonl(&events)).unwrap();
    let pipeline = format!(
        r#"
[checkpoint]
interval = "200ms"

[node.events]
kind = "source"
plugin = "file"
config = {{ path = "/in/events.jsonl" }}
grants.dirs = [{{ host = "in", guest = "/in" }}]
watermarks = {{ timestamp = "json:ts", out_of_orderness = "2s", interval = "20ms" }}

[node.by-user]
kind = "operator"
plugin = "key-by"
input = "events"
config = {{ field = "user" }}

[node.count]
kind = "operator"
plugin = "{plugin}"
input = "by-user"
partition = "hash"
parallelism = 2
config = {{ window_ms = 20000 }}

[node.counts]
kind = "sink"
plugin = "file"
input = "count"
partition = "rebalance"
config = {{ path = "/out/counts.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        plugin = guest("windowed-counts").display()
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("count (x2)"), "{}", stderr(&o));
    assert_eq!(
        sorted_lines(&dir.path().join("out/counts.txt")),
        window_counts(&events, 20_000)
    );
}

/// The events `event-source` makes: record i of `count` at `i * step`, user `u<i mod users>`.
fn source_events(indices: impl Iterator<Item = u64>, step: i64, users: u64) -> Vec<Event> {
    indices
        .map(|i| (format!("u{}", i % users), i as i64 * step))
        .collect()
}

/// Run `pipeline` in `dir` until `out/counts.txt` holds every line of `want` (committed at
/// checkpoints while the job runs: its input never ends), then stop it with SIGTERM. Returns
/// the lines of the output after the stop.
pub fn run_until_counted(dir: &Path, pipeline: &str, want: &[String]) -> Vec<String> {
    std::fs::write(dir.join("p.toml"), pipeline).unwrap();
    precompile("p.toml", dir);
    let mut child = spawn_weir(&["run", "p.toml"], dir, 1);
    let stuck = std::time::Instant::now() + STUCK;
    loop {
        let got = sorted_lines(&dir.join("out/counts.txt"));
        if want.iter().all(|w| got.contains(w)) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "weir ended ({status}) before the windows closed:\n{}\ngot {got:?}",
                std::fs::read_to_string(dir.join("attempt-1.err")).unwrap_or_default()
            );
        }
        if std::time::Instant::now() > stuck {
            let _ = child.kill();
            panic!("the windows never closed: got {got:?}, want {want:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the stop failed: {}",
        std::fs::read_to_string(dir.join("attempt-1.err")).unwrap_or_default()
    );
    sorted_lines(&dir.join("out/counts.txt"))
}

fn event_source_pipeline(source: &str, watermarks: &str) -> String {
    format!(
        r#"
[checkpoint]
interval = "200ms"

[node.events]
kind = "source"
plugin = "{source_plugin}"
{source}
{watermarks}

[node.by-user]
kind = "operator"
plugin = "key-by"
input = "events"
partition = "rebalance"
config = {{ field = "user" }}

[node.count]
kind = "operator"
plugin = "{count}"
input = "by-user"
partition = "hash"
config = {{ window_ms = 10000 }}

[node.counts]
kind = "sink"
plugin = "file"
input = "count"
config = {{ path = "/out/counts.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        source_plugin = guest("event-source").display(),
        count = guest("windowed-counts").display()
    )
}

#[test]
fn an_input_that_goes_quiet_does_not_stall_windows_once_idle() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    // Subtask 0 makes the even records 0..1000 and then goes quiet (no end); subtask 1 makes
    // 3 and goes quiet. Without idleness, subtask 1's watermark would hold every window back.
    let source = "parallelism = 2\nconfig = { count = 1000, step_ms = 100, producers = 1, stall_after = 3, end = false }";
    let watermarks = "watermarks = { timestamp = \"record\", out_of_orderness = \"1s\", idle_timeout = \"300ms\", interval = \"50ms\" }";
    let mut events = source_events((0..1000).step_by(2), 100, 5);
    events.extend(source_events([1u64, 3, 5].into_iter(), 100, 5));
    // Subtask 0's last watermark: its newest timestamp - 1 s - 1 ms; windows ending by it close.
    let wm = 998 * 100 - 1000 - 1;
    let closed: Vec<Event> = events
        .iter()
        .filter(|(_, ts)| ts - ts.rem_euclid(10_000) + 10_000 - 1 <= wm)
        .cloned()
        .collect();
    let want = window_counts(&closed, 10_000);
    assert!(want.len() >= 40);
    let got = run_until_counted(
        dir.path(),
        &event_source_pipeline(source, watermarks),
        &want,
    );
    assert_eq!(got, want, "exactly the windows the watermark passed");
}

#[test]
fn a_source_that_emits_its_own_watermarks_drives_windows() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    // No strategy on the node: the source's own watermarks (its newest timestamp) are all.
    let source = "config = { count = 500, step_ms = 100, emit_watermarks = true, end = false }";
    let events = source_events(0..500, 100, 5);
    let wm = 499 * 100;
    let closed: Vec<Event> = events
        .iter()
        .filter(|(_, ts)| ts - ts.rem_euclid(10_000) + 10_000 - 1 <= wm)
        .cloned()
        .collect();
    let want = window_counts(&closed, 10_000);
    let got = run_until_counted(dir.path(), &event_source_pipeline(source, ""), &want);
    assert_eq!(got, want);
}

#[test]
fn timers_registered_before_a_checkpoint_fire_after_a_restore() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let n = 1500;
    let input: String = (0..n)
        .map(|i| format!("{{\"ts\":{}}}\n", i * 1000))
        .collect();
    std::fs::write(dir.path().join("in/events.jsonl"), &input).unwrap();
    // Every record's timer fires only at the end of input (a day after it); a processing-time
    // timer fires 50 ms after the first record.
    let delay = 86_400_000i64;
    let pipeline = format!(
        r#"
[checkpoint]
interval = "100ms"

[node.events]
kind = "source"
plugin = "file"
config = {{ path = "/in/events.jsonl", rate = 500 }}
grants.dirs = [{{ host = "in", guest = "/in" }}]
watermarks = {{ timestamp = "json:ts" }}

[node.timers]
kind = "operator"
plugin = "{plugin}"
input = "events"
config = {{ mode = "timers", delay_ms = {delay}, processing_ms = 50 }}

[node.out]
kind = "sink"
plugin = "file"
input = "timers"
config = {{ path = "/out/fired.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        plugin = guest("event-time").display()
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    precompile("p.toml", dir.path());
    let mut first = spawn_weir_logging_checkpoints(&["run", "p.toml"], dir.path(), 1);
    wait_for_checkpoints(&mut first, dir.path(), 1, 3);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended too soon"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let second = spawn_weir(&["run", "p.toml"], dir.path(), 2)
        .wait()
        .unwrap();
    let err = std::fs::read_to_string(dir.path().join("attempt-2.err")).unwrap();
    assert!(second.success(), "{err}");
    assert!(err.contains("resuming from checkpoint"), "{err}");
    let mut want: Vec<String> = input
        .lines()
        .enumerate()
        .map(|(i, line)| format!("fired\t{line}\t{}", i as i64 * 1000 + delay))
        .collect();
    want.push(format!("finish\t{n}"));
    want.push("processing\tpt".into());
    want.sort();
    assert_eq!(sorted_lines(&dir.path().join("out/fired.txt")), want);
}

#[test]
fn session_windows_close_after_a_gap_per_key() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let events = shuffled_events(3000, 21, 1000);
    std::fs::write(dir.path().join("in/events.jsonl"), jsonl(&events)).unwrap();
    let gap = 1500i64;
    // Sessions computed here: per user, timestamps sorted, split where the gap is larger.
    let mut by_user: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (u, ts) in &events {
        by_user.entry(u).or_default().push(*ts);
    }
    let mut want = Vec::new();
    for (u, mut ts) in by_user {
        ts.sort();
        let (mut start, mut end, mut count) = (ts[0], ts[0] + gap, 0);
        for t in ts {
            if t > end {
                want.push(format!("{start}\t{end}\t{u}\t{count}"));
                (start, count) = (t, 0);
            }
            end = end.max(t + gap);
            count += 1;
        }
        want.push(format!("{start}\t{end}\t{u}\t{count}"));
    }
    want.sort();
    let pipeline = format!(
        r#"
[node.events]
kind = "source"
plugin = "file"
config = {{ path = "/in/events.jsonl" }}
grants.dirs = [{{ host = "in", guest = "/in" }}]
watermarks = {{ timestamp = "json:ts", out_of_orderness = "1s" }}

[node.sessions]
kind = "operator"
plugin = "{plugin}"
input = "events"
config = {{ mode = "session", gap_ms = {gap} }}

[node.out]
kind = "sink"
plugin = "file"
input = "sessions"
config = {{ path = "/out/sessions.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        plugin = guest("event-time").display()
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(want.len() > 20, "the input needs several sessions per user");
    assert_eq!(sorted_lines(&dir.path().join("out/sessions.txt")), want);
}

#[test]
fn a_record_without_its_time_field_is_an_error_naming_the_node() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::write(
        dir.path().join("in/events.jsonl"),
        "{\"ts\":1}\n{\"user\":\"x\"}\n",
    )
    .unwrap();
    let pipeline = r#"
[node.events]
kind = "source"
plugin = "file"
config = { path = "/in/events.jsonl" }
grants.dirs = [{ host = "in", guest = "/in" }]
watermarks = { timestamp = "json:ts" }

[node.out]
kind = "sink"
plugin = "stdout"
input = "events"
"#;
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert_clean_failure(&o, &["node `events`", "no field `ts`", "{\"user\":\"x\"}"]);
    // A bad strategy is refused before anything runs, by key.
    std::fs::write(dir.path().join("q.toml"), pipeline.replace("json:ts", "ts")).unwrap();
    let o = run_weir(&["validate", "q.toml"], dir.path());
    assert_clean_failure(&o, &["node.events.watermarks.timestamp", "json:<field>"]);
}

#[test]
fn c_and_javascript_operators_get_timers_watermarks_and_finish() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let n = 300;
    let input: String = (0..n)
        .map(|i| format!("{{\"ts\":{}}}\n", (i * 7919) % 5000))
        .collect();
    std::fs::write(dir.path().join("in/events.jsonl"), &input).unwrap();
    let mut want: Vec<String> = input
        .lines()
        .map(|line| {
            let ts: i64 = line[6..line.len() - 1].parse().unwrap();
            format!("fired\t{line}\t{}", ts + 1000)
        })
        .collect();
    want.push(format!("finish\t{n}"));
    want.sort();
    for (lang, plugin) in [
        ("rust", guest("event-time")),
        ("c", timers_plugin("c")),
        ("js", timers_plugin("js")),
    ] {
        let pipeline = format!(
            r#"
[pipeline]
batch_size = 16

[node.events]
kind = "source"
plugin = "file"
config = {{ path = "/in/events.jsonl" }}
grants.dirs = [{{ host = "in", guest = "/in" }}]
watermarks = {{ timestamp = "json:ts", out_of_orderness = "5s", interval = "0s" }}

[node.timers]
kind = "operator"
plugin = "{plugin}"
input = "events"
config = {{ mode = "timers", delay_ms = 1000 }}

[node.out]
kind = "sink"
plugin = "file"
input = "timers"
config = {{ path = "/out/{lang}.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
            plugin = plugin.display()
        );
        std::fs::write(dir.path().join(format!("{lang}.toml")), pipeline).unwrap();
        let o = run_weir(&["run", &format!("{lang}.toml")], dir.path());
        assert!(o.status.success(), "{lang}: {}", stderr(&o));
        assert_eq!(
            sorted_lines(&dir.path().join(format!("out/{lang}.txt"))),
            want,
            "{lang}"
        );
    }
}

/// The windowed-counts example's pipeline at `parallelism` subtasks, its source throttled, with
/// windows of `window_ms`.
fn rescaled(pipeline: String, parallelism: u32, window_ms: u32) -> String {
    pipeline
        .replace("parallelism = 2", &format!("parallelism = {parallelism}"))
        .replace("window_ms = 60000", &format!("window_ms = {window_ms}"))
        .replace(
            "path = \"/in/events.jsonl\" }",
            "path = \"/in/events.jsonl\", rate = 3000 }",
        )
        .replace("interval = \"1s\"", "interval = \"200ms\"")
}

/// The windows are keyed state and the operator's struct is config: the example rescales
/// 2 → 3 through a savepoint and 3 → 1 through a SIGKILL with every window exact, and a new
/// `window_ms` after a restore takes effect (windows already closed keep their old size, the
/// rest of the input is counted in the new one).
#[test]
fn windowed_counts_rescale_two_three_one_and_take_a_new_window_size() {
    rescale_two_three_one(&guest("windowed-counts"));
}

/// The same with the example's Python operator (its `weir.Windows` on keyed state too).
#[test]
fn the_python_window_operator_rescales_two_three_one() {
    rescale_two_three_one(&python_windowed_counts());
}

fn rescale_two_three_one(plugin: &Path) {
    let scratch = scratch();
    let events = shuffled_events(24_000, 31, 5000);
    let original =
        std::fs::read_to_string(root().join("examples/windowed-counts/pipeline.toml")).unwrap();
    assert!(original.contains("partition = \"hash\"") && original.contains("parallelism = 2"));
    let dir = example_copy_with(scratch.path(), &events, |p| rescaled(p, 2, 60_000), plugin);
    precompile("pipeline.toml", &dir);
    // Parallelism 2, stopped with a savepoint.
    let mut first = spawn_weir_logging_checkpoints(&["run", "pipeline.toml"], &dir, 1);
    wait_for_checkpoints(&mut first, &dir, 1, 3);
    sigterm(&first);
    assert!(first.wait().unwrap().success(), "{}", attempt_log(&dir, 1));
    let out = std::fs::read_to_string(dir.join("attempt-1.out")).unwrap();
    let savepoint = printed_savepoint(&out)
        .unwrap_or_else(|| panic!("no savepoint printed:\n{out}\n{}", attempt_log(&dir, 1)));
    // Parallelism 3 from the savepoint, killed after checkpoints of its own.
    std::fs::write(
        dir.join("pipeline.toml"),
        rescaled(original.clone(), 3, 60_000),
    )
    .unwrap();
    let args = ["run", "--from-savepoint", &savepoint, "pipeline.toml"];
    let mut second = spawn_weir_logging_checkpoints(&args, &dir, 2);
    wait_for_checkpoints(&mut second, &dir, 2, 3);
    assert!(
        second.try_wait().unwrap().is_none(),
        "the input ran out before the kill: {}",
        attempt_log(&dir, 2)
    );
    second.kill().unwrap();
    second.wait().unwrap();
    // Parallelism 1 from the latest checkpoint, with 10 s windows from now on.
    std::fs::write(dir.join("pipeline.toml"), rescaled(original, 1, 10_000)).unwrap();
    let third = spawn_weir(&["run", "pipeline.toml"], &dir, 3)
        .wait()
        .unwrap();
    assert!(third.success(), "{}", attempt_log(&dir, 3));
    assert!(attempt_log(&dir, 3).contains("resuming from checkpoint"));
    // Every event is counted once; the windows of 60 s and of 10 s tile the input.
    let got = sorted_lines(&dir.join("out/counts.txt"));
    let total: u64 = got
        .iter()
        .map(|l| l.rsplit('\t').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, events.len() as u64, "every event counted once");
    let per_user = |lines: &[String]| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for l in lines {
            let mut f = l.split('\t').skip(1);
            let (u, c) = (f.next().unwrap(), f.next().unwrap());
            *m.entry(u.to_owned()).or_default() += c.parse::<u64>().unwrap();
        }
        m
    };
    assert_eq!(per_user(&got), per_user(&window_counts(&events, 60_000)));
    let ten = window_counts(&events, 10_000);
    let sixty = window_counts(&events, 60_000);
    let small = got
        .iter()
        .filter(|l| ten.contains(l) && !sixty.contains(l))
        .count();
    assert!(small > 0, "no window of the new size came out:\n{got:?}");
    for l in &got {
        assert!(
            ten.contains(l) || sixty.contains(l) || is_a_part_of_a_window(l, &events),
            "a window neither of the old nor of the new size: {l}"
        );
    }
}

/// Whether `line` counts the events of one user inside one window of 10 s or 60 s: the window
/// open across a change of size holds part of its events in each.
fn is_a_part_of_a_window(line: &str, events: &[Event]) -> bool {
    let mut f = line.split('\t');
    let start: i64 = f.next().unwrap().parse().unwrap();
    let user = f.next().unwrap();
    let count: usize = f.next().unwrap().parse().unwrap();
    [10_000, 60_000].iter().any(|size| {
        let inside = events
            .iter()
            .filter(|(u, ts)| u == user && *ts >= start && *ts < start + size)
            .count();
        start.rem_euclid(*size) == 0 && count <= inside
    })
}
