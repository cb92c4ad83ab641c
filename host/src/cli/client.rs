//! `weir status|savepoint|stop ADDR`: clients of a running job's HTTP API (`weir run --http`).
//!
//! Invariant: every failure says what to do: nothing listening names the flag that starts the
//! API, a refused token names the variable that carries it, and the job's own error is printed
//! as the job wrote it.

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct AddrArgs {
    /// The job's HTTP API: HOST:PORT as given to `weir run --http`, or a URL.
    pub addr: String,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub at: AddrArgs,
    /// Print the API's JSON as it is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SwapArgs {
    #[command(flatten)]
    pub at: AddrArgs,
    /// The operator node whose component to replace.
    pub node: String,
    /// The new build (.wasm component), uploaded to the job.
    pub plugin: std::path::PathBuf,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    #[command(flatten)]
    pub at: AddrArgs,
    /// Cancel at once, without a savepoint (the job resumes from its latest checkpoint).
    #[arg(long)]
    pub cancel: bool,
    /// Stop with a savepoint: what `weir stop` does unless told --cancel (kept for scripts).
    #[arg(long, hide = true, conflicts_with = "cancel")]
    pub savepoint: bool,
}

/// The API's base URL.
fn base(addr: &str) -> String {
    let addr = addr.trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// One request; the reply's JSON, or an error that says what to do.
fn call(addr: &str, method: &str, path: &str) -> anyhow::Result<Value> {
    call_with(addr, method, path, None)
}

/// The same, POSTing `body` when given.
fn call_with(addr: &str, method: &str, path: &str, body: Option<&[u8]>) -> anyhow::Result<Value> {
    let url = format!("{}{path}", base(addr));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .build()
        .into();
    let token = std::env::var(crate::http::TOKEN_ENV).ok();
    let auth = token.as_ref().map(|t| format!("Bearer {}", t.trim()));
    let sent = match method {
        "GET" => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        _ => {
            let mut r = agent.post(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            match body {
                Some(bytes) => r.header("Content-Type", "application/wasm").send(bytes),
                None => r.send_empty(),
            }
        }
    };
    let mut reply = sent.map_err(|e| {
        anyhow::anyhow!(
            "nothing answers at {} ({e}): is a job running there with `weir run --http {addr}` (or [http] listen)?",
            base(addr)
        )
    })?;
    let code = reply.status();
    let text = reply
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the reply of {url}"))?;
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{url} did not answer in JSON: is that a weir job's API?"))?;
    if code == 401 {
        bail!(
            "the job refuses the request without its token: set {} to the token it was started with",
            crate::http::TOKEN_ENV
        );
    }
    if !code.is_success() {
        let why = body["error"].as_str().map(str::to_owned);
        match why {
            Some(why) => bail!("the job answered {code}: {why}"),
            None => return Ok(body),
        }
    }
    Ok(body)
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let job = call(&args.at.addr, "GET", "/api/job")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&job)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} (job {}): {}, attempt {}, {} restart(s)",
        job["pipeline"].as_str().unwrap_or("?"),
        job["job"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?"),
        job["attempt"],
        job["restarts"],
    );
    let cp = &job["checkpoints"];
    let latest = &cp["latest"];
    println!(
        "checkpoints: {} completed, {} failed{}",
        cp["completed"],
        cp["failed"],
        if latest.is_null() {
            String::new()
        } else {
            format!(
                "; latest {} {}{}",
                latest["id"],
                latest["status"].as_str().unwrap_or("?"),
                latest["duration_ms"]
                    .as_u64()
                    .map(|d| format!(" in {d} ms"))
                    .unwrap_or_default()
            )
        }
    );
    if let Some(f) = job["last_failure"].as_str() {
        println!("last failure: {f}");
    }
    println!(
        "{:<16} {:<8} {:>4} {:>12} {:>12} {:>9} {:>9} {:>5} {:>5} {:>10}",
        "node", "kind", "par", "records in", "records out", "in/s", "out/s", "busy", "bp", "wm lag"
    );
    for n in job["nodes"].as_array().into_iter().flatten() {
        let f = |k: &str| n[k].as_f64().unwrap_or(0.0);
        println!(
            "{:<16} {:<8} {:>4} {:>12} {:>12} {:>9} {:>9} {:>4.0}% {:>4.0}% {:>10}",
            n["uid"].as_str().unwrap_or("?"),
            n["kind"].as_str().unwrap_or("?"),
            n["parallelism"].to_string(),
            n["records_in"].to_string(),
            n["records_out"].to_string(),
            crate::metrics::human(f("rate_in")),
            crate::metrics::human(f("rate_out")),
            100.0 * f("busy"),
            100.0 * f("backpressure"),
            n["watermark_lag_ms"]
                .as_i64()
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn savepoint(args: AddrArgs) -> anyhow::Result<ExitCode> {
    let sp = call(&args.addr, "POST", "/api/savepoints")?;
    println!(
        "savepoint {}: {}",
        sp["id"],
        sp["path"]
            .as_str()
            .unwrap_or("(checkpointing is off: nothing written)")
    );
    Ok(ExitCode::SUCCESS)
}

/// Stop a job keeping its state (a savepoint, as SIGTERM and the dashboard do), or with
/// `--cancel` at once without one.
pub fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let path = if args.cancel {
        "/api/cancel"
    } else {
        "/api/stop?savepoint=true"
    };
    let reply = call(&args.at.addr, "POST", path)?;
    let status = reply["status"].as_str().unwrap_or("?");
    if !args.cancel {
        let sp = &reply["savepoint"];
        if sp.is_null() {
            bail!(
                "the job ended ({status}) without a savepoint{}",
                reply["last_failure"]
                    .as_str()
                    .map(|f| format!(": {f}"))
                    .unwrap_or_default()
            );
        }
        println!(
            "stopped with savepoint {}: {}",
            sp["id"],
            sp["path"].as_str().unwrap_or("?")
        );
    } else {
        println!("cancelled ({status})");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn swap(args: SwapArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.plugin)
        .with_context(|| format!("cannot read {}", args.plugin.display()))?;
    let done = call_with(
        &args.at.addr,
        "POST",
        &format!("/api/nodes/{}/swap", args.node),
        Some(&bytes),
    )?;
    println!(
        "node `{}` now runs {} (from savepoint {}; its first checkpoint {})",
        args.node,
        args.plugin.display(),
        done["savepoint"],
        done["checkpoint"]
    );
    Ok(ExitCode::SUCCESS)
}
