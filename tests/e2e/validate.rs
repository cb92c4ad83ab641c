//! `weir validate` and `weir inspect`: every error case exits non-zero with a message that points
//! at the offending key; good files and plugins are described.

use crate::common::*;

fn validate(text: &str) -> std::process::Output {
    let dir = scratch();
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    run_weir(&["validate", "p.toml"], dir.path())
}

const SOURCE: &str = "[node.src]\nkind = \"source\"\nplugin = \"sequence\"\n";

#[test]
fn a_good_pipeline_validates() {
    let text =
        format!("{SOURCE}\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"src\"\n");
    let o = validate(&text);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("ok (2 nodes, 2 subtasks)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn inputs_are_shown_as_written_and_a_sink_in_the_middle_is_named_as_the_cause() {
    let text = format!(
        "{SOURCE}\n[node.count]\nkind = \"operator\"\nplugin = \"filter-map\"\ninput = \"src\"\n\n[node.late]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"count.late\"\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"count\"\n"
    );
    let o = validate(&text);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = |uid: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(uid))
            .unwrap_or_else(|| panic!("no line for {uid}:\n{out}"))
            .to_owned()
    };
    assert!(line("late").ends_with("← count.late"), "{out}");
    assert!(line("out").ends_with("← count"), "{out}");
    // Kinds are padded like the rest: the uids start in one column.
    let columns: std::collections::BTreeSet<usize> = ["src", "count", "late", "out"]
        .iter()
        .map(|uid| line(uid).find(&format!(" {uid} ")).unwrap())
        .collect();
    assert_eq!(columns.len(), 1, "{out}");
    // A middle node given the wrong kind: the message names its kind as the thing to fix.
    let wrong = text.replace(
        "[node.count]\nkind = \"operator\"\nplugin = \"filter-map\"",
        "[node.count]\nkind = \"sink\"\nplugin = \"stdout\"",
    );
    assert_clean_failure(
        &validate(&wrong),
        &["\"count\" is a sink", "node.count.kind"],
    );
}

/// What run's `open` refuses, validate refuses: a config key the plugin does not know, a
/// path outside the node's grants; and opening for validation leaves a job's files alone.
#[test]
fn validate_opens_every_plugin_as_run_does() {
    let dir = scratch();
    let d = dir.path();
    for sub in ["in", "out"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("in/x.txt"), "a\n").unwrap();
    // A crashed run's leftovers, which validate must not touch.
    std::fs::write(d.join("out/o.txt.inprogress"), "half").unwrap();
    let pipeline = |source_config: &str| {
        format!(
            "[node.src]\nkind = \"source\"\nplugin = \"file\"\nconfig = {{ {source_config} }}\ngrants.dirs = [{{ host = \"in\", guest = \"/in\" }}]\n\n[node.out]\nkind = \"sink\"\nplugin = \"file\"\ninput = \"src\"\nconfig = {{ path = \"/out/o.txt\" }}\ngrants.dirs = [{{ host = \"out\", guest = \"/out\", mode = \"read-write\" }}]\n"
        )
    };
    let check = |source_config: &str| {
        std::fs::write(d.join("p.toml"), pipeline(source_config)).unwrap();
        run_weir(&["validate", "p.toml"], d)
    };
    let o = check("path = \"/in/x.txt\"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.join("out/o.txt.inprogress")).unwrap(),
        "half",
        "validate changed the sink's files"
    );
    assert_clean_failure(
        &check("pth = \"/in/x.txt\""),
        &["node `src`", "unknown config key `pth`", "in `open`"],
    );
    assert_clean_failure(
        &check("path = \"/elsewhere/x.txt\""),
        &["node `src`", "/elsewhere/x.txt", "granted"],
    );
}

#[test]
fn bad_toml_is_reported_with_its_place() {
    let o = validate("[node.src\nkind = 1\n");
    assert_clean_failure(&o, &["p.toml", "line 1"]);
}

#[test]
fn a_file_that_is_not_text_says_so_once() {
    let dir = scratch();
    std::fs::write(dir.path().join("p.toml"), b"name = \"caf\xe9\"\n").unwrap();
    let o = run_weir(&["validate", "p.toml"], dir.path());
    assert_clean_failure(&o, &["cannot read pipeline file p.toml", "valid UTF-8"]);
    assert_eq!(
        stderr(&o).matches("valid UTF-8").count(),
        1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_unknown_key_is_named() {
    let o = validate(&format!("{SOURCE}parallelsm = 2\n"));
    assert_clean_failure(&o, &["parallelsm"]);
}

#[test]
fn a_missing_plugin_file_points_at_the_plugin_key() {
    let text = format!(
        "{SOURCE}\n[node.op]\nkind = \"operator\"\nplugin = \"nowhere/op.wasm\"\ninput = \"src\"\n"
    );
    assert_clean_failure(
        &validate(&text),
        &["node.op.plugin", "nowhere/op.wasm", "not found"],
    );
}

#[test]
fn an_unknown_builtin_lists_the_builtins() {
    let text =
        format!("{SOURCE}\n[node.out]\nkind = \"sink\"\nplugin = \"kafkaa\"\ninput = \"src\"\n");
    assert_clean_failure(
        &validate(&text),
        &[
            "node.out.plugin",
            "no built-in sink named \"kafkaa\"",
            "stdout, file",
        ],
    );
}

#[test]
fn a_plugin_of_the_wrong_kind_is_refused() {
    let text = format!(
        "{SOURCE}\n[node.out]\nkind = \"sink\"\nplugin = \"{}\"\ninput = \"src\"\n",
        guest("wordcount").display()
    );
    assert_clean_failure(
        &validate(&text),
        &[
            "node.out.plugin",
            "is an operator plugin, but the node is a sink",
        ],
    );
}

#[test]
fn a_cycle_is_refused_and_named() {
    let text = format!(
        "{SOURCE}\n[node.a]\nkind = \"operator\"\nplugin = \"filter-map\"\ninput = [\"src\", \"b\"]\n\n[node.b]\nkind = \"operator\"\nplugin = \"filter-map\"\ninput = \"a\"\n"
    );
    let o = validate(&text);
    assert_clean_failure(&o, &["cycle"]);
    let err = stderr(&o);
    assert!(
        err.contains("a → b → a") || err.contains("b → a → b"),
        "{err}"
    );
}

#[test]
fn an_input_naming_no_node_is_refused() {
    let text =
        format!("{SOURCE}\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"srcc\"\n");
    assert_clean_failure(
        &validate(&text),
        &["node.out.input", "no node named \"srcc\""],
    );
}

#[test]
fn a_sink_without_input_and_a_source_with_one_are_refused() {
    let o = validate(&format!(
        "{SOURCE}\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\n"
    ));
    assert_clean_failure(&o, &["node.out.input", "missing"]);
    let o = validate("[node.src]\nkind = \"source\"\nplugin = \"sequence\"\ninput = \"src\"\n");
    assert_clean_failure(&o, &["node.src.input", "a source takes no input"]);
}

#[test]
fn bad_sizes_durations_and_grants_are_named() {
    let o = validate(&format!("{SOURCE}memory = \"lots\"\n"));
    assert_clean_failure(&o, &["node.src.memory", "\"lots\""]);
    let o = validate(&format!("{SOURCE}time_budget = \"forever\"\n"));
    assert_clean_failure(&o, &["node.src.time_budget"]);
    let o = validate(&format!(
        "{SOURCE}grants.dirs = [{{ host = \"no-such-dir\", guest = \"/d\" }}]\n"
    ));
    assert_clean_failure(&o, &["node.src.grants.dirs[0].host", "does not exist"]);
}

#[test]
fn forward_edges_need_equal_parallelism() {
    let text = format!(
        "{SOURCE}\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"src\"\nparallelism = 2\n"
    );
    assert_clean_failure(&validate(&text), &["node.out.partition", "forward"]);
}

#[test]
fn inspect_describes_a_plugin() {
    let o = run_weir(&["inspect", guest("wordcount").to_str().unwrap()], &root());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("kind:    operator"), "{out}");
    assert!(
        out.contains("world:   weir:plugin/packed-operator-plugin@0.3.0"),
        "{out}"
    );
    assert!(
        out.contains("weir:plugin/host-log@0.3.0") && out.contains("weir:plugin/timers@0.3.0"),
        "imports should list host-log and timers:\n{out}"
    );
    assert!(
        out.contains("weir:plugin/state@0.3.0"),
        "exports should list state:\n{out}"
    );
}

#[test]
fn inspect_refuses_a_file_that_is_not_a_component() {
    let dir = scratch();
    std::fs::write(dir.path().join("junk.wasm"), b"definitely not wasm").unwrap();
    let o = run_weir(&["inspect", "junk.wasm"], dir.path());
    assert_clean_failure(&o, &["junk.wasm", "not a usable WebAssembly component"]);
}

#[test]
fn builtins_are_listed_by_kind_and_name() {
    let o = run_weir(&["builtins"], &root());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for (kind, name) in [
        ("source", "file"),
        ("source", "socket"),
        ("sink", "bucketed-file"),
        ("operator", "filter-map"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().take(2).eq([kind, name])),
            "{kind} {name} missing:\n{out}"
        );
    }
    // The columns line up: every description starts at the same place.
    let starts: std::collections::BTreeSet<usize> = out
        .lines()
        .map(|l| {
            // Past the kind, the spaces, the name and the spaces.
            let mut rest = l;
            for _ in 0..2 {
                rest = rest.trim_start_matches(|c| c != ' ').trim_start();
            }
            l.len() - rest.len()
        })
        .collect();
    assert_eq!(starts.len(), 1, "columns do not line up:\n{out}");
}

#[test]
fn help_is_there_for_every_command() {
    for cmd in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["validate", "--help"],
        vec!["inspect", "--help"],
        vec!["bench", "--help"],
        vec!["checkpoints", "--help"],
        vec!["checkpoints", "list", "--help"],
        vec!["builtins", "--help"],
    ] {
        let o = run_weir(&cmd, &root());
        assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage"), "{cmd:?}: {}", stdout(&o));
    }
}

/// Whatever `weir run` refuses at start, `weir validate` refuses too: settings included.
#[test]
fn validate_refuses_what_run_refuses() {
    let out = "\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"src\"\n";
    for (settings, needle) in [
        ("[checkpoint]\ninterval = \"0s\"\n", "checkpoint.interval"),
        ("[checkpoint]\ninterval = \"soon\"\n", "checkpoint.interval"),
        (
            "[checkpoint]\nmax_concurrent = 0\n",
            "checkpoint.max_concurrent",
        ),
        (
            "[restart]\nstrategy = \"none\"\ndelay = \"1s\"\n",
            "restart.delay",
        ),
        (
            "[restart]\nstrategy = \"fixed-delay\"\ninterval = \"1m\"\n",
            "restart.interval",
        ),
    ] {
        let text = format!("{settings}{SOURCE}{out}");
        let o = validate(&text);
        assert_clean_failure(&o, &[needle]);
        let dir = scratch();
        std::fs::write(dir.path().join("p.toml"), &text).unwrap();
        assert_clean_failure(&run_weir(&["run", "p.toml"], dir.path()), &[needle]);
    }
}

#[test]
fn a_plugin_path_that_is_a_directory_says_so() {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("op.wasm")).unwrap();
    let text = format!(
        "{SOURCE}\n[node.op]\nkind = \"operator\"\nplugin = \"op.wasm\"\ninput = \"src\"\n"
    );
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    assert_clean_failure(
        &run_weir(&["validate", "p.toml"], dir.path()),
        &["node.op.plugin", "is a directory"],
    );
}

/// Every built-in refuses config keys it does not know, naming the key and the known ones.
#[test]
fn a_built_in_refuses_an_unknown_config_key() {
    let dir = scratch();
    // The default restart strategy: a config error is not restarted (it would fail again).
    let text = "[node.src]\nkind = \"source\"\nplugin = \"sequence\"\nconfig = { count = 10, rate = 5 }\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"src\"\nconfig = { with_key = true }\n";
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert_clean_failure(
        &o,
        &[
            "node `src`",
            "unknown config key `rate`",
            "known keys: count, values, value_size",
            "not restarted",
        ],
    );
    assert!(!stderr(&o).contains("restart 1"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "records flowed despite the typo");
}
