//! The word count, end to end: result equals a count computed here, with one subtask or with
//! hash partitioning over two, to stdout or to a file, from the example directory copied
//! elsewhere.

use crate::common::*;

fn pipeline(operator_p: u32, sink: &str) -> String {
    let tokenize = format!(
        r#"
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
plugin = "{wordcount}"
input = "words"
partition = "hash"
parallelism = {operator_p}

[node.out]
kind = "sink"
input = "count"
partition = "rebalance"
{sink}
"#,
        tokenize = guest("tokenize").display(),
        wordcount = guest("wordcount").display(),
    );
    tokenize
}

fn setup(lines: usize) -> (tempfile::TempDir, String) {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let text = sample_text(lines, 7);
    std::fs::write(dir.path().join("in/input.txt"), &text).unwrap();
    (dir, text)
}

#[test]
fn word_count_equals_a_count_computed_here() {
    let (dir, text) = setup(3000);
    std::fs::write(
        dir.path().join("p.toml"),
        pipeline(1, "plugin = \"stdout\""),
    )
    .unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = count_words(&text);
    let got = final_counts(&stdout(&o));
    assert_eq!(got, expected);
    let total: u64 = expected.values().sum();
    assert_eq!(
        stdout(&o).lines().count() as u64,
        total,
        "one update per word occurrence"
    );
    let err = stderr(&o);
    assert!(
        err.contains("records in") && err.contains("wall time"),
        "no summary:\n{err}"
    );
}

#[test]
fn hash_partitioned_parallel_count_gives_the_same_result() {
    let (dir, text) = setup(3000);
    std::fs::write(
        dir.path().join("p.toml"),
        pipeline(2, "plugin = \"stdout\""),
    )
    .unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(final_counts(&stdout(&o)), count_words(&text));
    assert!(stderr(&o).contains("count (x2)"), "{}", stderr(&o));
}

#[test]
fn file_sink_writes_every_update_once() {
    let (dir, text) = setup(2000);
    let sink = "plugin = \"file\"\nconfig = { path = \"/out/counts.txt\" }\ngrants.dirs = [{ host = \"out\", guest = \"/out\", mode = \"read-write\" }]";
    std::fs::write(dir.path().join("p.toml"), pipeline(2, sink)).unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let written = std::fs::read_to_string(dir.path().join("out/counts.txt")).unwrap();
    assert_eq!(final_counts(&written), count_words(&text));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "counts.txt")
        .collect();
    assert!(
        leftovers.is_empty(),
        "uncommitted files left: {leftovers:?}"
    );
}

#[test]
fn the_example_runs_from_a_copy_with_another_input() {
    let example = root().join("examples/wordcount");
    let dir = scratch();
    let copy = dir.path().join("elsewhere");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(example.join("pipeline.toml"), copy.join("pipeline.toml")).unwrap();
    std::fs::copy(guest("wordcount"), copy.join("wordcount.wasm")).unwrap();
    let text = "Hello hello HELLO, world!\nworld of weir\n";
    std::fs::create_dir_all(copy.join("data")).unwrap();
    std::fs::write(copy.join("data/input.txt"), text).unwrap();
    // Run from an unrelated working directory: paths resolve against the pipeline file.
    let o = run_weir(
        &["run", copy.join("pipeline.toml").to_str().unwrap()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "hello\t1\nhello\t2\nhello\t3\nworld\t1\nworld\t2\nof\t1\nweir\t1\n"
    );
}

#[test]
fn the_second_start_loads_compiled_components_from_the_cache() {
    let (dir, _) = setup(10);
    std::fs::write(
        dir.path().join("p.toml"),
        pipeline(1, "plugin = \"stdout\""),
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let run = || {
        weir()
            .args(["run", "--fresh", "--yes", "p.toml"])
            .current_dir(dir.path())
            .env("WEIR_CACHE_DIR", &cache)
            .env("RUST_LOG", "weir_host::plugin=debug")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!stderr(&first).contains("from cache"), "{}", stderr(&first));
    let entries = std::fs::read_dir(cache.join("components")).unwrap().count();
    assert!(
        entries >= 4,
        "expected a cache entry per component, found {entries}"
    );
    let second = run();
    assert!(second.status.success(), "{}", stderr(&second));
    let hits = stderr(&second)
        .matches("compiled component from cache")
        .count();
    assert!(
        hits >= 4,
        "only {hits} components came from the cache:\n{}",
        stderr(&second)
    );
}
