//! Shared helpers: build the test guests once, run `weir`, compute expected word counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Guest crates the tests use, built to wasm32-wasip2 components.
const GUESTS: &[&str] = &[
    "wordcount",
    "tokenize",
    "misbehave",
    "hostile",
    "wordcount-v2",
    "stall-sink",
    "garbage-batch",
    "event-time",
    "event-source",
    "windowed-counts",
    "keyed-fill",
];

/// Path of the component built from guest crate `name`; builds all test guests on first use.
/// Cargo's own up-to-date check makes later runs cheap.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target = root().join("target").join("wasm");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root())
            .args([
                "build",
                "--profile",
                "guest",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target);
        for g in GUESTS {
            cmd.args(["-p", g]);
        }
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
        ] {
            cmd.env_remove(var);
        }
        let out = cmd.output().expect("run cargo to build the test guests");
        assert!(
            out.status.success(),
            "building the test guests failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("wasm32-wasip2").join("guest")
    });
    assert!(GUESTS.contains(&name), "unknown test guest {name}");
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

/// A `weir` command with a private component cache and quiet logs.
pub fn weir() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.env(
        "WEIR_CACHE_DIR",
        root().join("target").join("weir-test-cache"),
    );
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Run `weir args...`, returning the output (whatever the exit status).
pub fn run_weir(args: &[&str], cwd: &Path) -> Output {
    weir()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("spawn weir")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert that `weir` failed cleanly: exit code 1 (not a signal, not a panic) and `stderr`
/// holds every one of `needles`.
pub fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit code 1, got {:?}; stderr:\n{err}",
        o.status
    );
    assert!(!err.contains("panicked at"), "the host panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

/// Word counts by the operator's rule: maximal alphanumeric runs, lowercased.
pub fn count_words(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// The final count per word in `word\tcount` update lines; also checks every word's updates
/// count up 1, 2, 3... with none missing or repeated.
pub fn final_counts(updates: &str) -> BTreeMap<String, u64> {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for line in updates.lines() {
        let (word, count) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let count: u64 = count
            .parse()
            .unwrap_or_else(|_| panic!("bad count in {line:?}"));
        let prev = last.insert(word.to_owned(), count).unwrap_or(0);
        assert_eq!(
            count,
            prev + 1,
            "updates for {word:?} jump from {prev} to {count}"
        );
    }
    last
}

/// Deterministic text of `lines` lines over a small vocabulary (mixed case, punctuation).
pub fn sample_text(lines: usize, seed: u64) -> String {
    const WORDS: &[&str] = &[
        "River",
        "weir",
        "stream",
        "Water",
        "bends",
        "records",
        "count",
        "barrier",
        "state",
        "sled",
        "wasm",
        "COMPONENT",
        "host",
        "sink",
        "source",
        "operator",
        "crash",
        "exactly",
        "once",
        "émigré",
        "naïve",
        "x1",
        "42",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = String::new();
    for _ in 0..lines {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (x >> 60) as usize + 1;
        for j in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
            out.push_str(if j % 3 == 2 { ", " } else { " " });
        }
        out.push_str(".\n");
    }
    out
}

/// A scratch directory under target/, removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    let base = root().join("target").join("e2e-scratch");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::TempDir::new_in(base).unwrap()
}

/// The exact update lines an uninterrupted word count over `text` writes (one subtask).
pub fn expected_updates(text: &str) -> String {
    let mut counts: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut out = String::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        let c = counts.entry(word.clone()).or_insert(0);
        *c += 1;
        out.push_str(&format!("{word}\t{c}\n"));
    }
    out
}

/// A small xorshift generator for kill timings; the seed is printed so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn from_time(label: &str) -> Self {
        let seed = std::env::var("WEIR_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{label}: WEIR_TEST_SEED={seed}");
        Rng(seed)
    }

    /// Uniform in `lo..hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> std::time::Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        std::time::Duration::from_millis(lo + self.0 % (hi - lo))
    }
}

/// Start `weir run pipeline` in `cwd` in the background, its output going to files in `cwd`.
pub fn spawn_weir(args: &[&str], cwd: &Path, attempt: usize) -> std::process::Child {
    spawn_attempt(weir(), args, cwd, attempt)
}

/// Like [`spawn_weir`], with the coordinator logging each completed checkpoint to stderr, and
/// the launch of the job which operators run chained.
pub fn spawn_weir_logging_checkpoints(
    args: &[&str],
    cwd: &Path,
    attempt: usize,
) -> std::process::Child {
    let mut cmd = weir();
    cmd.env(
        "RUST_LOG",
        "warn,weir=info,weir_host::runtime::coordinator=debug,weir_host::runtime::launch=debug",
    );
    spawn_attempt(cmd, args, cwd, attempt)
}

/// Spawn `cmd args` in `cwd`, stdout and stderr to `attempt-<attempt>.out` and `.err` there.
fn spawn_attempt(
    mut cmd: Command,
    args: &[&str],
    cwd: &Path,
    attempt: usize,
) -> std::process::Child {
    let out = std::fs::File::create(cwd.join(format!("attempt-{attempt}.out"))).unwrap();
    let err = std::fs::File::create(cwd.join(format!("attempt-{attempt}.err"))).unwrap();
    cmd.args(args)
        .current_dir(cwd)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn weir")
}

/// What attempt `attempt` (of [`spawn_weir`] and friends) wrote to stderr so far.
pub fn attempt_log(cwd: &Path, attempt: usize) -> String {
    std::fs::read_to_string(cwd.join(format!("attempt-{attempt}.err"))).unwrap_or_default()
}

/// The path of the savepoint `weir run` printed on stopping (`savepoint <id>: <path>`), if any.
pub fn printed_savepoint(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        l.strip_prefix("savepoint ")
            .and_then(|r| r.split_once(": "))
            .map(|(_, p)| p.to_owned())
    })
}

/// Wait until attempt `attempt` logged a completed checkpoint, or ended (the caller reports
/// that).
pub fn wait_for_a_checkpoint(child: &mut std::process::Child, cwd: &Path, attempt: usize) {
    wait_for_checkpoints(child, cwd, attempt, 1);
}

/// Wait until attempt `attempt` logged `n` completed checkpoints, or ended (the caller reports
/// that). An event, not a deadline: only a run stuck for ten minutes fails here.
pub fn wait_for_checkpoints(child: &mut std::process::Child, cwd: &Path, attempt: usize, n: usize) {
    let log = cwd.join(format!("attempt-{attempt}.err"));
    let stuck = std::time::Instant::now() + STUCK;
    loop {
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        if err.matches(" complete in ").count() >= n || child.try_wait().unwrap().is_some() {
            return;
        }
        if std::time::Instant::now() > stuck {
            let _ = child.kill();
            let _ = child.wait();
            panic!("attempt {attempt} completed fewer than {n} checkpoints in ten minutes:\n{err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How long a wait on an event may last before the test calls the run stuck: far beyond any
/// slowness of a loaded machine, only there so a hung run fails instead of hanging the suite.
pub const STUCK: std::time::Duration = std::time::Duration::from_secs(600);

/// Compile and cache every component of `pipeline` (via `weir validate`): an attempt killed
/// while compiling would never get to run at all.
pub fn precompile(pipeline: &str, cwd: &Path) {
    let warm = run_weir(&["validate", pipeline], cwd);
    assert!(warm.status.success(), "{}", stderr(&warm));
}

/// Kill `weir run` with SIGKILL at random moments, restarting it each time, at least `kills`
/// times; then let it finish. Returns how many kills landed on a running process. Asserts that
/// later attempts resumed from a checkpoint rather than starting over.
pub fn crash_loop(args: &[&str], cwd: &Path, kills: usize, lo_ms: u64, hi_ms: u64) -> usize {
    crash_loop_changing(args, cwd, kills, lo_ms, hi_ms, |_, _| {})
}

/// [`crash_loop`], calling `change(attempt, last)` before each attempt (attempts count from 1;
/// `last` for the final, unkilled one), e.g. to rewrite the pipeline file. Attempt `a` logs
/// to `attempt-<a>.err`; the final attempt is the returned count + 1.
pub fn crash_loop_changing(
    args: &[&str],
    cwd: &Path,
    kills: usize,
    lo_ms: u64,
    hi_ms: u64,
    mut change: impl FnMut(usize, bool),
) -> usize {
    let pipeline = args.last().expect("the pipeline file is the last argument");
    change(1, false);
    precompile(pipeline, cwd);
    let mut rng = Rng::from_time("crash_loop");
    let mut landed = 0;
    let mut attempt = 0;
    while landed < kills {
        attempt += 1;
        change(attempt, false);
        let mut child = spawn_weir_logging_checkpoints(args, cwd, attempt);
        // Kill only after this attempt completed a checkpoint: on a slow machine an
        // interpreter's start-up alone can outlast the kill interval, and a loop of attempts
        // that never checkpoint would test nothing. When within the interval is random.
        wait_for_a_checkpoint(&mut child, cwd, attempt);
        std::thread::sleep(rng.millis(lo_ms, hi_ms));
        match child.try_wait().unwrap() {
            Some(status) => {
                let err = attempt_log(cwd, attempt);
                panic!(
                    "weir ended ({status}) after only {landed} kills: the input is too small for this test, or it failed:\n{err}"
                );
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                landed += 1;
            }
        }
    }
    attempt += 1;
    change(attempt, true);
    let status = spawn_weir(args, cwd, attempt).wait().unwrap();
    let err = attempt_log(cwd, attempt);
    assert!(status.success(), "the final run failed: {status}\n{err}");
    let resumed = (2..=attempt)
        .filter(|a| attempt_log(cwd, *a).contains("resuming from checkpoint"))
        .count();
    assert!(
        resumed >= (landed / 3).max(1),
        "only {resumed} of {} restarts resumed from a checkpoint",
        attempt - 1
    );
    landed
}

/// `pipeline` with its `/in/input.txt` file source throttled to `rate` lines per second, so a
/// crash loop outlasts its kills however fast the machine is.
pub fn throttled(pipeline: &str, rate: u32) -> String {
    let from = "path = \"/in/input.txt\" }";
    assert!(
        pipeline.contains(from),
        "no /in/input.txt file source to throttle"
    );
    pipeline.replace(from, &format!("path = \"/in/input.txt\", rate = {rate} }}"))
}

/// Send SIGTERM to `child` (the shell's builtin `kill`: no procps needed).
pub fn sigterm(child: &std::process::Child) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .expect("run sh");
    assert!(status.success(), "kill -TERM failed");
}

/// The four builds of the same word-count operator the conformance suite runs.
pub const LANGS: &[&str] = &["rust", "c", "python", "js"];

/// The word-count component in `lang`. Rust comes from the guest build; C, Python and
/// JavaScript from `examples/wordcount-<lang>/build.sh` (see [`lang_build`]).
pub fn lang_plugin(lang: &str) -> PathBuf {
    if lang == "rust" {
        return guest("wordcount");
    }
    lang_build(lang, None)
}

/// The failure-path test guest in C, Python or JavaScript (tests/lang-guests/faulty.*): passes
/// records through, fails on a record `fail`, allocates without bound on `hog`. The Rust
/// equivalent is the `misbehave` guest in mode `on-value`.
pub fn faulty_plugin(lang: &str) -> PathBuf {
    let ext = match lang {
        "c" => "c",
        "python" => "py",
        "js" => "js",
        _ => panic!("no faulty test guest in {lang}"),
    };
    lang_build(
        lang,
        Some(&root().join(format!("tests/lang-guests/faulty.{ext}"))),
    )
}

/// `source` (default: the example's own) built with `examples/wordcount-<lang>/build.sh`, cached
/// in target/lang/ and rebuilt only when a hash of the inputs (sources, guest support, WIT,
/// build script) changes: the Python (18 MB) and JavaScript (12 MB) builds take tens of seconds.
fn lang_build(lang: &str, source: Option<&Path>) -> PathBuf {
    let example = root().join(format!("examples/wordcount-{lang}"));
    let name = source.map_or("wordcount".into(), |s| {
        s.file_stem().unwrap().to_string_lossy().into_owned()
    });
    cached_build(lang, &example, &root().join("wit/weir.wit"), source, &name)
}

/// The event-time test guest in C or JavaScript (tests/lang-guests/timers.*, against
/// `wit/v0.2`): every record registers an event-time timer, each fired one a line, and
/// `finish` a last line — the Rust `event-time` guest's mode `timers`.
pub fn timers_plugin(lang: &str) -> PathBuf {
    let ext = match lang {
        "c" => "c",
        "js" => "js",
        _ => panic!("no timers test guest in {lang}"),
    };
    let example = root().join(format!("examples/wordcount-{lang}"));
    let source = root().join(format!("tests/lang-guests/timers.{ext}"));
    cached_build(
        lang,
        &example,
        &root().join("wit/v0.2/weir.wit"),
        Some(&source),
        "timers",
    )
}

/// The word count with its counts in keyed value state in C, Python or JavaScript
/// (tests/lang-guests/keyed.*, against `wit/v0.2`); the Rust one is examples/wordcount.
pub fn keyed_plugin(lang: &str) -> PathBuf {
    let ext = match lang {
        "c" => "c",
        "python" => "py",
        "js" => "js",
        _ => panic!("no keyed test guest in {lang}"),
    };
    let example = root().join(format!("examples/wordcount-{lang}"));
    let source = root().join(format!("tests/lang-guests/keyed.{ext}"));
    cached_build(
        lang,
        &example,
        &root().join("wit/v0.2/weir.wit"),
        Some(&source),
        "keyed",
    )
}

/// The Python build of the windowed-counts example's operator
/// (`examples/windowed-counts/python/build.sh`, against `wit/v0.3`), cached as [`lang_build`]'s.
pub fn python_windowed_counts() -> PathBuf {
    let example = root().join("examples/windowed-counts/python");
    cached_build(
        "python",
        &example,
        &root().join("wit/v0.3/weir.wit"),
        None,
        "windowed-counts",
    )
}

/// Run `example/build.sh OUT [source]`, cached in target/lang/<lang>/<name>.wasm under a hash of
/// the example's files, the language's guest support, the WIT file and `source`.
fn cached_build(
    lang: &str,
    example: &Path,
    wit: &Path,
    source: Option<&Path>,
    name: &str,
) -> PathBuf {
    static LOCKS: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let _one_at_a_time = LOCKS.get_or_init(Default::default).lock().unwrap();
    let support = root().join(format!("guest-sdk/{lang}"));
    let mut inputs: Vec<PathBuf> = vec![wit.to_path_buf()];
    for dir in [example, &support] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() && !p.to_string_lossy().ends_with(".wasm") {
                inputs.push(p);
            }
        }
    }
    inputs.extend(source.map(Path::to_path_buf));
    inputs.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in &inputs {
        for b in p.to_string_lossy().bytes().chain(std::fs::read(p).unwrap()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let dir = root().join("target/lang").join(lang);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.wasm"));
    let stamp = dir.join(format!("{name}.hash"));
    if out.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&format!("{h:016x}"))
    {
        return out;
    }
    let mut build = Command::new("bash");
    build.arg(example.join("build.sh")).arg(&out);
    if let Some(source) = source {
        build
            .arg(source)
            .arg(wit.parent().expect("a WIT file is in a directory"));
    }
    let o = build.output().expect("run the build script");
    assert!(
        o.status.success(),
        "building {} in {lang} failed:\n{}{}",
        source.map_or(name.to_string(), |s| s.display().to_string()),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(&stamp, format!("{h:016x}")).unwrap();
    out
}

/// The word count with `count_plugin` between a file source (`/in/input.txt`) and an
/// exactly-once file sink (`/out/counts.txt`); `extra` nodes go after the source, and the
/// counter reads `count_input`.
pub fn wordcount_pipeline(
    settings: &str,
    count_plugin: &Path,
    extra: &str,
    count_input: &str,
) -> String {
    format!(
        r#"
{settings}

[node.lines]
kind = "source"
plugin = "file"
config = {{ path = "/in/input.txt" }}
grants.dirs = [{{ host = "in", guest = "/in" }}]
{extra}
[node.count]
kind = "operator"
plugin = "{count}"
input = "{count_input}"

[node.out]
kind = "sink"
plugin = "file"
input = "count"
config = {{ path = "/out/counts.txt" }}
grants.dirs = [{{ host = "out", guest = "/out", mode = "read-write" }}]
"#,
        count = count_plugin.display()
    )
}
