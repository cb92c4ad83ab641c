//! `weir run PIPELINE`: open the pipeline's state (its lock, checkpoint store, job identity, a
//! savepoint to resume from), serve its HTTP API, and hand the job to the [`Supervisor`], which
//! runs its attempts; stop with a savepoint on SIGTERM/SIGINT.
//!
//! Invariant: one run per state directory and per output; a savepoint of another job is taken
//! only when asked for.

use crate::checkpoint::{identity, savepoint};
use crate::config::PipelineSpec;
use crate::config::checkpoint::CheckpointSettings;
use crate::graph::JobGraph;
use crate::live::Live;
use crate::plugin::PluginHost;
use crate::restart::{RestartStrategy, RestartTracker};
use crate::runtime;
use crate::state::StateStore;
use crate::supervisor::{Options, Supervisor};
use anyhow::{Context, bail};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// No live progress and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Start over: delete this pipeline's checkpoints first (asks on a terminal; see --yes).
    #[arg(long)]
    pub fresh: bool,
    /// With --fresh: delete without asking (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Development: start over on every run without asking (--fresh --yes), for the loop of
    /// editing a plugin, building it and running the same bounded job again.
    #[arg(long, conflicts_with = "from_savepoint")]
    pub dev: bool,
    /// Resume from this savepoint directory instead of the latest checkpoint.
    #[arg(long, value_name = "PATH", conflicts_with = "fresh")]
    pub from_savepoint: Option<PathBuf>,
    /// Drop the saved state of nodes the pipeline no longer has instead of refusing to start.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// With --from-savepoint: take the state of another job's savepoint on purpose (nodes are
    /// matched by uid; parallelism must fit).
    #[arg(long, requires = "from_savepoint")]
    pub allow_other_job: bool,
    /// On SIGTERM/SIGINT, how long the savepoint may take before the job is cancelled without
    /// one (every plugin call cut short), e.g. "30s".
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_grace)]
    pub stop_grace: std::time::Duration,
    /// Serve the HTTP API, the dashboard and /metrics on this address (e.g. 127.0.0.1:8080;
    /// port 0 picks a free one). Overrides [http] listen. Any address but loopback needs a
    /// token in WEIR_HTTP_TOKEN (or [http] token_file).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
}

fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as \"30s\" or \"2m\""))
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Listen for stop signals first: a SIGTERM during start-up (compiling plugins can take
    // seconds) still stops the job with a savepoint rather than killing the process.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    // Set by a stop asked for by a person (a signal, the API's stop), not by a swap.
    let stop_asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    rt.spawn(stop_on_signals(stop_tx.clone(), stop_asked.clone()));
    let spec = PipelineSpec::load(&args.pipeline)?;
    let settings = CheckpointSettings::from_spec(&spec)?;
    let restart = RestartStrategy::from_spec(&spec, settings.enabled)?;
    let host = Arc::new(PluginHost::new()?);
    let mut graph = JobGraph::build(&spec, &host)?;

    // One run per state directory and per output, checkpoints on or off.
    let _lock = identity::lock(&settings.dir)?;
    let _outputs = crate::outputs::lock(&graph)?;
    let Opened {
        store,
        job,
        from_savepoint,
        first_id: run_first_id,
    } = open_state(&args, &spec, &settings, &graph)?;
    let keyed_store = store.as_ref().map(|s| s.keyed_store()).transpose()?;
    // `weir state get|scan` asks the running job through its state directory.
    let _serving = match &keyed_store {
        Some(k) => match crate::keyed::live::serve(&settings.dir, k.registry.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("live state queries are unavailable: {e}");
                None
            }
        },
        None => None,
    };
    if let (Some(sp), Some(store)) = (&from_savepoint, &store) {
        sp.import_pieces(store.pieces())
            .map_err(anyhow::Error::msg)?;
    }
    // Builds swapped in while an earlier run of this job ran (`weir swap`) run again.
    if settings.enabled {
        apply_recorded_swaps(&mut graph, &host, &settings.dir, from_savepoint.as_ref())?;
    }
    // The HTTP API sees the job through `live` and asks it things through `commands`.
    let live = Live::new(&graph, &job.id);
    let (commands_tx, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    let commands: runtime::Commands = Arc::new(tokio::sync::Mutex::new(commands_rx));
    // Dropped when `run` returns, after the last attempt: a stop's reply still goes out.
    let _server = match http_settings(&args, &spec)? {
        Some(http) => Some(crate::http::Server::start(
            rt.handle(),
            &http,
            crate::http::Control {
                live: live.clone(),
                commands: commands_tx,
                stop: stop_tx.clone(),
                stop_asked: stop_asked.clone(),
                keyed: keyed_store.as_ref().map(|k| k.registry.clone()),
                swap: settings
                    .enabled
                    .then(|| swap_preparer(&graph, &host, &settings.dir)),
            },
        )?),
        None => None,
    };
    Supervisor {
        options: Options {
            pipeline: args.pipeline.clone(),
            quiet: args.quiet,
            allow_non_restored_state: args.allow_non_restored_state,
            stop_grace: args.stop_grace,
        },
        spec,
        settings,
        host,
        graph,
        store,
        job,
        from_savepoint,
        first_id: run_first_id,
        keyed: keyed_store,
        live,
        commands,
        stop_tx,
        stop_rx,
        stop_asked,
        tracker: RestartTracker::new(restart),
    }
    .supervise(&rt)
}

/// The job's state as a run finds it.
struct Opened {
    store: Option<StateStore>,
    job: identity::JobIdentity,
    from_savepoint: Option<savepoint::Savepoint>,
    /// The first checkpoint id of this run.
    first_id: u64,
}

/// Open the job's state (its lock held): start over if asked, open the checkpoint store, load
/// or create the job's identity, read the savepoint to resume from, and check that the key
/// groups did not change.
fn open_state(
    args: &RunArgs,
    spec: &PipelineSpec,
    settings: &CheckpointSettings,
    graph: &JobGraph,
) -> anyhow::Result<Opened> {
    if args.fresh || args.dev {
        start_over(&settings.dir, args.yes || args.dev)?;
    }
    let store = if settings.enabled {
        Some(StateStore::open(&settings.dir)?)
    } else {
        if args.from_savepoint.is_some() {
            bail!(
                "checkpointing is off in {} ([checkpoint] enabled = false): there is nothing to resume into; turn it on to use --from-savepoint",
                args.pipeline.display()
            );
        }
        None
    };
    let (mut job, created) = identity::load_or_create(&settings.dir, &spec.name, &spec.path)?;
    let from_savepoint = match &args.from_savepoint {
        Some(path) => {
            let sp = savepoint::read(path).map_err(anyhow::Error::msg)?;
            check_savepoint_owner(
                &sp.meta,
                &mut job,
                created,
                &spec.name,
                &settings.dir,
                args.allow_other_job,
                path,
            )?;
            eprintln!(
                "resuming from savepoint {} (checkpoint {})",
                path.display(),
                sp.meta.checkpoint
            );
            Some(sp)
        }
        None => None,
    };
    let run_first_id = match &store {
        Some(s) => s.next_id()?.max(
            from_savepoint
                .as_ref()
                .map_or(0, |sp| sp.meta.checkpoint + 1),
        ),
        None => 1,
    };
    // Keyed state: key groups are fixed for the life of the job's state.
    match job.max_parallelism {
        Some(m) if m != graph.max_parallelism && job.checkpointed => bail!(
            "{}: this job's keyed state has {m} key groups ([pipeline] max_parallelism = {m} when it started), the pipeline now says {}: max_parallelism is fixed for the life of a job's state. Set it back to {m}, or start over with --fresh --yes",
            args.pipeline.display(),
            graph.max_parallelism
        ),
        _ => job.max_parallelism = Some(graph.max_parallelism),
    }
    Ok(Opened {
        store,
        job,
        from_savepoint,
        first_id: run_first_id,
    })
}

/// Put the builds recorded by earlier swaps into their nodes (not those swapped in after the
/// savepoint this run starts from).
fn apply_recorded_swaps(
    graph: &mut JobGraph,
    host: &PluginHost,
    dir: &std::path::Path,
    from_savepoint: Option<&savepoint::Savepoint>,
) -> anyhow::Result<()> {
    for (uid, swapped) in crate::swap::recorded(dir).map_err(anyhow::Error::msg)? {
        if from_savepoint.is_some_and(|sp| sp.meta.checkpoint < swapped.savepoint) {
            continue;
        }
        let Some(node) = graph.nodes.iter_mut().find(|n| n.uid == uid) else {
            tracing::warn!(
                "a swap was recorded for node `{uid}`, which the pipeline no longer has"
            );
            continue;
        };
        let plugin = crate::swap::load(host, &swapped.plugin, &uid, node.kind)
            .map_err(|e| anyhow::anyhow!("the build swapped into `{uid}` cannot load: {e}"))?;
        tracing::info!(
            "node `{uid}` runs {} (swapped in at savepoint {}), not the pipeline file's plugin: point the pipeline file at it to make that permanent",
            swapped.plugin.display(),
            swapped.savepoint
        );
        node.plugin = crate::graph::Plugin::Wasm(plugin);
    }
    Ok(())
}

/// What the HTTP API calls to check a new build for a node: saved in the state directory,
/// loaded, of the node's kind, and opened once with the node's config.
fn swap_preparer(
    graph: &JobGraph,
    host: &Arc<PluginHost>,
    dir: &std::path::Path,
) -> crate::http::PrepareSwap {
    struct Target {
        sandbox: crate::plugin::SandboxSpec,
        limits: crate::plugin::Limits,
        config: crate::config::PluginConfig,
        parallelism: u32,
    }
    let targets: std::collections::HashMap<String, Target> = graph
        .nodes
        .iter()
        .filter(|n| {
            n.kind == crate::config::NodeKind::Operator
                && matches!(n.plugin, crate::graph::Plugin::Wasm(_))
        })
        .map(|n| {
            (
                n.uid.clone(),
                Target {
                    sandbox: n.sandbox.clone(),
                    limits: n.limits,
                    config: n.config.clone(),
                    parallelism: n.parallelism,
                },
            )
        })
        .collect();
    let host = host.clone();
    let dir = dir.to_owned();
    Arc::new(move |uid: &str, bytes: &[u8]| {
        let t = targets.get(uid).ok_or_else(|| {
            format!("`{uid}` is not a Wasm operator of this job: only operators can be swapped live (sources and sinks hold external positions and transactions)")
        })?;
        let path = crate::swap::save_component(&dir, bytes)
            .map_err(|e| format!("cannot save the new build in {}: {e}", dir.display()))?;
        let plugin = crate::swap::load(&host, &path, uid, crate::config::NodeKind::Operator)?;
        crate::plugin::OperatorInstance::start(
            &crate::plugin::InstanceSpec {
                host: &host,
                plugin: &plugin,
                node: uid,
                subtask: 0,
                parallelism: t.parallelism,
                sandbox: &t.sandbox,
                limits: t.limits,
                config: &t.config,
            },
            None,
        )
        .map_err(|e| format!("the new build does not start: {e}"))?;
        Ok(crate::swap::Prepared {
            plugin,
            path,
            state_dir: dir.clone(),
        })
    })
}

/// Where the HTTP API listens, if anywhere: `--http`, else `[http] listen`.
fn http_settings(
    args: &RunArgs,
    spec: &PipelineSpec,
) -> anyhow::Result<Option<crate::http::Settings>> {
    let section = spec.file.http.as_ref();
    let listen = match (args.http, section) {
        (Some(addr), _) => addr,
        (None, Some(h)) => h.listen.parse().map_err(|e| {
            anyhow::anyhow!(
                "{}: [http] listen = {:?} is not an address such as \"127.0.0.1:8080\" ({e})",
                spec.path.display(),
                h.listen
            )
        })?,
        (None, None) => return Ok(None),
    };
    let token_file = section
        .and_then(|h| h.token_file.as_ref())
        .map(|f| spec.base.join(f));
    Ok(Some(crate::http::Settings::resolve(
        listen,
        token_file.as_deref(),
    )?))
}

/// `--fresh`: delete the checkpoint store (whatever state it is in) and the job's identity,
/// after asking on a terminal unless `--yes`. Savepoints are kept.
fn start_over(dir: &std::path::Path, yes: bool) -> anyhow::Result<()> {
    let db = dir.join("db");
    let had_job = identity::read(dir).ok().flatten().is_some();
    if !db.exists() && !had_job {
        return Ok(());
    }
    let what = if !db.exists() {
        "the job's identity".to_string()
    } else {
        match StateStore::open(dir).and_then(|s| s.list()) {
            Ok(list) => format!("{} checkpoint(s)", list.len()),
            Err(e) => format!("the damaged checkpoint store ({e})"),
        }
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "--fresh would delete {what} in {}: add --yes to confirm",
                dir.display()
            );
        }
        eprint!("delete {what} in {} and start over? [y/N] ", dir.display());
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not deleted; nothing was run");
        }
    }
    if db.exists() {
        std::fs::remove_dir_all(&db)
            .with_context(|| format!("cannot delete the checkpoint store {}", db.display()))?;
    }
    identity::forget(dir)?;
    crate::swap::forget(dir)
        .with_context(|| format!("cannot forget the swapped builds in {}", dir.display()))?;
    Ok(())
}

/// Refuse a savepoint of another job unless asked to take it; a new state directory resumed
/// from a savepoint of a job of the same name continues that job (it was moved).
fn check_savepoint_owner(
    meta: &savepoint::SavepointMeta,
    job: &mut identity::JobIdentity,
    created: bool,
    pipeline: &str,
    dir: &std::path::Path,
    allow_other_job: bool,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let same_name = meta.pipeline == pipeline;
    match &meta.job {
        Some(j) if *j == job.id => return Ok(()),
        Some(j) if created && same_name && !allow_other_job => {
            job.id = j.clone();
            identity::write(dir, job)?;
            return Ok(());
        }
        None if same_name => return Ok(()),
        _ => {}
    }
    if allow_other_job {
        eprintln!(
            "taking the state of savepoint {} (pipeline {:?}, job {}) into job {} on purpose",
            path.display(),
            meta.pipeline,
            meta.job.as_deref().unwrap_or("unknown"),
            job.id
        );
        return Ok(());
    }
    bail!(
        "savepoint {} belongs to another job (pipeline {:?}, job {}), not to this one (pipeline {:?}, job {}): resuming from it would replace this job's progress and outputs with another's. Pass --allow-other-job to take its state on purpose",
        path.display(),
        meta.pipeline,
        meta.job.as_deref().unwrap_or("unknown"),
        pipeline,
        job.id
    )
}

/// The first SIGTERM or SIGINT asks the job to stop with a savepoint; a second one exits at once.
async fn stop_on_signals(
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    asked_by_user: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT: stop with savepoint is unavailable");
        return;
    };
    let mut asked = false;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if asked {
            eprintln!("second stop signal: exiting now without a savepoint");
            std::process::exit(130);
        }
        asked = true;
        eprintln!("stopping with a savepoint (signal again to exit at once)");
        asked_by_user.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stop.send(true);
    }
}
