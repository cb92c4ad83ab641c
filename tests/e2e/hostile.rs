//! A plugin may be malicious. Each test plays one trick a hostile plugin author would try and
//! asserts that the host stays up (exit 1, no panic), names the right node and cause, and that
//! nothing outside the grants changed. See docs/security.md.

use crate::common::*;
use std::path::Path;

/// sequence (`count` numbers, batches of 10) → hostile (`config`, `extra` node keys) as node
/// `bad` → stdout
fn hostile_pipeline(count: u32, config: &str, extra: &str) -> String {
    format!(
        r#"
[pipeline]
batch_size = 10

[restart]
strategy = "none"

[node.numbers]
kind = "source"
plugin = "sequence"
config = {{ count = {count} }}

[node.bad]
kind = "operator"
plugin = "{plugin}"
input = "numbers"
config = {{ {config} }}
{extra}

[node.out]
kind = "sink"
plugin = "stdout"
input = "bad"
"#,
        plugin = guest("hostile").display()
    )
}

fn run_in(dir: &Path, text: &str) -> std::process::Output {
    std::fs::write(dir.join("p.toml"), text).unwrap();
    run_weir(&["run", "p.toml"], dir)
}

/// Every line of weir's stderr; none may carry raw control characters from a plugin.
fn assert_no_raw_control(err: &str) {
    for c in ['\x1b', '\r', '\u{202e}', '\u{9b}'] {
        assert!(!err.contains(c), "raw {c:?} reached stderr:\n{err:?}");
    }
}

/// Trick 1: A grant that reaches the job's state directory (or, read-write, the pipeline file) is
/// refused before anything runs; a savepoint is never written through a planted link.
#[test]
fn grants_cannot_reach_the_hosts_own_files_and_planted_links_are_not_followed() {
    let dir = scratch();
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    // The pipeline's own directory (holds .weir/ and p.toml), read-write or read.
    for mode in ["read-write", "read"] {
        let text = hostile_pipeline(
            10,
            "mode = \"pass\"",
            &format!("grants.dirs = [{{ host = \".\", guest = \"/p\", mode = \"{mode}\" }}]"),
        );
        std::fs::write(d.join("p.toml"), &text).unwrap();
        for cmd in ["validate", "run"] {
            let o = run_weir(&[cmd, "p.toml"], d);
            assert_clean_failure(
                &o,
                &["node.bad.grants.dirs[0].host", "state directory", ".weir"],
            );
        }
    }
    // A link to the state directory from inside a harmless-looking grant.
    std::fs::create_dir_all(d.join(".weir/p")).unwrap();
    std::os::unix::fs::symlink(d.join(".weir"), d.join("data/state")).unwrap();
    let o = run_in(
        d,
        &hostile_pipeline(
            10,
            "mode = \"pass\"",
            "grants.dirs = [{ host = \"data/state\", guest = \"/s\", mode = \"read-write\" }]",
        ),
    );
    assert_clean_failure(&o, &["node.bad.grants.dirs[0].host", "state directory"]);

    // Links planted (by anyone) where savepoints will go are never followed: a stop with a
    // savepoint leaves their targets alone and writes a fresh directory.
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let savepoints = d.join(".weir/p/savepoints");
    for id in 1..=40 {
        let planted = savepoints.join(format!("savepoint-{id}"));
        std::fs::create_dir_all(&planted).unwrap();
        for f in [
            "numbers.0.state",
            "bad.0.state",
            "out.0.state",
            "_metadata.json",
        ] {
            std::os::unix::fs::symlink(&victim, planted.join(f)).unwrap();
        }
        std::os::unix::fs::symlink(d.join(format!("new-{id}")), planted.join("x.state")).unwrap();
    }
    let text = hostile_pipeline(10_000_000, "mode = \"pass\"", "").replace(
        "batch_size = 10",
        "batch_size = 10\n[checkpoint]\ninterval = \"200ms\"",
    );
    std::fs::write(d.join("p.toml"), &text).unwrap();
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 0);
    wait_for_a_checkpoint(&mut child, d, 0);
    sigterm(&child);
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(d.join("attempt-0.err")).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("stopped with savepoint"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    for id in 1..=40 {
        assert!(
            !d.join(format!("new-{id}")).exists(),
            "a planted link was followed"
        );
    }
}

/// Trick 2: Time blocked in a host call counts against the budget, and a stop does not wait on it
/// past its grace.
#[test]
fn a_plugin_blocked_in_the_host_is_stopped_by_its_budget_and_by_a_stop() {
    let dir = scratch();
    let o = run_in(
        dir.path(),
        &hostile_pipeline(100, "mode = \"sleep\"", "time_budget = \"2s\""),
    );
    assert_clean_failure(
        &o,
        &["node `bad`", "timed out", "2s", "blocked in a host call"],
    );

    // With a budget of an hour, a SIGTERM ends the job after the stop grace, without a
    // savepoint but cleanly.
    let text = hostile_pipeline(100, "mode = \"sleep\"", "time_budget = \"1h\"");
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let mut child = spawn_weir(&["run", "--stop-grace", "2s", "p.toml"], dir.path(), 0);
    let log = dir.path().join("attempt-0.err");
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("sleeping for an hour")
    {
        assert!(child.try_wait().unwrap().is_none(), "weir ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sigterm(&child);
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("did not complete within 2s"), "{err}");
    assert!(!err.contains("panicked at"), "{err}");
}

/// The hostile guest with a core module of `memories` memories of `pages` 64 KiB pages each
/// appended, instantiated when the component is: a component with many linear memories.
fn with_extra_memories(memories: usize, pages: u32) -> Vec<u8> {
    let component = std::fs::read(guest("hostile")).unwrap();
    assert_eq!(
        &component[4..8],
        &[0x0d, 0x00, 0x01, 0x00],
        "not a component"
    );
    // Count the core modules already defined (top-level section 1): ours gets the next index.
    let (mut at, mut modules) = (8, 0u32);
    while at < component.len() {
        let id = component[at];
        let (size, n) = leb(&component[at + 1..]);
        if id == 1 {
            modules += 1;
        }
        at += 1 + n + size as usize;
    }
    let module = wat::parse_str(format!(
        "(module {})",
        (0..memories)
            .map(|_| format!("(memory {pages})"))
            .collect::<String>()
    ))
    .unwrap();
    let mut out = component;
    section(&mut out, 1, &module);
    // One core instance: (instantiate <modules> with no arguments).
    let mut instance = vec![1, 0x00];
    push_leb(&mut instance, modules as u64);
    instance.push(0);
    section(&mut out, 2, &instance);
    out
}

fn section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
    out.push(id);
    push_leb(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn push_leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn leb(bytes: &[u8]) -> (u64, usize) {
    let (mut v, mut shift) = (0u64, 0);
    for (i, b) in bytes.iter().enumerate() {
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (v, i + 1);
        }
        shift += 7;
    }
    panic!("truncated LEB128");
}

/// Trick 3: The memory ceiling is per instance, all memories and tables together: 13 memories of
/// 60 MiB each (each under a 64 MiB ceiling on its own) are refused together, by name; the
/// same component with small memories runs.
#[test]
fn the_memory_ceiling_holds_for_all_memories_of_an_instance() {
    let dir = scratch();
    std::fs::write(dir.path().join("big.wasm"), with_extra_memories(13, 960)).unwrap();
    std::fs::write(dir.path().join("small.wasm"), with_extra_memories(4, 1)).unwrap();
    let pipeline = |file: &str| {
        hostile_pipeline(100, "mode = \"pass\"", "memory = \"64MiB\"")
            .replace(&guest("hostile").display().to_string(), file)
    };
    let o = run_in(dir.path(), &pipeline("big.wasm"));
    assert_clean_failure(
        &o,
        &[
            "node `bad`",
            "ran out of memory",
            "ceiling is 64 MiB",
            "in `instantiate`",
        ],
    );
    let o = run_in(dir.path(), &pipeline("small.wasm"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 100);

    // Many tiny memories: the count is capped too (32 per instance), whatever their size.
    let dir = scratch();
    std::fs::write(dir.path().join("many.wasm"), with_extra_memories(40, 0)).unwrap();
    let o = run_in(dir.path(), &pipeline("many.wasm"));
    assert_clean_failure(&o, &["node `bad`", "could not start", "memory"]);

    // Building a reply past the ceiling stops the plugin before the host sees the reply.
    let dir = scratch();
    let o = run_in(
        dir.path(),
        &hostile_pipeline(
            100,
            "mode = \"flood-reply\", records = 3000000",
            "memory = \"64MiB\"",
        ),
    );
    assert_clean_failure(
        &o,
        &["node `bad`", "ran out of memory", "ceiling is 64 MiB"],
    );
}

/// Trick 4: What a plugin returns is bounded while it is decoded, and the producer is blamed.
#[test]
fn oversized_replies_are_refused_and_blamed_on_their_producer() {
    let dir = scratch();
    let o = run_in(
        dir.path(),
        &hostile_pipeline(100, "mode = \"flood-reply\", records = 200000", ""),
    );
    assert_clean_failure(
        &o,
        &[
            "node `bad`",
            "returned too much",
            "200000 records (limit 100000)",
        ],
    );
    assert!(!stderr(&o).contains("node `out`"), "{}", stderr(&o));
    let o = run_in(
        dir.path(),
        &hostile_pipeline(
            100,
            "mode = \"flood-reply\", records = 2, headers = 600",
            "max_reply_headers = 1000",
        ),
    );
    assert_clean_failure(&o, &["node `bad`", "returned too much", "headers"]);
}

/// Trick 5: A plugin cannot take the process's descriptors: its own handle limit stops it, by name.
#[test]
fn holding_descriptors_hits_the_plugins_own_limit() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/f"), "x").unwrap();
    let o = run_in(
        dir.path(),
        &hostile_pipeline(
            100,
            "mode = \"hold-files\", path = \"/data/f\"",
            "max_handles = 64\ngrants.dirs = [{ host = \"data\", guest = \"/data\" }]",
        ),
    );
    assert_clean_failure(
        &o,
        &["node `bad`", "more than 64 open handles", "max_handles"],
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/f")).unwrap(),
        "x"
    );
}

/// Trick 6: A plugin's words never pass for the host's diagnosis or reach the terminal raw.
#[test]
fn plugin_text_is_escaped_attributed_and_rate_limited() {
    let dir = scratch();
    // A forged "panic" followed by an endless loop is reported as the timeout it is.
    let o = run_in(
        dir.path(),
        &hostile_pipeline(100, "mode = \"forge-panic\"", "time_budget = \"500ms\""),
    );
    assert_clean_failure(&o, &["node `bad`", "timed out"]);
    assert!(!stderr(&o).contains("panicked: forged"), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad[0]: panic: forged by the plugin"));

    // An error message with newlines, a forged error line and escape sequences.
    let o = run_in(
        dir.path(),
        &hostile_pipeline(100, "mode = \"forge-error\"", ""),
    );
    assert_clean_failure(&o, &["node `bad`", "failed: one\\nerror: node `out`"]);
    let err = stderr(&o);
    assert_no_raw_control(&err);
    assert!(
        !err.lines().any(|l| l.starts_with("error: node `out`")),
        "a forged line stands alone:\n{err}"
    );

    // Raw stderr is not granted: it becomes an escaped, attributed warning.
    let dir = scratch();
    let o = run_in(dir.path(), &hostile_pipeline(100, "mode = \"stderr\"", ""));
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_no_raw_control(&err);
    assert!(
        err.contains("bad[0]: \\u{1b}[31merror: node `out` failed"),
        "{err}"
    );

    // A million lines and one of 16 MiB: a bounded number reach the log, the rest are counted.
    let dir = scratch();
    let o = run_in(
        dir.path(),
        &hostile_pipeline(100, "mode = \"flood\", lines = 1000000", "log_rate = 50"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let shown = err.lines().filter(|l| l.contains("flood line")).count();
    assert!(shown <= 600, "{shown} flood lines reached the log");
    assert!(
        err.contains("log line(s) dropped"),
        "no count of dropped lines"
    );
    assert!(err.len() < 1 << 20, "stderr grew to {} bytes", err.len());
    assert_eq!(stdout(&o).lines().count(), 100, "the job went on");
}

/// Trick 7: `weir validate` refuses a component that imports what the host does not provide.
#[test]
fn validate_refuses_a_component_with_imports_weir_does_not_provide() {
    let dir = scratch();
    let component = wat::parse_str(
        r#"(component
            (import "acme:evil/backdoor@1.0.0" (instance (export "open" (func))))
            (instance $state)
            (instance $op)
            (export "weir:plugin/state@0.1.0" (instance $state))
            (export "weir:plugin/packed-operator@0.1.0" (instance $op)))"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("evil.wasm"), component).unwrap();
    let text = hostile_pipeline(10, "mode = \"pass\"", "")
        .replace(&guest("hostile").display().to_string(), "evil.wasm");
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    for cmd in ["validate", "run"] {
        let o = run_weir(&[cmd, "p.toml"], dir.path());
        assert_clean_failure(
            &o,
            &[
                "node.bad.plugin",
                "evil.wasm",
                "imports what weir does not provide",
                "acme:evil/backdoor",
            ],
        );
    }
}

/// Trick 8: sockets beyond the grants (UDP, ungranted TCP) are refused, quickly.
#[test]
fn udp_and_ungranted_connects_are_refused() {
    let dir = scratch();
    let o = run_in(dir.path(), &hostile_pipeline(10, "mode = \"udp\"", ""));
    assert_clean_failure(&o, &["node `bad`", "udp refused"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let o = run_in(
        dir.path(),
        &hostile_pipeline(10, &format!("mode = \"connect\", addr = \"{addr}\""), ""),
    );
    assert_clean_failure(&o, &["node `bad`", "refused"]);
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the plugin reached the listener"
    );
}

/// sequence (`count`) → hostile poison operator `bad` (`on_error`, failing as `how` on 13 and
/// 500) → file sink out/out.txt, and (dead-letter) `bad.dead-letter` → file sink out/dead.txt
fn poison_pipeline(count: u32, on_error: &str, how: &str) -> String {
    let dead = if on_error == "dead-letter" {
        "\n[node.dead]\nkind = \"sink\"\nplugin = \"file\"\ninput = \"bad.dead-letter\"\nconfig = { path = \"/out/dead.txt\" }\ngrants.dirs = [{ host = \"out\", guest = \"/out\", mode = \"read-write\" }]\n"
    } else {
        ""
    };
    format!(
        r#"
[pipeline]
batch_size = 64

[checkpoint]
interval = "100ms"

[node.numbers]
kind = "source"
plugin = "sequence"
config = {{ count = {count} }}

[node.bad]
kind = "operator"
plugin = "{plugin}"
input = "numbers"
on_error = "{on_error}"
time_budget = "300ms"
config = {{ mode = "poison", poison = "13,500", how = "{how}" }}

[node.out]
kind = "sink"
plugin = "file"
input = "bad"
config = {{ path = "/out/out.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
{dead}"#,
        plugin = guest("hostile").display()
    )
}

/// Poison records: with `dead-letter` the records an operator fails on (error, panic or
/// endless loop) go to `<node>.dead-letter` and the rest flow exactly once, in order; with
/// `skip` they are dropped and counted; with the default `fail` the job fails by name.
#[test]
fn poison_records_are_isolated_instead_of_failing_the_job_forever() {
    let want: String = (0..2000)
        .filter(|n| *n != 13 && *n != 500)
        .map(|n| format!("{n}\n"))
        .collect();
    for how in ["error", "panic", "spin"] {
        let dir = scratch();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        let o = run_in(dir.path(), &poison_pipeline(2000, "dead-letter", how));
        assert!(o.status.success(), "{how}: {}", stderr(&o));
        let out = std::fs::read_to_string(dir.path().join("out/out.txt")).unwrap();
        assert!(
            out == want,
            "{how}: the output is not every other record once, in order"
        );
        let dead = std::fs::read_to_string(dir.path().join("out/dead.txt")).unwrap();
        assert_eq!(dead, "13\n500\n", "{how}");
        assert!(
            stderr(&o).contains("bad: 2 poison record(s) skipped or dead-lettered"),
            "{how}: {}",
            stderr(&o)
        );
    }
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let o = run_in(dir.path(), &poison_pipeline(2000, "skip", "panic"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(dir.path().join("out/out.txt")).unwrap() == want);
    assert!(stderr(&o).contains("skipped a record"), "{}", stderr(&o));

    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let text = poison_pipeline(2000, "fail", "error").replace(
        "batch_size = 64",
        "batch_size = 64\n[restart]\nstrategy = \"none\"",
    );
    let o = run_in(dir.path(), &text);
    assert_clean_failure(&o, &["node `bad`", "poisoned by 13"]);
}

/// A dead letter carries the record's own headers (here the file source's coordinates, with
/// `with_metadata = true`) and headers naming the failure, node, plugin, time and backtrace.
#[test]
fn a_dead_letter_names_its_failure_and_where_the_record_came_from() {
    let dir = scratch();
    for d in ["in", "out"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let input: String = (0..100).map(|n| format!("{n}\n")).collect();
    std::fs::write(dir.path().join("in/numbers.txt"), input).unwrap();
    let hostile = guest("hostile");
    let o = run_in(
        dir.path(),
        &format!(
            r#"
[node.numbers]
kind = "source"
plugin = "file"
config = {{ path = "/in/numbers.txt", with_metadata = true }}
grants.dirs = [{{ host = "in", guest = "/in" }}]

[node.bad]
kind = "operator"
plugin = "{plugin}"
input = "numbers"
on_error = "dead-letter"
config = {{ mode = "poison", poison = "13", how = "panic" }}

[node.show]
kind = "operator"
plugin = "{plugin}"
input = "bad.dead-letter"
config = {{ mode = "show-headers" }}

[node.out]
kind = "sink"
plugin = "file"
input = "bad"
config = {{ path = "/out/out.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]

[node.dead]
kind = "sink"
plugin = "file"
input = "show"
config = {{ path = "/out/dead.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
            plugin = hostile.display()
        ),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dead = std::fs::read_to_string(dir.path().join("out/dead.txt")).unwrap();
    // "0\n".."9\n" take 20 bytes, "10\n".."12\n" 9 more: line 13 starts at byte 29.
    for needle in [
        "13|file.path=/in/numbers.txt|file.offset=29|",
        "|weir.error=",
        "hostile: poisoned by 13",
        "|weir.node=bad",
        &format!("|weir.plugin={}", hostile.display()),
        "|weir.elapsed_ms=",
        "|weir.backtrace=",
    ] {
        assert!(dead.contains(needle), "{needle:?} not in {dead:?}");
    }
    assert_eq!(dead.lines().count(), 1, "{dead}");
}
