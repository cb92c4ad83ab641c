//! Operating a running job: the HTTP API and its CLI clients, `/metrics`, the token, JSON logs,
//! and the dashboard in a real headless Chromium. Every server listens on 127.0.0.1 (or
//! 0.0.0.0 with a token) on a port the job picks, read from its log.

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Child;
use std::time::Instant;

const TOKEN: &str = "0123456789abcdef-operations-test";

/// Lines through the word count into an exactly-once file, checkpoints every 200 ms.
fn pipeline() -> String {
    wordcount_pipeline(
        "[checkpoint]\ninterval = \"200ms\"",
        &guest("wordcount"),
        "",
        "lines",
    )
}

/// A scratch directory with `lines` lines of input and `pipeline` as p.toml.
fn setup(lines: usize, pipeline: &str) -> (tempfile::TempDir, String) {
    let dir = scratch();
    for d in ["in", "out"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let text = sample_text(lines, 5);
    std::fs::write(dir.path().join("in/input.txt"), &text).unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    (dir, text)
}

/// Wait for attempt `attempt`'s log to name the address its HTTP API listens on.
fn serving(child: &mut Child, cwd: &Path, attempt: usize) -> String {
    let log = cwd.join(format!("attempt-{attempt}.err"));
    let stuck = Instant::now() + STUCK;
    loop {
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = err.find("http: serving on http://") {
            let rest = &err[at + "http: serving on http://".len()..];
            let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap();
            return rest[..end].to_owned();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("weir ended ({status}) before serving its API:\n{err}");
        }
        assert!(Instant::now() < stuck, "no API after ten minutes:\n{err}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Start `weir run p.toml` in `cwd` with its API on a free port; once the job runs and records
/// reach its sink: the process and the API's address.
fn run_flowing(cwd: &Path) -> (Child, String) {
    let mut child = spawn_weir(&["run", "p.toml", "--http", "127.0.0.1:0"], cwd, 1);
    let addr = serving(&mut child, cwd, 1);
    wait_until(&mut child, "records flow", || {
        let job = get(&addr, "/api/job");
        job["status"] == "running" && node(&job, "out")["records_in"].as_u64() > Some(0)
    });
    (child, addr)
}

/// `method path` on the API at `addr`, with `token` if given: (status, JSON body).
fn request(addr: &str, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    request_with(addr, method, path, token, None)
}

/// The same, POSTing `body` when given.
fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{addr}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let reply = if method == "GET" {
        let mut r = agent.get(&url);
        if let Some(a) = &auth {
            r = r.header("Authorization", a);
        }
        r.call()
    } else {
        let mut r = agent.post(&url);
        if let Some(a) = &auth {
            r = r.header("Authorization", a);
        }
        match body {
            Some(bytes) => r.send(bytes),
            None => r.send_empty(),
        }
    };
    let mut reply = reply.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let code = reply.status().as_u16();
    let text = reply.body_mut().read_to_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, body)
}

fn get(addr: &str, path: &str) -> Value {
    let (code, body) = request(addr, "GET", path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

/// `GET /metrics` as text.
fn scrape(addr: &str) -> String {
    match request(addr, "GET", "/metrics", None) {
        (200, Value::String(text)) => text,
        other => panic!("GET /metrics: {other:?}"),
    }
}

/// The value of the sample `name{labels}` in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Poll `f` until it holds (an event: records flowing, a counter moving), or the run ends.
fn wait_until(child: &mut Child, what: &str, mut f: impl FnMut() -> bool) {
    let stuck = Instant::now() + STUCK;
    while !f() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before {what}"
        );
        assert!(Instant::now() < stuck, "not {what} after ten minutes");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn node<'a>(job: &'a Value, uid: &str) -> &'a Value {
    job["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["uid"] == uid)
        .unwrap_or_else(|| panic!("no node {uid} in {job}"))
}

#[test]
fn the_api_shows_the_running_job_takes_savepoints_and_stops_it_exactly() {
    let (dir, text) = setup(150_000, &throttled(&pipeline(), 15_000));
    let cwd = dir.path();
    let (mut child, addr) = run_flowing(cwd);

    // The graph and the metrics per node and subtask.
    let job = get(&addr, "/api/job");
    assert_eq!(job["attempt"], 1);
    let count = node(&job, "count");
    assert_eq!(count["kind"], "operator");
    assert_eq!(count["inputs"][0]["from"], "lines");
    assert_eq!(count["inputs"][0]["partition"], "forward");
    assert_eq!(count["subtasks"].as_array().unwrap().len(), 1);
    assert!(
        count["subtasks"][0]["memory_bytes"].as_u64() > Some(0),
        "{count}"
    );

    // /metrics moves while records flow.
    let series = r#"weir_records_out_total{node="lines",subtask="0"}"#;
    let first = sample(&scrape(&addr), series).expect("records out of `lines`");
    wait_until(&mut child, "the counter moves", || {
        sample(&scrape(&addr), series) > Some(first)
    });
    let text_now = scrape(&addr);
    for name in [
        "# TYPE weir_busy_seconds_total counter",
        "# TYPE weir_backpressured_seconds_total counter",
        "# TYPE weir_input_queue_fill_ratio gauge",
        "# TYPE weir_restarts_total counter",
        "# TYPE weir_checkpoints_completed_total counter",
        r#"weir_plugin_memory_bytes{node="count",subtask="0"}"#,
        r#"weir_plugin_memory_bytes{node="lines",subtask="0"}"#,
        r#"weir_plugin_memory_bytes{node="out",subtask="0"}"#,
        r#"weir_records_in_per_second{node="count"}"#,
        r#"weir_job_status{status="running"} 1"#,
    ] {
        assert!(text_now.contains(name), "no {name} in\n{text_now}");
    }

    // The word count's keyed state, queried while it runs.
    let word = text
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap()
        .to_lowercase();
    // The SDK sends its cached writes at least once a second while the operator is called.
    let query = format!("/api/nodes/count/state?key={word}");
    wait_until(&mut child, "the running job's state holds the word", || {
        get(&addr, &query)[0]["key"] == word.as_str()
    });
    let held = get(&addr, &query);
    assert_eq!(held[0]["key"], word.as_str(), "{held}");
    assert_eq!(held[0]["state"], "counts", "{held}");
    assert!(
        held[0]["value_hex"].as_str().is_some_and(|h| !h.is_empty()),
        "{held}"
    );
    let (code, _) = request(&addr, "GET", "/api/nodes/nope/state?key=a", None);
    assert_eq!(code, 404);

    // A checkpoint and a savepoint on request; the job goes on.
    // A periodic checkpoint (every 200 ms here) may be in flight: the API says to ask again.
    let mut answer = None;
    wait_until(&mut child, "a checkpoint on request", || {
        let (code, cp) = request(&addr, "POST", "/api/checkpoints", None);
        answer = Some((code, cp));
        code != 409
    });
    let (code, cp) = answer.expect("asked");
    assert_eq!(code, 200, "{cp}");
    assert_eq!(cp["status"], "completed", "{cp}");
    let o = run_weir(&["savepoint", &addr], cwd);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = stdout(&o);
    let path = said.split(": ").nth(1).unwrap().trim();
    assert!(Path::new(path).is_dir(), "{said}");
    let history = get(&addr, "/api/checkpoints");
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["savepoint"] == true && c["path"] == path),
        "{history}"
    );

    let o = run_weir(&["status", &addr], cwd);
    assert!(o.status.success(), "{}", stderr(&o));
    let status = stdout(&o);
    for word in ["running", "lines", "count", "out"] {
        assert!(status.contains(word), "{status}");
    }

    // The store is the running job's: listing its checkpoints says where to look instead.
    let o = run_weir(&["checkpoints", "list", "p.toml"], cwd);
    assert_clean_failure(&o, &["a running job holds it", "weir status ADDR"]);
    assert!(!stderr(&o).contains("WouldBlock"), "{}", stderr(&o));

    // Stop with a savepoint from the CLI; resuming from it gives exactly the whole output.
    // A plain stop keeps the state: it stops with a savepoint.
    let o = run_weir(&["stop", &addr], cwd);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = stdout(&o);
    assert!(said.starts_with("stopped with savepoint "), "{said}");
    let savepoint = said.split(": ").nth(1).unwrap().trim().to_owned();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "weir run ended with {exit}");
    let o = run_weir(&["run", "--from-savepoint", &savepoint, "p.toml"], cwd);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = std::fs::read_to_string(cwd.join("out/counts.txt")).unwrap();
    assert!(
        got == expected_updates(&text),
        "the output across the stop is not exact"
    );
}

#[test]
fn control_needs_the_token_and_other_addresses_refuse_to_start_without_one() {
    let (dir, _) = setup(100_000, &throttled(&pipeline(), 5_000));
    let cwd = dir.path();

    // Beyond loopback without a token: refused, and nothing ran.
    let o = run_weir(&["run", "p.toml", "--http", "0.0.0.0:0"], cwd);
    assert_clean_failure(
        &o,
        &["refusing to serve the HTTP API on 0.0.0.0:0 without a token"],
    );
    assert_eq!(
        std::fs::read_to_string(cwd.join("out/counts.txt")).unwrap_or_default(),
        ""
    );
    // A token too short to be one is refused too.
    let mut short = weir();
    short.env("WEIR_HTTP_TOKEN", "abc");
    let o = short
        .args(["run", "p.toml", "--http", "0.0.0.0:0"])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert_clean_failure(&o, &["shorter than 16 characters"]);

    // With the token: reads are open, control wants it.
    let mut cmd = weir();
    cmd.env("WEIR_HTTP_TOKEN", TOKEN);
    let log = std::fs::File::create(cwd.join("attempt-1.err")).unwrap();
    let mut child = cmd
        .args(["run", "p.toml", "--http", "0.0.0.0:0"])
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let bound = serving(&mut child, cwd, 1);
    let addr = format!("127.0.0.1:{}", bound.rsplit(':').next().unwrap());
    wait_until(&mut child, "running", || {
        get(&addr, "/api/job")["status"] == "running"
    });
    for path in [
        "/api/savepoints",
        "/api/checkpoints",
        "/api/cancel",
        "/api/stop",
    ] {
        let (code, body) = request(&addr, "POST", path, None);
        assert_eq!(code, 401, "{path} without a token: {body}");
        let (code, _) = request(&addr, "POST", path, Some("wrong-token-0123456789"));
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, _) = request(&addr, "GET", "/api/nodes/count/state?prefix=a", None);
    assert_eq!(code, 401, "keyed state without a token");
    let o = run_weir(&["savepoint", &addr], cwd);
    assert_clean_failure(&o, &["WEIR_HTTP_TOKEN"]);
    let (code, sp) = request(&addr, "POST", "/api/savepoints", Some(TOKEN));
    assert_eq!(code, 200, "{sp}");
    assert!(Path::new(sp["path"].as_str().unwrap()).is_dir(), "{sp}");

    // Cancel: the job ends at once, without a savepoint, and says so.
    let (code, body) = request(&addr, "POST", "/api/cancel", Some(TOKEN));
    assert_eq!((code, body["status"].as_str()), (200, Some("cancelled")));
    let exit = child.wait().unwrap();
    assert!(!exit.success());
    let err = std::fs::read_to_string(cwd.join("attempt-1.err")).unwrap();
    assert!(err.contains("cancelled on request"), "{err}");
}

#[test]
fn the_cli_says_when_nothing_listens() {
    let dir = scratch();
    // Port 9 (discard) on loopback: nothing of ours listens there.
    for args in [
        vec!["status", "127.0.0.1:9"],
        vec!["savepoint", "127.0.0.1:9"],
        vec!["stop", "127.0.0.1:9", "--savepoint"],
    ] {
        let o = run_weir(&args, dir.path());
        assert_clean_failure(&o, &["nothing answers at http://127.0.0.1:9", "--http"]);
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (dir, _) = setup(2_000, &pipeline());
    let o = weir()
        .env("RUST_LOG", "info")
        .args([
            "--log-format",
            "json",
            "run",
            "p.toml",
            "-q",
            "--http",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("http: serving on http://127.0.0.1:")),
        "{err}"
    );
}

/// Debian's Chromium, headless, as root-safe as the sandbox allows, with no network of its own.
fn chromium(profile: &Path) -> std::process::Command {
    let bin = Path::new("/usr/bin/chromium");
    assert!(
        bin.exists(),
        "Chromium is not installed: scripts/test.sh installs Debian's chromium package"
    );
    let mut c = std::process::Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,760",
        // Run the page's timers (its once-a-second refresh) for this much virtual time.
        "--virtual-time-budget=2500",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The page as the browser built it, after its scripts ran.
fn rendered(profile: &Path, url: &str) -> String {
    let o = chromium(profile)
        .args(["--dump-dom", url])
        .output()
        .unwrap();
    assert!(o.status.success(), "chromium: {}", stderr(&o));
    stdout(&o)
}

/// The number in the `records-in` cell of node `uid`'s row.
fn records_in(dom: &str, uid: &str) -> u64 {
    let row = &dom[dom
        .find(&format!("id=\"row-{uid}\""))
        .unwrap_or_else(|| panic!("no row for {uid}:\n{dom}"))..];
    let cell = &row[row.find("records-in\">").unwrap() + "records-in\">".len()..];
    cell[..cell.find('<').unwrap()].parse().unwrap()
}

#[test]
fn the_dashboard_shows_the_running_job_in_a_real_browser() {
    let (dir, _) = setup(200_000, &throttled(&pipeline(), 10_000));
    let cwd = dir.path();
    let (mut child, addr) = run_flowing(cwd);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");
    let first = rendered(profile.path(), &url);
    for uid in ["lines", "count", "out"] {
        assert!(
            first.contains(&format!("id=\"node-{uid}\"")),
            "graph lacks {uid}:\n{first}"
        );
    }
    assert!(first.contains(">running<"), "{first}");
    let before = records_in(&first, "out");
    assert!(before > 0);
    wait_until(&mut child, "the page's numbers change", || {
        records_in(&rendered(profile.path(), &url), "out") > before
    });
    // The screenshot docs/operations.md shows, taken here.
    let shot = root().join("target/dashboard.png");
    let o = chromium(profile.path())
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success() && shot.exists(), "{}", stderr(&o));
    let o = run_weir(&["stop", &addr, "--cancel"], cwd);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("cancelled"), "{}", stdout(&o));
    let _ = child.wait();
}

#[test]
fn a_new_build_takes_over_at_a_savepoint_exactly_and_one_that_refuses_leaves_the_old_running() {
    let (dir, text) = setup(100_000, &throttled(&pipeline(), 6_000));
    let cwd = dir.path();
    let (mut child, addr) = run_flowing(cwd);

    // Not an operator, not a component: refused before the job is touched.
    let v2 = guest("wordcount-v2");
    let o = run_weir(&["swap", &addr, "out", v2.to_str().unwrap()], cwd);
    assert_clean_failure(&o, &["only operators can be swapped live"]);
    let (code, body) = request_with(&addr, "POST", "/api/nodes/count/swap", None, Some(b"junk"));
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        get(&addr, "/api/job")["attempt"],
        1,
        "a refused build stopped the job"
    );

    // The second build takes over the counts (its state version 1 migrates version 0) at a
    // savepoint; every line after that savepoint is its output.
    let bytes = std::fs::read(&v2).unwrap();
    let (code, done) = request_with(&addr, "POST", "/api/nodes/count/swap", None, Some(&bytes));
    assert_eq!(code, 200, "{done}");
    let savepoint = done["savepoint"].as_u64().unwrap();
    let before = done["records_before"]["out"].as_u64().unwrap();
    assert!(done["checkpoint"].as_u64() > Some(savepoint), "{done}");
    assert!(
        Path::new(done["savepoint_path"].as_str().unwrap()).is_dir(),
        "{done}"
    );

    // A build that refuses that state: the job resumes from the same savepoint with the
    // build it ran, and the caller hears why.
    let o = run_weir(
        &["swap", &addr, "count", guest("misbehave").to_str().unwrap()],
        cwd,
    );
    assert_clean_failure(
        &o,
        &[
            "could not take over",
            "state is version 1 and this build's is version 0",
            "old build",
        ],
    );
    wait_until(&mut child, "running again", || {
        get(&addr, "/api/job")["status"] == "running"
    });

    // A crash after the swap: the restarted job runs the swapped build (swaps.json), not the
    // pipeline file's, and the output stays exact.
    let record = std::fs::read_to_string(cwd.join(".weir/p/swaps.json")).unwrap();
    assert!(record.contains("\"count\""), "{record}");
    child.kill().unwrap();
    child.wait().unwrap();
    let o = run_weir(&["run", "p.toml"], cwd);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("swapped in at savepoint {savepoint}")),
        "the restart did not say it runs the swapped build:\n{err}"
    );
    let got = std::fs::read_to_string(cwd.join("out/counts.txt")).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    let old = lines.iter().take_while(|l| !l.ends_with("\tv2")).count();
    assert_eq!(
        old as u64, before,
        "the old build's output ends where the savepoint {savepoint} says"
    );
    assert!(
        lines[old..].iter().all(|l| l.ends_with("\tv2")),
        "a line of the old build after the swap"
    );
    assert!(
        old > 0 && old < lines.len(),
        "the swap was not in the middle of the run"
    );
    let normalised: String = lines
        .iter()
        .map(|l| format!("{}\n", l.strip_suffix("\tv2").unwrap_or(l)))
        .collect();
    assert!(
        normalised == expected_updates(&text),
        "the output across the swaps is not exact"
    );
}

#[test]
fn the_pipeline_file_can_ask_for_the_api_with_a_token_file() {
    let extra = "\n[http]\nlisten = \"0.0.0.0:0\"\ntoken_file = \"api-token\"\n";
    let with_http = format!("{}{extra}", throttled(&pipeline(), 5_000));
    let (dir, _) = setup(100_000, &with_http);
    let cwd = dir.path();
    // The token file is missing: a clear refusal, nothing run.
    let o = run_weir(&["run", "p.toml"], cwd);
    assert_clean_failure(&o, &["cannot read the HTTP API token file", "api-token"]);
    std::fs::write(cwd.join("api-token"), format!("{TOKEN}\n")).unwrap();
    let mut child = spawn_weir(&["run", "p.toml"], cwd, 1);
    let bound = serving(&mut child, cwd, 1);
    assert!(bound.starts_with("0.0.0.0:"), "{bound}");
    let addr = format!("127.0.0.1:{}", bound.rsplit(':').next().unwrap());
    wait_until(&mut child, "running", || {
        get(&addr, "/api/job")["status"] == "running"
    });
    let (code, _) = request(&addr, "POST", "/api/savepoints", None);
    assert_eq!(code, 401);
    let (code, sp) = request(&addr, "POST", "/api/savepoints", Some(TOKEN));
    assert_eq!(code, 200, "{sp}");
    let (code, _) = request(&addr, "POST", "/api/cancel", Some(TOKEN));
    assert_eq!(code, 200);
    assert!(!child.wait().unwrap().success());
}
