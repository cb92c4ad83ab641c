//! The seed connectors end to end: the rolling bucketed file sink, the TCP socket source and
//! sink against real listeners on 127.0.0.1, and the directory source. Each claim of
//! docs/connectors.md names its test here.

use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Finished part files under `base` (any bucket), in part-number order, skipping dot-files.
fn finished_parts(base: &Path) -> Vec<PathBuf> {
    let mut parts = Vec::new();
    for bucket in std::fs::read_dir(base).unwrap() {
        let bucket = bucket.unwrap().path();
        if !bucket.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&bucket).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                parts.push(f.path());
            }
        }
    }
    let number = |p: &PathBuf| -> u64 {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.trim_end_matches(".txt")
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    parts.sort_by_key(number);
    parts
}

fn concat(parts: &[PathBuf]) -> String {
    parts
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn bucket_pipeline(source: &str, sink_config: &str) -> String {
    format!(
        r#"
[checkpoint]
interval = "100ms"

{source}

[node.out]
kind = "sink"
plugin = "bucketed-file"
input = "src"
config = {{ path = "/out", {sink_config} }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#
    )
}

const FILE_SOURCE: &str = r#"[node.src]
kind = "source"
plugin = "file"
config = { path = "/in/input.txt" }
grants.dirs = [{ host = "in", guest = "/in" }]"#;

fn setup(text: &str, pipeline: &str) -> tempfile::TempDir {
    let dir = scratch();
    for d in ["in", "out", "watch"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    std::fs::write(dir.path().join("in/input.txt"), text).unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    dir
}

#[test]
fn bucketed_sink_killed_ten_times_finishes_exactly_the_input() {
    // file → word count (stateful, and slow enough for ten kills) → rolling part files.
    let text = sample_text(500_000, 3);
    let source = format!(
        "{FILE_SOURCE}\n\n[node.count]\nkind = \"operator\"\nplugin = \"{}\"\ninput = \"lines\"",
        guest("wordcount").display()
    )
    .replace("[node.src]", "[node.lines]");
    let pipeline = bucket_pipeline(&source, "roll_size = \"2MB\", part_suffix = \".txt\"").replace(
        "input = \"src\"\nconfig = { path = \"/out\"",
        "input = \"count\"\nconfig = { path = \"/out\"",
    );
    let dir = setup(&text, &throttled(&pipeline, 60_000));
    crash_loop(&["run", "p.toml"], dir.path(), 10, 300, 900);
    let parts = finished_parts(&dir.path().join("out"));
    assert!(
        parts.len() > 3,
        "expected several parts, got {}",
        parts.len()
    );
    assert!(
        concat(&parts) == expected_updates(&text),
        "finished parts differ from the expected output"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flat_map(|b| std::fs::read_dir(b.unwrap().path()).unwrap())
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "uncommitted files left: {leftovers:?}"
    );
}

#[test]
fn bucketed_sink_rolls_by_size() {
    let text = sample_text(20_000, 5);
    let dir = setup(&text, &bucket_pipeline(FILE_SOURCE, "roll_size = \"50KB\""));
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let parts = finished_parts(&dir.path().join("out"));
    let longest = text.lines().map(|l| l.len() + 1).max().unwrap() as u64;
    assert!(parts.len() >= text.len() / 50_000, "{} parts", parts.len());
    for p in &parts {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(len < 50_000 + longest, "{} has {len} bytes", p.display());
    }
    assert_eq!(concat(&parts), text);
}

#[test]
fn bucketed_sink_rolls_by_time_and_writes_gzip() {
    let source =
        "[node.src]\nkind = \"source\"\nplugin = \"sequence\"\nconfig = { count = 3000000 }";
    let dir = setup(
        "",
        &bucket_pipeline(
            source,
            "roll_interval = \"150ms\", check_interval = \"10ms\", gzip = true, part_suffix = \".gz\"",
        ),
    );
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let parts: Vec<PathBuf> = finished_parts_gz(&dir.path().join("out"));
    // Three million records take many roll intervals of 150 ms on any machine we run on.
    assert!(
        parts.len() >= 2,
        "{} parts: nothing rolled by time",
        parts.len()
    );
    let mut all = String::new();
    for p in &parts {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(p)
            .output()
            .unwrap();
        assert!(out.status.success(), "{} is not valid gzip", p.display());
        all.push_str(&String::from_utf8(out.stdout).unwrap());
    }
    let numbers: Vec<u64> = all.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(numbers.len(), 3_000_000);
    assert!(
        numbers.iter().enumerate().all(|(i, n)| *n == i as u64),
        "records out of order or lost"
    );
}

fn finished_parts_gz(base: &Path) -> Vec<PathBuf> {
    let mut parts = Vec::new();
    for bucket in std::fs::read_dir(base).unwrap() {
        for f in std::fs::read_dir(bucket.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                parts.push(p);
            }
        }
    }
    parts.sort_by_key(|p| {
        let n = p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".gz")
            .rsplit('-')
            .next()
            .unwrap()
            .to_owned();
        n.parse::<u64>().unwrap()
    });
    parts
}

#[test]
fn bucketed_sink_closes_inactive_buckets_and_buckets_by_key() {
    let mut text = String::from("early bird\n");
    text.push_str(&"late late late\n".repeat(400_000));
    let pipeline = format!(
        r#"
[checkpoint]
interval = "100ms"

{FILE_SOURCE}

[node.words]
kind = "operator"
plugin = "{tokenize}"
input = "src"

[node.out]
kind = "sink"
plugin = "bucketed-file"
input = "words"
config = {{ path = "/out", bucket = "key", inactivity = "100ms", check_interval = "20ms" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        tokenize = guest("tokenize").display()
    );
    let dir = setup(&text, &pipeline);
    let o = run_weir(&["run", "p.toml"], dir.path());
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("closed inactive bucket early"),
        "the idle bucket was not closed while running:\n{err}"
    );
    let read_bucket = |b: &str| {
        concat(
            &finished_parts(&dir.path().join("out"))
                .into_iter()
                .filter(|p| p.parent().unwrap().ends_with(b))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(read_bucket("early"), "early\n");
    assert_eq!(read_bucket("bird"), "bird\n");
    assert_eq!(read_bucket("late").lines().count(), 1_200_000);
}

/// `y-m-d--H` of a Unix time shifted by `offset_min`, by Howard Hinnant's civil-from-days.
fn bucket_name(unix_s: i64, offset_min: i64) -> String {
    let t = unix_s + offset_min * 60;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}--{:02}", secs / 3600)
}

#[test]
fn bucketed_sink_names_time_buckets_in_the_configured_zone() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let text = "a\nb\nc\n";
    // Asia/Kathmandu is UTC+05:45 all year: an offset no host time zone setting would fake.
    let dir = setup(
        text,
        &bucket_pipeline(FILE_SOURCE, "timezone = \"Asia/Kathmandu\""),
    );
    let before = now();
    let o = run_weir(&["run", "p.toml"], dir.path());
    let after = now();
    assert!(o.status.success(), "{}", stderr(&o));
    let buckets: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|b| b.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected = [bucket_name(before, 345), bucket_name(after, 345)];
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    assert!(
        expected.contains(&buckets[0]),
        "bucket {:?}, expected one of {expected:?}",
        buckets[0]
    );
    let bad = run_weir_with(&bucket_pipeline(
        FILE_SOURCE,
        "timezone = \"Mars/Olympus_Mons\"",
    ));
    assert_clean_failure(&bad, &["Mars/Olympus_Mons", "IANA time zone"]);
}

fn run_weir_with(pipeline: &str) -> std::process::Output {
    let dir = setup("x\n", pipeline);
    run_weir(&["run", "p.toml"], dir.path())
}

#[test]
fn socket_source_reads_lines_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for conn in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            for i in 0..500 {
                writeln!(s, "conn{conn}-line{i}").unwrap();
            }
            // Closing ends this connection; the source reconnects with backoff for the next.
        }
    });
    let pipeline = format!(
        r#"
[node.src]
kind = "source"
plugin = "socket"
config = {{ address = "{addr}", max_connections = 2, backoff_ms = 20 }}
grants.connect = ["{addr}"]

[node.out]
kind = "sink"
plugin = "file"
input = "src"
config = {{ path = "/out/lines.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#
    );
    let dir = setup("", &pipeline);
    let o = run_weir(&["run", "p.toml"], dir.path());
    server.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let got = std::fs::read_to_string(dir.path().join("out/lines.txt")).unwrap();
    let want: String = (0..2)
        .flat_map(|c| (0..500).map(move |i| format!("conn{c}-line{i}\n")))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn socket_source_without_a_grant_cannot_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let pipeline = format!(
        "[restart]\nstrategy = \"none\"\n\n[node.src]\nkind = \"source\"\nplugin = \"socket\"\nconfig = {{ address = \"{addr}\" }}\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"src\"\n"
    );
    let o = run_weir_with(&pipeline);
    assert_clean_failure(
        &o,
        &[
            "refused by the sandbox",
            &format!("grants.connect = [\"{addr}\"]"),
        ],
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the plugin reached the listener without a grant"
    );
}

#[test]
fn socket_sink_resends_after_the_peer_drops_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        // First connection: read a little, then hang up on the sink.
        let (s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s);
        for _ in 0..100 {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap() == 0 {
                break;
            }
            seen.push(line);
        }
        drop(r);
        // Later connections: read to the end.
        listener.set_nonblocking(false).unwrap();
        let stuck = Instant::now() + STUCK;
        while Instant::now() < stuck {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 0 {
                seen.push(std::mem::take(&mut line));
            }
            if seen.iter().any(|l| l == "199999\n") {
                break;
            }
        }
        seen
    });
    let pipeline = format!(
        r#"
[checkpoint]
interval = "50ms"

[node.src]
kind = "source"
plugin = "sequence"
config = {{ count = 200000 }}

[node.out]
kind = "sink"
plugin = "socket"
input = "src"
config = {{ address = "{addr}", backoff_ms = 20 }}
grants.connect = ["{addr}"]
"#
    );
    let o = run_weir_with(&pipeline);
    assert!(o.status.success(), "{}", stderr(&o));
    let seen: std::collections::HashSet<String> = server.join().unwrap().into_iter().collect();
    for i in 0..200_000 {
        assert!(seen.contains(&format!("{i}\n")), "record {i} never arrived");
    }
}

#[test]
fn directory_source_picks_up_files_added_while_running() {
    let pipeline = r#"
[checkpoint]
interval = "100ms"

[node.src]
kind = "source"
plugin = "directory"
config = { path = "/watch", pattern = "*.log", scan_ms = 50 }
grants.dirs = [{ host = "watch", guest = "/watch" }]

[node.out]
kind = "sink"
plugin = "file"
input = "src"
config = { path = "/out/lines.txt" }
grants.dirs = [{ host = "out", guest = "/out", mode = "read-write" }]
"#;
    let dir = setup("", pipeline);
    let watch = dir.path().join("watch");
    let file =
        |name: &str, n: usize| -> String { (0..n).map(|i| format!("{name}:{i}\n")).collect() };
    std::fs::write(watch.join("a.log"), file("a", 1000)).unwrap();
    std::fs::write(watch.join("b.log"), file("b", 1000)).unwrap();
    std::fs::write(watch.join("ignored.txt"), "not a log\n").unwrap();
    let mut child = spawn_weir(&["run", "p.toml"], dir.path(), 1);
    let out = dir.path().join("out/lines.txt");
    // Running: the files present at the start are published (an event, not a pause).
    let first = file("a", 1000).len() + file("b", 1000).len();
    while std::fs::read_to_string(&out).unwrap_or_default().len() < first {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("weir ended ({status}) before publishing the first files");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for name in ["c", "d"] {
        // Written under a dot-name, then renamed: the source never sees half a file.
        std::fs::write(watch.join(format!(".{name}.log")), file(name, 1000)).unwrap();
        std::fs::rename(
            watch.join(format!(".{name}.log")),
            watch.join(format!("{name}.log")),
        )
        .unwrap();
    }
    let want: String = ["a", "b", "c", "d"].iter().map(|n| file(n, 1000)).collect();
    // Wait for every file's lines to be published (an event, not a deadline), unless the run
    // ends first.
    while std::fs::read_to_string(&out).unwrap_or_default().len() < want.len() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("weir ended ({status}) before publishing every file");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
}

#[test]
fn directory_source_killed_ten_times_reads_every_file_exactly_once() {
    let pipeline = r#"
[checkpoint]
interval = "100ms"

[node.src]
kind = "source"
plugin = "directory"
config = { path = "/watch", end_when_empty = true, rate = 80000 }
grants.dirs = [{ host = "watch", guest = "/watch" }]

[node.count]
kind = "operator"
plugin = "WORDCOUNT"
input = "src"

[node.out]
kind = "sink"
plugin = "file"
input = "count"
config = { path = "/out/counts.txt" }
grants.dirs = [{ host = "out", guest = "/out", mode = "read-write" }]
"#
    .replace("WORDCOUNT", &guest("wordcount").display().to_string());
    let dir = setup("", &pipeline);
    let mut all = String::new();
    for i in 0..20 {
        let text = sample_text(25_000, 100 + i);
        std::fs::write(dir.path().join(format!("watch/part-{i:02}.txt")), &text).unwrap();
        all.push_str(&text);
    }
    crash_loop(&["run", "p.toml"], dir.path(), 10, 200, 600);
    let got = std::fs::read_to_string(dir.path().join("out/counts.txt")).unwrap();
    assert!(
        got == expected_updates(&all),
        "output differs ({} vs {} bytes)",
        got.len(),
        expected_updates(&all).len()
    );
}

#[test]
fn bucketed_sink_writes_length_prefixed_records() {
    let text = "alpha\n\nline with spaces\nlast\n";
    let dir = setup(
        text,
        &bucket_pipeline(FILE_SOURCE, "format = \"length-prefixed\""),
    );
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let parts = finished_parts(&dir.path().join("out"));
    let bytes: Vec<u8> = parts
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut values = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        values.push(String::from_utf8(rest[4..4 + n].to_vec()).unwrap());
        rest = &rest[4 + n..];
    }
    assert_eq!(values, vec!["alpha", "", "line with spaces", "last"]);
}
