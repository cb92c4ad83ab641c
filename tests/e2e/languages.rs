//! The conformance suite: one set of behaviours every operator plugin must show, run against the
//! same word count built in Rust, C, Python and JavaScript (examples/wordcount*). Each test runs
//! all four and names the language that fails.

use crate::common::*;
use std::path::Path;

/// ASCII words plus lowercase accented ones: text on which the four word rules agree (see each
/// example's notes on Unicode).
fn conformance_text(lines: usize) -> String {
    sample_text(lines, 42).replace("COMPONENT", "Component")
}

fn pipeline(plugin: &Path, settings: &str, count_extra: &str) -> String {
    format!(
        r#"
{settings}

[node.lines]
kind = "source"
plugin = "file"
config = {{ path = "/in/input.txt" }}
grants.dirs = [{{ host = "in", guest = "/in" }}]

[node.count]
kind = "operator"
plugin = "{plugin}"
input = "lines"
{count_extra}

[node.out]
kind = "sink"
plugin = "file"
input = "count"
config = {{ path = "/out/counts.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        plugin = plugin.display()
    )
}

fn setup(text: &str, pipeline: &str) -> tempfile::TempDir {
    let dir = scratch();
    for d in ["in", "out"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    std::fs::write(dir.path().join("in/input.txt"), text).unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    dir
}

fn output(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("out/counts.txt")).unwrap_or_default()
}

#[test]
fn every_build_produces_the_reference_output() {
    let text = conformance_text(20_000);
    let want = expected_updates(&text);
    for lang in LANGS {
        let dir = setup(&text, &pipeline(&lang_plugin(lang), "", ""));
        let o = run_weir(&["run", "p.toml"], dir.path());
        assert!(o.status.success(), "{lang}: {}", stderr(&o));
        assert!(
            output(dir.path()) == want,
            "{lang}: output differs from the reference"
        );
    }
}

#[test]
fn every_build_continues_identically_after_snapshot_and_restore_into_a_fresh_instance() {
    let text = conformance_text(60_000);
    let want = expected_updates(&text);
    for lang in LANGS {
        // Stop with a savepoint mid-stream (the source is throttled so there is a middle), then
        // resume: the fresh instance gets the old one's snapshot.
        let p = throttled(
            &pipeline(&lang_plugin(lang), "[checkpoint]\ninterval = \"200ms\"", ""),
            20_000,
        );
        let dir = setup(&text, &p);
        let mut child = spawn_weir(&["run", "p.toml"], dir.path(), 1);
        // Stop once a first checkpoint has published something: wait for that event, however
        // long start-up takes on a loaded machine (no deadline), unless the run ends first.
        while output(dir.path()).is_empty() {
            if let Some(status) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(dir.path().join("attempt-1.err"));
                panic!("{lang}: weir ended ({status}) before publishing anything: {err:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        sigterm(&child);
        assert!(
            child.wait().unwrap().success(),
            "{lang}: stop with savepoint failed"
        );
        let partial = output(dir.path()).len();
        assert!(
            partial > 0 && partial < want.len(),
            "{lang}: the stop did not land mid-stream"
        );
        let out = std::fs::read_to_string(dir.path().join("attempt-1.out")).unwrap();
        let savepoint = out
            .lines()
            .find_map(|l| l.split_once(": ").map(|(_, p)| p.to_owned()))
            .unwrap();
        let o = run_weir(
            &["run", "--from-savepoint", &savepoint, "p.toml"],
            dir.path(),
        );
        assert!(o.status.success(), "{lang}: {}", stderr(&o));
        assert!(
            output(dir.path()) == want,
            "{lang}: output after restore differs"
        );
    }
}

#[test]
fn every_build_recovers_exactly_from_sigkill() {
    // Throttled below each build's pace, so checkpoints complete between kills: an interpreter
    // behind a long queue would make every barrier wait longer than the kill interval.
    for (lang, lines, rate) in [
        ("rust", 200_000, 80_000),
        ("c", 200_000, 80_000),
        ("python", 60_000, 15_000),
        ("js", 60_000, 15_000),
    ] {
        let text = conformance_text(lines);
        let want = expected_updates(&text);
        let p = throttled(
            &pipeline(&lang_plugin(lang), "[checkpoint]\ninterval = \"100ms\"", ""),
            rate,
        );
        let dir = setup(&text, &p);
        crash_loop(&["run", "p.toml"], dir.path(), 3, 300, 700);
        assert!(
            output(dir.path()) == want,
            "{lang}: output after SIGKILLs differs"
        );
    }
}

/// The word count with its counts in keyed state (wit/v0.2) in C, Python and JavaScript: exact
/// through SIGKILLs, and its state answers `weir state get` (values stored as JSON numbers).
#[test]
fn every_build_keeps_counts_in_keyed_state_through_sigkills_and_answers_queries() {
    for (lang, lines, rate) in [
        ("c", 200_000, 40_000),
        ("python", 40_000, 8_000),
        ("js", 20_000, 4_000),
    ] {
        let text = conformance_text(lines);
        let want = expected_updates(&text);
        let p = throttled(
            &pipeline(
                &keyed_plugin(lang),
                "[checkpoint]\ninterval = \"100ms\"",
                "",
            ),
            rate,
        );
        let dir = setup(&text, &p);
        crash_loop(&["run", "p.toml"], dir.path(), 3, 300, 700);
        assert!(
            output(dir.path()) == want,
            "{lang}: output after SIGKILLs differs"
        );
        let got = run_weir(&["state", "get", "p.toml", "count", "weir"], dir.path());
        assert_eq!(
            stdout(&got),
            format!("counts\t{}\n", count_words(&text)["weir"]),
            "{lang}: {}",
            stderr(&got)
        );
    }
}

/// The failure-path guest in `lang` as node `count`, with `extra` settings on the node.
fn faulty(lang: &str, extra: &str) -> String {
    let (plugin, config) = if lang == "rust" {
        (guest("misbehave"), "config = { mode = \"on-value\" }")
    } else {
        (faulty_plugin(lang), "")
    };
    pipeline(
        &plugin,
        "[restart]\nstrategy = \"none\"",
        &format!("{config}\n{extra}"),
    )
}

#[test]
fn a_guest_error_is_a_clear_host_error_naming_the_node() {
    for lang in LANGS {
        let dir = setup("some words\nfail\nmore\n", &faulty(lang, ""));
        let o = run_weir(&["run", "p.toml"], dir.path());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{lang}: {err}");
        assert!(
            err.contains("node `count`") && err.contains("asked to fail by the input"),
            "{lang}: {err}"
        );
        if *lang == "python" {
            // The line of the plugin's own code that raised, not the SDK's.
            assert!(err.contains("(at faulty.py:14 in process"), "{err}");
        }
    }
}

#[test]
fn the_memory_ceiling_is_enforced_in_every_build() {
    for lang in LANGS {
        let dir = setup("some words\nhog\n", &faulty(lang, "memory = \"96MiB\""));
        let o = run_weir(&["run", "p.toml"], dir.path());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{lang}: {err}");
        assert!(
            !err.contains("panicked at"),
            "{lang}: the host panicked: {err}"
        );
        assert!(
            err.contains("node `count`")
                && err.contains("ran out of memory")
                && err.contains("ceiling is 96 MiB"),
            "{lang}: {err}"
        );
    }
}

#[test]
fn growing_guests_are_recycled_transparently() {
    // Many distinct words make the guests' heaps grow; a low high-water mark makes the host
    // swap instances (snapshot → fresh instance → restore) many times mid-stream.
    let text: String = (0..60_000)
        .map(|i| format!("word{i} shared{}\n", i % 7))
        .collect();
    let want = expected_updates(&text);
    // Marks just above each runtime's starting heap (CPython ≈ 14 MB, StarlingMonkey ≈ 12 MB).
    for (lang, mark) in [("python", "15MiB"), ("js", "16MiB")] {
        let extra = format!("recycle_above = \"{mark}\"");
        let dir = setup(&text, &pipeline(&lang_plugin(lang), "", &extra));
        let o = run_weir(&["run", "p.toml"], dir.path());
        let err = stderr(&o);
        assert!(o.status.success(), "{lang}: {err}");
        assert!(
            err.contains("count[0]: recycled the instance"),
            "{lang}: never recycled:\n{err}"
        );
        assert!(
            output(dir.path()) == want,
            "{lang}: recycling changed the output"
        );
    }
}

/// FNV-1a over the bytes of `files` (and their names): a cache key for built templates.
fn hash_files(files: &[std::path::PathBuf]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in files {
        for b in p
            .to_string_lossy()
            .bytes()
            .chain(std::fs::read(p).unwrap_or_default())
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Every file under `dir`, sorted.
fn tree(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `weir new` a project, build it (or take the cached build of identical sources), run it.
fn new_build_run(lang: &str, kind: &str) -> String {
    let dir = scratch();
    let name = format!("my-{lang}-{kind}");
    let o = run_weir(&["new", &name, "--lang", lang, "--kind", kind], dir.path());
    assert!(o.status.success(), "{lang} {kind}: {}", stderr(&o));
    let project = dir.path().join(&name);
    for f in ["README.md", "pipeline.toml", "build.sh"] {
        assert!(project.join(f).exists(), "{lang} {kind}: no {f}");
    }
    // The key covers the generated files (their names relative to the project) and everything
    // they build against; the scratch path itself must not change it.
    let mut h = hash_files(&[
        root().join("wit/weir.wit"),
        root().join("wit/v0.2/weir.wit"),
    ]);
    let guest_support = tree(&root().join("guest-sdk")).into_iter().filter(|p| {
        !p.to_string_lossy().contains("node_modules")
            && !p.to_string_lossy().contains("__pycache__")
    });
    for p in tree(&project).into_iter().chain(guest_support) {
        let rel = p
            .strip_prefix(&project)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read(&p)
            .unwrap()
            .into_iter()
            .chain(rel.into_bytes());
        for b in text {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let cache = root()
        .join("target/new-cache")
        .join(format!("{lang}-{kind}-{h:016x}.wasm"));
    let wasm = project.join(format!("{name}.wasm"));
    if cache.exists() {
        std::fs::copy(&cache, &wasm).unwrap();
    } else {
        let o = std::process::Command::new("bash")
            .arg(project.join("build.sh"))
            .env("CARGO_TARGET_DIR", root().join("target/new-template"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{lang} {kind}: build failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        std::fs::copy(&wasm, &cache).unwrap();
    }
    let plugin_kind = match kind {
        "filter" | "map" => "operator",
        k => k,
    };
    let inspect = stdout(&run_weir(&["inspect", wasm.to_str().unwrap()], &project));
    assert!(
        inspect.contains(&format!("kind:    {plugin_kind}")),
        "{lang} {kind}: {inspect}"
    );
    // The newest contract for the language and kind: 0.3.0 (config as one document) but in C,
    // whose operators and packed sources are on 0.2.0 (event time, keyed state) and sinks on
    // 0.1.0; every SDK in the packed batch form.
    let newest = match (lang, plugin_kind) {
        ("c", "sink") => "@0.1.0",
        ("c", _) => "@0.2.0",
        _ => "@0.3.0",
    };
    assert!(
        inspect
            .lines()
            .any(|l| l.starts_with("world:") && l.ends_with(newest)),
        "{lang} {kind}: not built against the newest contract ({newest}):\n{inspect}"
    );
    assert!(
        inspect.contains("batches: packed"),
        "{lang} {kind}: not packed:\n{inspect}"
    );
    let o = run_weir(&["run", "pipeline.toml"], &project);
    assert!(o.status.success(), "{lang} {kind}: {}", stderr(&o));
    stdout(&o)
}

/// What `weir new` prints runs as printed: the weir it names is this binary, on the PATH or by
/// its full path.
#[test]
fn weir_new_prints_a_command_that_names_this_weir() {
    let dir = scratch();
    let o = run_weir(&["new", "printed"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains("bash build.sh"))
        .unwrap_or_else(|| panic!("no command printed:\n{out}"));
    let weir = line
        .rsplit(" && ")
        .next()
        .unwrap()
        .strip_suffix(" run pipeline.toml")
        .unwrap_or_else(|| panic!("{line}"))
        .trim();
    let me = std::path::Path::new(env!("CARGO_BIN_EXE_weir"))
        .canonicalize()
        .unwrap();
    let named = if weir == "weir" {
        std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join("weir"))
            .find(|p| p.is_file())
            .expect("`weir` printed, but none is on the PATH")
    } else {
        std::path::PathBuf::from(weir)
    };
    assert_eq!(named.canonicalize().unwrap(), me, "{line}");
}

/// The windowed example's Python operator (keyed event-time windows: timers, watermarks, the
/// late output) in a project `weir new --lang python` made, built by that project's own script.
#[test]
fn the_python_template_builds_the_windowed_example_that_runs() {
    let dir = scratch();
    let o = run_weir(&["new", "windows", "--lang", "python"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let project = dir.path().join("windows");
    std::fs::copy(
        root().join("examples/windowed-counts/python/app.py"),
        project.join("app.py"),
    )
    .unwrap();
    let o = std::process::Command::new("bash")
        .arg(project.join("build.sh"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "build failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // The example's pipeline, its events in in/ and its state in the scratch directory.
    let example = root().join("examples/windowed-counts");
    let pipeline = std::fs::read_to_string(example.join("pipeline.toml"))
        .unwrap()
        .replace(
            "windowed-counts.wasm",
            project.join("windows.wasm").to_str().unwrap(),
        )
        .replace("dir = \"../.weir/windowed-counts\"", "")
        .replace(
            "host = \".\", guest = \"/in\"",
            "host = \"in\", guest = \"/in\"",
        );
    for sub in ["in", "out"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::fs::copy(
        example.join("events.jsonl"),
        dir.path().join("in/events.jsonl"),
    )
    .unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let counts = std::fs::read_to_string(dir.path().join("out/counts.txt")).unwrap();
    assert!(
        counts.lines().count() > 0 && counts.lines().all(|l| l.split('\t').count() == 3),
        "{counts}"
    );
}

#[test]
fn weir_new_makes_a_project_that_builds_and_runs_in_every_language_and_kind() {
    let expected = [
        (
            "source",
            "record-0\nrecord-1\nrecord-2\nrecord-3\nrecord-4\n",
        ),
        ("operator", "HELLO\nPLUGIN\nWORLD\n"),
        ("sink", "hello\nplugin\nworld\n"),
    ];
    // Two builds at a time: the machine has two cores.
    for pair in LANGS.chunks(2) {
        let handles: Vec<_> = pair
            .iter()
            .map(|lang| {
                let lang = lang.to_string();
                std::thread::spawn(move || {
                    for (kind, want) in expected {
                        let got = new_build_run(&lang, kind);
                        assert_eq!(got, want, "{lang} {kind}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}

/// The Python and JavaScript builds exchange packed batches (one buffer per batch, no WIT record
/// per record); the conformance tests above run them.
#[test]
fn the_python_and_javascript_builds_are_packed() {
    let builds = ["python", "js"]
        .into_iter()
        .flat_map(|l| [lang_plugin(l), faulty_plugin(l), keyed_plugin(l)])
        .chain([timers_plugin("js")]);
    for wasm in builds {
        let o = run_weir(&["inspect", wasm.to_str().unwrap()], &root());
        assert!(
            stdout(&o).contains("batches: packed"),
            "{}: {}",
            wasm.display(),
            stdout(&o)
        );
    }
}

#[test]
fn weir_new_makes_rust_function_plugins_that_build_and_run() {
    assert_eq!(new_build_run("rust", "filter"), "plugin\n");
    assert_eq!(new_build_run("rust", "map"), "HELLO\nPLUGIN\nWORLD\n");
    let dir = scratch();
    for lang in ["c", "python", "js"] {
        let o = run_weir(
            &["new", "f", "--lang", lang, "--kind", "filter"],
            dir.path(),
        );
        assert!(!o.status.success(), "{lang} made a filter project");
        assert!(
            stderr(&o).contains("--kind operator"),
            "{lang}: {}",
            stderr(&o)
        );
        assert!(
            !dir.path().join("f").exists(),
            "{lang}: a refused project left files"
        );
    }
}

#[test]
fn weir_new_refuses_a_bad_name_or_an_existing_directory() {
    let dir = scratch();
    let o = run_weir(&["new", "Bad Name"], dir.path());
    assert_clean_failure(&o, &["lowercase letters"]);
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    let o = run_weir(&["new", "taken"], dir.path());
    assert_clean_failure(&o, &["already exists"]);
}
