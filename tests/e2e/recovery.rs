//! Recovery holes, each closed at its mechanism: a rolling bucketed sink at parallelism 2 behind
//! `hash` edges through twenty SIGKILLs; a chain of 2,000 operators; a damaged checkpoint store
//! in every way we can damage it; a line longer than memory allows; failures the same input
//! repeats, which no restart cures.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Lines of five common words each (buckets that roll by size), a rare word in one line of 50
/// (a bucket that rolls by time, long before its size) and a sparse word in one line of 15,000
/// (about a second apart at the test's rate: a bucket closed for inactivity in between).
fn bucket_text(lines: usize) -> String {
    let common = ["alpha", "beta", "gamma", "delta", "omega"];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut text = String::with_capacity(lines * 40);
    for i in 0..lines {
        for _ in 0..5 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            text.push_str(common[(rng % 5) as usize]);
            text.push(' ');
        }
        if i % 50 == 7 {
            text.push_str("rare ");
        }
        if i % 15_000 == 11 {
            text.push_str("sparse ");
        }
        text.push('\n');
    }
    text
}

/// The finished parts of bucket `bucket` under `out`, in part-number order, concatenated.
/// Every part of a word's bucket comes from the one subtask that word is routed to.
fn bucket_contents(out: &Path, bucket: &str) -> (usize, String) {
    let mut parts: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(out.join(bucket))
        .unwrap()
        .map(|f| f.unwrap())
        .filter(|f| !f.file_name().to_string_lossy().starts_with('.'))
        .map(|f| {
            let name = f.file_name().to_string_lossy().into_owned();
            (name.rsplit('-').next().unwrap().parse().unwrap(), f.path())
        })
        .collect();
    parts.sort();
    let text = parts
        .iter()
        .map(|(_, p)| std::fs::read_to_string(p).unwrap())
        .collect();
    (parts.len(), text)
}

#[test]
fn bucketed_sink_at_parallelism_two_behind_hash_edges_is_exact_through_twenty_kills() {
    let text = bucket_text(600_000);
    let dir = scratch();
    let d = dir.path();
    for sub in ["in", "out"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("in/input.txt"), &text).unwrap();
    let pipeline = format!(
        r#"
[checkpoint]
interval = "250ms"

[node.src]
kind = "source"
plugin = "file"
config = {{ path = "/in/input.txt", rate = 15000 }}
grants.dirs = [{{ host = "in", guest = "/in" }}]

[node.words]
kind = "operator"
plugin = "{tokenize}"
input = "src"

[node.count]
kind = "operator"
plugin = "{wordcount}"
input = "words"
partition = "hash"
parallelism = 2

[node.out]
kind = "sink"
plugin = "bucketed-file"
input = "count"
partition = "hash"
parallelism = 2
config = {{ path = "/out", bucket = "key", roll_size = "64KB", roll_interval = "1s", inactivity = "300ms", check_interval = "100ms" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        tokenize = guest("tokenize").display(),
        wordcount = guest("wordcount").display(),
    );
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    let kills = crash_loop(&["run", "p.toml"], d, 20, 300, 2_000);
    assert!(kills >= 20);

    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for word in text.split_whitespace() {
        *expected.entry(word).or_default() += 1;
    }
    let out = d.join("out");
    for (word, n) in &expected {
        let (parts, got) = bucket_contents(&out, word);
        let want: String = (1..=*n).map(|i| format!("{word}\t{i}\n")).collect();
        assert!(
            got == want,
            "bucket {word}: {} lines in {parts} parts, expected {n} updates in order, each once",
            got.lines().count()
        );
    }
    // Each roll policy had its turn. By size: only a size roll makes a part of roll_size or
    // more (a restore closes parts where they are). By time and inactivity: their log lines
    // (an attempt lives at least one checkpoint and 300 ms; the rare word's parts need a
    // second, the sparse word's bucket is idle most of every second).
    let big = finished_parts(&out)
        .iter()
        .filter(|(_, p)| std::fs::metadata(p).unwrap().len() >= 64_000)
        .count();
    assert!(big >= 3, "only {big} parts rolled by size");
    let logs: String = (1..=kills + 1).map(|a| attempt_log(d, a)).collect();
    assert!(
        logs.contains("rolled bucket rare after roll_interval"),
        "the rare word's bucket never rolled by time"
    );
    assert!(
        logs.contains("closed inactive bucket sparse"),
        "the sparse word's bucket was never closed for inactivity"
    );
    finished_parts(&out); // and nothing left unfinished
}

/// Every part file under `out` (any bucket), asserting none is left unfinished: (part number,
/// path), in part-number order.
fn finished_parts(out: &Path) -> Vec<(u64, std::path::PathBuf)> {
    let mut parts = Vec::new();
    for bucket in std::fs::read_dir(out).unwrap() {
        for f in std::fs::read_dir(bucket.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "left unfinished: {name}");
            parts.push((name.rsplit('-').next().unwrap().parse().unwrap(), f.path()));
        }
    }
    parts.sort();
    parts
}

/// A scratch directory with `in/input.txt` holding the numbers below `count`, a line each, and
/// an empty `out/`; and that text.
fn numbers_input(count: u64) -> (tempfile::TempDir, String) {
    let dir = scratch();
    for sub in ["in", "out"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let text: String = (0..count).map(|i| format!("{i}\n")).collect();
    std::fs::write(dir.path().join("in/input.txt"), &text).unwrap();
    (dir, text)
}

/// A restore from an older checkpoint (the store fell back, or an old copy was put back) finds
/// parts a run that got further already finished: the part that was open at the checkpoint is
/// cut back to it, later parts go, and the output is still exactly the input once.
#[test]
fn a_restore_from_an_older_checkpoint_cuts_back_what_later_runs_finished() {
    let count = 600_000u64;
    let (dir, want) = numbers_input(count);
    let d = dir.path();
    let pipeline = "[pipeline]\nname = \"parts\"\n\n[checkpoint]\ninterval = \"100ms\"\n\n[node.src]\nkind = \"source\"\nplugin = \"file\"\nconfig = { path = \"/in/input.txt\", rate = 100000 }\ngrants.dirs = [{ host = \"in\", guest = \"/in\" }]\n\n[node.out]\nkind = \"sink\"\nplugin = \"bucketed-file\"\ninput = \"src\"\nconfig = { path = \"/out\", roll_size = \"100KB\" }\ngrants.dirs = [{ host = \"out\", guest = \"/out\", mode = \"read-write\" }]\n";
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    precompile("p.toml", d);
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 1);
    wait_for_checkpoints(&mut child, d, 1, 2);
    let _ = child.kill();
    let _ = child.wait();
    // Keep the store as it is now, let a second run finish parts past it, then put it back.
    let store = d.join(".weir/parts");
    let kept = d.join("kept-store");
    copy_dir(&store, &kept);
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 2);
    wait_for_checkpoints(&mut child, d, 2, 5);
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&kept, &store);
    let status = spawn_weir(&["run", "p.toml"], d, 3).wait().unwrap();
    let err = std::fs::read_to_string(d.join("attempt-3.err")).unwrap();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("was finished after the checkpoint this job resumes from"),
        "the second run finished no part past the kept checkpoint:\n{err}"
    );
    let parts = finished_parts(&d.join("out"));
    let got: String = parts
        .iter()
        .map(|(_, p)| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        got == want,
        "{} lines in {} parts, expected {count} numbers once each, in order",
        got.lines().count(),
        parts.len()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_chain_of_two_thousand_operators_runs_to_the_end() {
    let dir = scratch();
    let d = dir.path();
    std::fs::create_dir_all(d.join("out")).unwrap();
    let mut pipeline = String::from(
        "[checkpoint]\ninterval = \"200ms\"\n\n[node.n0]\nkind = \"source\"\nplugin = \"sequence\"\nconfig = { count = 20000 }\n",
    );
    for i in 1..=1_998 {
        pipeline.push_str(&format!(
            "\n[node.n{i}]\nkind = \"operator\"\nplugin = \"filter-map\"\ninput = \"n{}\"\n",
            i - 1
        ));
    }
    pipeline.push_str("\n[node.out]\nkind = \"sink\"\nplugin = \"file\"\ninput = \"n1998\"\nconfig = { path = \"/out/o.txt\" }\ngrants.dirs = [{ host = \"out\", guest = \"/out\", mode = \"read-write\" }]\n");
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "p.toml"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    // filter-map drops values whose first byte is a multiple of 4 (the digits 0, 4 and 8) and
    // upper-cases the rest (digits stay digits); 1,998 times over changes nothing more.
    let out = std::fs::read_to_string(d.join("out/o.txt")).unwrap();
    let want: String = (0..20_000)
        .map(|i: u32| i.to_string())
        .filter(|v| v.as_bytes()[0] % 4 != 0)
        .map(|v| format!("{v}\n"))
        .collect();
    assert!(
        out == want,
        "{} lines, expected {}",
        out.lines().count(),
        want.lines().count()
    );
}

/// Every way we damage the checkpoint store (cut to several lengths, bytes flipped, files
/// deleted) ends in the clear message, or, where the damage spared what the job needs, in a
/// resumed run with the exact output: never a panic (sled 0.34 panics on some of these).
#[test]
fn a_damaged_store_ends_in_the_clear_message_never_a_panic() {
    let dir = scratch();
    let d = dir.path();
    for sub in ["in", "out"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let text = sample_text(300_000, 24);
    std::fs::write(d.join("in/input.txt"), &text).unwrap();
    let settings = "[pipeline]\nname = \"damaged\"\n\n[checkpoint]\ninterval = \"100ms\"";
    let pipeline = wordcount_pipeline(settings, &guest("wordcount"), "", "lines");
    std::fs::write(d.join("p.toml"), throttled(&pipeline, 100_000)).unwrap();
    precompile("p.toml", d);
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 0);
    wait_for_checkpoints(&mut child, d, 0, 5);
    let _ = child.kill();
    let _ = child.wait();
    let store = d.join(".weir/damaged");
    let pristine = d.join("pristine");
    copy_dir(&store, &pristine);
    // The outputs as the kill left them (the file sink's pending files too), put back with the
    // store before every case.
    let out_before = d.join("pristine-out");
    copy_dir(&d.join("out"), &out_before);
    let db = store.join("db/db");
    let len = std::fs::metadata(pristine.join("db/db")).unwrap().len();
    type Damage = Box<dyn Fn(&Path)>;
    let truncate = |to: u64| -> Damage {
        Box::new(move |db: &Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(db)
                .unwrap()
                .set_len(to)
                .unwrap()
        })
    };
    let flip = |at: u64| -> Damage {
        Box::new(move |db: &Path| {
            let mut bytes = std::fs::read(db).unwrap();
            bytes[at as usize] ^= 0xff;
            std::fs::write(db, bytes).unwrap();
        })
    };
    let delete = |name: &'static str| -> Damage {
        Box::new(move |db: &Path| {
            let path = db.parent().unwrap().join(name);
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        })
    };
    let mut damages: Vec<(String, Damage)> = Vec::new();
    for to in [0, 100, len / 4, len / 2, len * 3 / 4, len - 1] {
        damages.push((format!("cut to {to} of {len} bytes"), truncate(to)));
    }
    for at in [0, 100, len / 3, len / 2, len * 2 / 3, len - 20] {
        damages.push((format!("byte {at} of {len} flipped"), flip(at)));
    }
    for name in ["conf", "db", "blobs"] {
        damages.push((format!("{name} deleted"), delete(name)));
    }
    let want = expected_updates(&text);
    for (what, damage) in damages {
        std::fs::remove_dir_all(&store).unwrap();
        copy_dir(&pristine, &store);
        std::fs::remove_dir_all(d.join("out")).unwrap();
        copy_dir(&out_before, &d.join("out"));
        damage(&db);
        let o = run_weir(&["run", "p.toml"], d);
        let err = stderr(&o);
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "store {what}: the host panicked:\n{err}"
        );
        if o.status.success() {
            let got = std::fs::read_to_string(d.join("out/counts.txt")).unwrap();
            assert!(
                err.contains("resuming from checkpoint") && got == want,
                "store {what}: the run went on, but not from a checkpoint to the exact output:\n{err}"
            );
        } else {
            assert_clean_failure(&o, &["--from-savepoint", "--fresh --yes"]);
        }
    }
}

#[test]
fn a_line_longer_than_max_line_is_refused_with_its_file_offset_and_the_option() {
    let dir = scratch();
    let d = dir.path();
    for sub in ["in", "out"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    // 20 MB without a newline after two short lines: past the default max_line (8 MiB).
    let mut text = b"one\ntwo\n".to_vec();
    text.resize(text.len() + 20_000_000, b'x');
    std::fs::write(d.join("in/input.txt"), &text).unwrap();
    let pipeline = |config: &str| {
        format!(
            "[node.src]\nkind = \"source\"\nplugin = \"file\"\nconfig = {{ path = \"/in/input.txt\"{config} }}\ngrants.dirs = [{{ host = \"in\", guest = \"/in\" }}]\n\n[node.out]\nkind = \"sink\"\nplugin = \"file\"\ninput = \"src\"\nconfig = {{ path = \"/out/o.txt\" }}\ngrants.dirs = [{{ host = \"out\", guest = \"/out\", mode = \"read-write\" }}]\n"
        )
    };
    std::fs::write(d.join("p.toml"), pipeline("")).unwrap();
    let o = run_weir(&["run", "p.toml"], d);
    assert_clean_failure(
        &o,
        &["/in/input.txt", "byte offset 8", "max_line (8388608 bytes)"],
    );
    let err = stderr(&o);
    assert!(!err.contains("memory allocation"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
    // Raised past the line (and the memory with it), the same file reads through.
    std::fs::write(
        d.join("p.toml"),
        pipeline(", max_line = \"32MiB\"")
            .replace("[node.out]", "memory = \"512MiB\"\n\n[node.out]"),
    )
    .unwrap();
    let o = run_weir(&["run", "--fresh", "--yes", "p.toml"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = std::fs::read(d.join("out/o.txt")).unwrap();
    assert_eq!(
        out.len(),
        text.len() + 1,
        "the long line did not come through whole"
    );
}

/// Failures the same input repeats end the run at once, saying so, instead of three restarts.
#[test]
fn failures_the_same_input_repeats_are_not_restarted() {
    let dir = scratch();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in")).unwrap();
    // A source batch over the node's reply limit.
    std::fs::write(
        d.join("big.toml"),
        "[node.src]\nkind = \"source\"\nplugin = \"sequence\"\nconfig = { count = 100000, value_size = 1000 }\nmax_reply_bytes = \"64KB\"\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"src\"\n",
    )
    .unwrap();
    let o = run_weir(&["run", "big.toml"], d);
    assert_clean_failure(&o, &["was not restarted", "max_reply_bytes", "in `poll`"]);
    assert!(!stderr(&o).contains("restart 1"), "{}", stderr(&o));
    // Keyed state used under a key of another subtask (the counter's input is not on a
    // `hash` edge).
    std::fs::write(
        d.join("in/input.txt"),
        "alpha beta\ngamma delta\n".repeat(1000),
    )
    .unwrap();
    let pipeline = format!(
        "[node.src]\nkind = \"source\"\nplugin = \"file\"\nconfig = {{ path = \"/in/input.txt\" }}\ngrants.dirs = [{{ host = \"in\", guest = \"/in\" }}]\n\n[node.words]\nkind = \"operator\"\nplugin = \"{}\"\ninput = \"src\"\n\n[node.count]\nkind = \"operator\"\nplugin = \"{}\"\ninput = \"words\"\npartition = \"rebalance\"\nparallelism = 2\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"count\"\npartition = \"rebalance\"\n",
        guest("tokenize").display(),
        guest("wordcount").display()
    );
    std::fs::write(d.join("keyed.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "keyed.toml"], d);
    assert_clean_failure(&o, &["was not restarted", "but the key belongs to subtask"]);
    assert!(!stderr(&o).contains("restart 1"), "{}", stderr(&o));
}

/// A plugin's own failure that a restart repeats on the same input (here: an error on the
/// record `fail`) is restarted once, not until the strategy runs out: the second identical
/// failure with no checkpoint between ends the run, saying why.
#[test]
fn a_logic_failure_repeated_by_a_restart_ends_the_run() {
    let dir = scratch();
    let d = dir.path();
    for sub in ["in", "out"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("in/input.txt"), "a\nb\nfail\nc\n").unwrap();
    let pipeline = format!(
        "[checkpoint]\ninterval = \"100ms\"\n\n[restart]\nstrategy = \"fixed-delay\"\nattempts = 5\ndelay = \"100ms\"\n\n[node.src]\nkind = \"source\"\nplugin = \"file\"\nconfig = {{ path = \"/in/input.txt\" }}\ngrants.dirs = [{{ host = \"in\", guest = \"/in\" }}]\n\n[node.op]\nkind = \"operator\"\nplugin = \"{}\"\ninput = \"src\"\nconfig = {{ mode = \"on-value\" }}\n\n[node.out]\nkind = \"sink\"\nplugin = \"file\"\ninput = \"op\"\nconfig = {{ path = \"/out/o.txt\" }}\ngrants.dirs = [{{ host = \"out\", guest = \"/out\", mode = \"read-write\" }}]\n",
        guest("misbehave").display()
    );
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    let o = run_weir(&["run", "p.toml"], d);
    assert_clean_failure(
        &o,
        &[
            "failed the same way again after a restart",
            "asked to fail by the input",
        ],
    );
    let err = stderr(&o);
    assert!(err.contains("restart 1"), "{err}");
    assert!(
        !err.contains("restart 2"),
        "restarted past the repeat:\n{err}"
    );
    assert_eq!(
        err.matches("asked to fail by the input").count(),
        1,
        "the plugin's error is printed once:\n{err}"
    );
}

/// A bucketed sink resumed at a smaller parallelism: the retired subtask's last parts (open at
/// the checkpoint) are finished, not left in progress; every line arrives once.
#[test]
fn a_bucketed_sink_resumed_at_a_smaller_parallelism_finishes_the_retired_parts() {
    let count = 300_000u64;
    let (dir, _) = numbers_input(count);
    let d = dir.path();
    let pipeline = |parallelism: u32| {
        format!(
            "[pipeline]\nname = \"scaled\"\n\n[checkpoint]\ninterval = \"100ms\"\n\n[node.src]\nkind = \"source\"\nplugin = \"file\"\nconfig = {{ path = \"/in/input.txt\", rate = 50000 }}\ngrants.dirs = [{{ host = \"in\", guest = \"/in\" }}]\n\n[node.out]\nkind = \"sink\"\nplugin = \"bucketed-file\"\ninput = \"src\"\npartition = \"rebalance\"\nparallelism = {parallelism}\nconfig = {{ path = \"/out\", roll_size = \"1MB\" }}\ngrants.dirs = [{{ host = \"out\", guest = \"/out\", mode = \"read-write\" }}]\n"
        )
    };
    std::fs::write(d.join("p.toml"), pipeline(2)).unwrap();
    precompile("p.toml", d);
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], d, 1);
    wait_for_checkpoints(&mut child, d, 1, 3);
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(d.join("p.toml"), pipeline(1)).unwrap();
    let status = spawn_weir(&["run", "p.toml"], d, 2).wait().unwrap();
    let err = std::fs::read_to_string(d.join("attempt-2.err")).unwrap();
    assert!(status.success(), "{err}");
    let mut lines: Vec<u64> = Vec::new();
    for (_, part) in finished_parts(&d.join("out")) {
        let text = std::fs::read_to_string(part).unwrap();
        lines.extend(text.lines().map(|l| l.parse::<u64>().unwrap()));
    }
    lines.sort_unstable();
    assert!(
        lines.len() as u64 == count && lines.iter().enumerate().all(|(i, n)| *n == i as u64),
        "{} lines, expected each of {count} once",
        lines.len()
    );
}

/// The directory source's own pattern (write a dot-file, rename it into place) while it scans
/// as often as it can: an entry renamed while the directory is listed (under WASI every entry
/// is looked up as it is listed) never fails the job, and every file is read once, in order.
#[test]
fn a_directory_source_scanning_while_files_are_renamed_in_never_fails() {
    let dir = scratch();
    let d = dir.path();
    for sub in ["watch", "out"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let pipeline = "[checkpoint]\ninterval = \"100ms\"\n\n[restart]\nstrategy = \"none\"\n\n[node.src]\nkind = \"source\"\nplugin = \"directory\"\nconfig = { path = \"/watch\", pattern = \"*.log\", scan_ms = 1 }\ngrants.dirs = [{ host = \"watch\", guest = \"/watch\" }]\n\n[node.out]\nkind = \"sink\"\nplugin = \"file\"\ninput = \"src\"\nconfig = { path = \"/out/lines.txt\" }\ngrants.dirs = [{ host = \"out\", guest = \"/out\", mode = \"read-write\" }]\n";
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    precompile("p.toml", d);
    let mut child = spawn_weir(&["run", "p.toml"], d, 1);
    let files = 400;
    let watch = d.join("watch");
    for i in 0..files {
        let hidden = watch.join(format!(".f{i:05}.log"));
        std::fs::write(&hidden, format!("line {i}\n")).unwrap();
        std::fs::rename(&hidden, watch.join(format!("f{i:05}.log"))).unwrap();
    }
    let want: String = (0..files).map(|i| format!("line {i}\n")).collect();
    let out = d.join("out/lines.txt");
    // Every file's line published (an event), unless the run ends first.
    while std::fs::read_to_string(&out).unwrap_or_default().len() < want.len() {
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(d.join("attempt-1.err")).unwrap_or_default();
            panic!("weir ended ({status}) before reading every file:\n{err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
}
