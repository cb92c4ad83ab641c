//! Plugins that misbehave fail their run cleanly, with a message naming the node, the plugin
//! and the cause; the host exits 1 and never panics. Plugins reach only what they are granted.

use crate::common::*;

/// sequence (1000 numbers) → test guest `guest_name` as node `bad` (extra lines) → stdout
fn pipeline_through(guest_name: &str, lines: &str) -> String {
    format!(
        r#"
[node.numbers]
kind = "source"
plugin = "sequence"
config = {{ count = 1000 }}

[node.bad]
kind = "operator"
plugin = "{plugin}"
input = "numbers"
{lines}

[node.out]
kind = "sink"
plugin = "stdout"
input = "bad"
"#,
        plugin = guest(guest_name).display()
    )
}

/// sequence → misbehave (mode, extra keys) → stdout
fn misbehave_pipeline(mode: &str, extra: &str) -> String {
    let config = format!("config = {{ mode = \"{mode}\", after = 10 }}");
    pipeline_through("misbehave", &format!("{extra}\n{config}"))
}

/// sequence → garbage-batch (reply) → stdout
fn garbage_pipeline(reply: &str) -> String {
    pipeline_through(
        "garbage-batch",
        &format!("config = {{ reply = \"{reply}\" }}"),
    )
}

#[test]
fn a_packed_batch_that_does_not_decode_fails_the_run_by_name() {
    let ok = run_pipeline(&garbage_pipeline("echo"));
    assert!(ok.status.success(), "{}", stderr(&ok));
    let lines: Vec<String> = stdout(&ok).lines().map(str::to_owned).collect();
    let want: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(
        lines, want,
        "the well-formed echo must pass every record through"
    );

    for (reply, detail) in [
        ("garbage", "does not decode"),
        ("trailing", "after the last record"),
    ] {
        let o = run_pipeline(&garbage_pipeline(reply));
        assert_clean_failure(
            &o,
            &[
                "node `bad`",
                "garbage_batch.wasm",
                "returned a packed batch that does not decode",
                detail,
                "in `process`",
            ],
        );
    }
}

fn run_pipeline(text: &str) -> std::process::Output {
    let dir = scratch();
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    run_weir(&["run", "p.toml"], dir.path())
}

#[test]
fn a_panicking_plugin_fails_the_run_with_its_message() {
    let o = run_pipeline(&misbehave_pipeline("panic", ""));
    assert_clean_failure(
        &o,
        &[
            "node `bad`",
            "misbehave.wasm",
            "panicked: misbehave: deliberate panic after 10 records",
            "in `process`",
        ],
    );
}

#[test]
fn a_plugin_error_fails_the_run_with_its_message() {
    let o = run_pipeline(&misbehave_pipeline("fail", ""));
    assert_clean_failure(
        &o,
        &[
            "node `bad`",
            "failed: misbehave: deliberate error after 10 records",
        ],
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_time_budget() {
    // Had the loop not been stopped, the run would never end: that it ends, naming the budget,
    // is the proof.
    let o = run_pipeline(&misbehave_pipeline("spin", "time_budget = \"300ms\""));
    assert_clean_failure(&o, &["node `bad`", "timed out", "300ms", "time_budget"]);
}

#[test]
fn unbounded_allocation_hits_the_memory_ceiling() {
    let o = run_pipeline(&misbehave_pipeline("hog", "memory = \"64MiB\""));
    assert_clean_failure(
        &o,
        &["node `bad`", "ran out of memory", "ceiling is 64 MiB"],
    );
}

#[test]
fn reading_outside_the_grants_is_denied() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("granted")).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "top secret").unwrap();
    for path in [
        "/etc/hostname",
        "/granted/../secret.txt",
        &dir.path().join("secret.txt").display().to_string(),
    ] {
        let text = format!(
            r#"
[node.numbers]
kind = "source"
plugin = "sequence"
config = {{ count = 1 }}

[node.snoop]
kind = "operator"
plugin = "{}"
input = "numbers"
config = {{ mode = "read", path = "{path}" }}
grants.dirs = [{{ host = "granted", guest = "/granted" }}]

[node.out]
kind = "sink"
plugin = "stdout"
input = "snoop"
"#,
            guest("misbehave").display()
        );
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        let o = run_weir(&["run", "p.toml"], dir.path());
        assert_clean_failure(
            &o,
            &["node `snoop`", &format!("reading {path} was refused")],
        );
        assert!(
            !stdout(&o).contains("top secret"),
            "the secret leaked for {path}"
        );
    }
}

#[test]
fn a_granted_file_is_readable_and_the_same_file_ungranted_is_not() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/in.txt"), "one\ntwo\n").unwrap();
    let pipeline = |grant: &str| {
        format!(
            "[node.lines]\nkind = \"source\"\nplugin = \"file\"\nconfig = {{ path = \"/data/in.txt\" }}\n{grant}\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"lines\"\n"
        )
    };
    std::fs::write(
        dir.path().join("p.toml"),
        pipeline("grants.dirs = [{ host = \"data\", guest = \"/data\" }]"),
    )
    .unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "one\ntwo\n");
    // The same pipeline without the grant (--fresh: the first run's final checkpoint would
    // otherwise say the job is done).
    std::fs::write(dir.path().join("p.toml"), pipeline("")).unwrap();
    let o = run_weir(&["run", "--fresh", "--yes", "p.toml"], dir.path());
    assert_clean_failure(
        &o,
        &["node `lines`", "cannot open /data/in.txt", "in `open`"],
    );
}

#[test]
fn a_read_only_grant_refuses_writes() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("ro")).unwrap();
    let text = format!(
        r#"
[restart]
strategy = "none"

[node.numbers]
kind = "source"
plugin = "sequence"
config = {{ count = 1 }}

[node.scribble]
kind = "operator"
plugin = "{}"
input = "numbers"
config = {{ mode = "write", path = "/ro/new.txt" }}
grants.dirs = [{{ host = "ro", guest = "/ro", mode = "read" }}]

[node.out]
kind = "sink"
plugin = "stdout"
input = "scribble"
"#,
        guest("misbehave").display()
    );
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert_clean_failure(&o, &["node `scribble`", "writing /ro/new.txt was refused"]);
    assert!(
        !dir.path().join("ro/new.txt").exists(),
        "the write went through"
    );
}

#[test]
fn a_long_run_on_a_terminal_shows_live_progress() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/input.txt"), sample_text(3000, 1)).unwrap();
    let text = "[node.lines]\nkind = \"source\"\nplugin = \"file\"\nconfig = { path = \"/in/input.txt\", rate = 1200 }\ngrants.dirs = [{ host = \"in\", guest = \"/in\" }]\n\n[node.out]\nkind = \"sink\"\nplugin = \"file\"\ninput = \"lines\"\nconfig = { path = \"/in/copy.txt\" }\ngrants.dirs = [{ host = \"in\", guest = \"/in\", mode = \"read-write\" }]\n";
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    // `script` (util-linux, in every Debian) runs weir on a pseudo-terminal.
    let weir_cmd = format!("{} run p.toml", env!("CARGO_BIN_EXE_weir"));
    let o = std::process::Command::new("script")
        .args(["-qec", &weir_cmd, "/dev/null"])
        .current_dir(dir.path())
        .env(
            "WEIR_CACHE_DIR",
            root().join("target").join("weir-test-cache"),
        )
        .output()
        .expect("run script");
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.contains("lines ") && shown.contains("/s |"),
        "no live progress:\n{shown}"
    );
    assert!(shown.contains("wall time"), "no summary:\n{shown}");
}
