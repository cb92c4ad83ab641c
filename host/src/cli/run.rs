//! `weir run PIPELINE`: run a pipeline, resuming from its latest complete checkpoint (or a
//! savepoint), restarting after failures as its restart strategy says, and stopping with a
//! savepoint on SIGTERM/SIGINT.
//!
//! Invariant: every attempt restores from the newest intact checkpoint taken by this run or
//! before it; a restart never goes back further than the savepoint a run started from.

use crate::checkpoint::settings::CheckpointSettings;
use crate::checkpoint::{StoreHooks, identity, restore_point, savepoint};
use crate::config::PipelineSpec;
use crate::graph::JobGraph;
use crate::live::{Live, LiveHooks, Status};
use crate::plugin::PluginHost;
use crate::restart::{RestartStrategy, RestartTracker};
use crate::runtime::{self, CheckpointHooks, Job, NoCheckpointStore, RestorePoint, RunOptions};
use crate::state::StateStore;
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
    let mut tracker = RestartTracker::new(restart);
    // Whether the next attempt restarts after a failure (not the first, not after a swap).
    let mut restart_next = false;
    // Counts of attempts that handed over to a swapped build, for the run's summary.
    let mut carried = crate::metrics::Carried::default();
    let mut repeats = crate::restart::Repeats::default();
    loop {
        live.attempt_starting(restart_next);
        restart_next = false;
        // What this attempt resumes from.
        let mut restore: Option<RestorePoint> = None;
        if let Some(store) = &store {
            let latest = store.latest_restorable()?;
            let ours = latest.filter(|r| from_savepoint.is_none() || r.meta.id >= run_first_id);
            if let Some(r) = ours {
                if r.meta.finished {
                    // The run that finished may have died before every sink committed.
                    recommit_sinks(&graph, &host, &job.id, r.meta.id, &r.states)?;
                    eprintln!(
                        "{}: the job already finished (checkpoint {}); its output is complete. To run it again from the start: weir run --fresh PIPELINE (or --dev while you edit and rerun it).",
                        spec.name, r.meta.id
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                let abort = store.incomplete_after(r.meta.id)?;
                tracing::info!("resuming from checkpoint {}", r.meta.id);
                restore = Some(
                    restore_point(
                        &graph,
                        r.meta.id,
                        r.states,
                        r.meta.keyed,
                        args.allow_non_restored_state,
                        abort,
                    )
                    .map_err(anyhow::Error::msg)?,
                );
            } else if from_savepoint.is_none() && job.checkpointed {
                bail!(
                    "{}: the checkpoint store in {} holds no intact checkpoint, but this job ({}) completed checkpoints before: the store was lost or damaged. Starting over would replay the input into outputs that already hold committed data. Resume from a savepoint (weir run --from-savepoint DIR {}; savepoints are kept in {}), or start over with --fresh --yes (exactly-once file outputs are then replaced)",
                    spec.name,
                    store.dir().display(),
                    job.id,
                    args.pipeline.display(),
                    settings.dir.join("savepoints").display()
                );
            } else if let Some(sp) = &from_savepoint {
                restore = Some(
                    restore_point(
                        &graph,
                        sp.meta.checkpoint,
                        sp.states.clone(),
                        sp.meta.keyed.clone(),
                        args.allow_non_restored_state,
                        Vec::new(),
                    )
                    .map_err(anyhow::Error::msg)?,
                );
            }
        }
        let first_id = match &store {
            Some(s) => s.next_id()?.max(run_first_id),
            None => 1,
        };
        let options = RunOptions {
            interval: settings.enabled.then_some(settings.interval),
            exactly_once: settings.exactly_once,
            timeout: settings.timeout,
            max_concurrent: settings.max_concurrent,
            min_pause: settings.min_pause,
            first_id,
            restore,
            progress: !args.quiet && std::io::stderr().is_terminal(),
            stop_grace: args.stop_grace,
            keyed: keyed_store.clone(),
            commands: Some(commands.clone()),
            live: Some(live.clone()),
        };
        let mut store_hooks = store.as_ref().map(|s| StoreHooks {
            store: s,
            job: job.clone(),
            state_dir: settings.dir.clone(),
            retain: settings.retain,
            pipeline: spec.name.clone(),
            savepoint_dir: settings.dir.join("savepoints"),
            savepoint: None,
        });
        let mut none = NoCheckpointStore;
        let inner: &mut dyn CheckpointHooks = match &mut store_hooks {
            Some(h) => h,
            None => &mut none,
        };
        let mut hooks = LiveHooks {
            inner,
            live: live.clone(),
        };
        let job_run = Job::from_graph(&graph, host.clone(), &job.id);
        // Only a stop asked from now on stops this attempt (a swap's stop was for the last).
        let mut attempt_stop = stop_rx.clone();
        attempt_stop.borrow_and_update();
        let outcome = rt.block_on(runtime::run(
            job_run,
            options,
            &mut hooks,
            Some(attempt_stop),
        ));
        if let Some(h) = &store_hooks {
            job.checkpointed |= h.job.checkpointed;
        }
        match outcome {
            Ok(report) => {
                // A stop that was a swap's: the next attempt restores its savepoint with
                // the new build in the node.
                let savepoint = report
                    .savepoint
                    .map(|id| (id, store_hooks.as_ref().and_then(|h| h.savepoint_path(id))));
                let asked = stop_asked.load(std::sync::atomic::Ordering::Relaxed);
                let swapping = !asked
                    && live.swap_stopped(
                        savepoint,
                        |uid, new| {
                            let node = graph
                                .nodes
                                .iter_mut()
                                .find(|n| n.uid == uid)
                                .expect("swaps name nodes of the graph");
                            std::mem::replace(&mut node.plugin, crate::graph::Plugin::Wasm(new))
                        },
                        &report.metrics,
                    );
                if swapping {
                    carried.add(&report.metrics, report.elapsed);
                    stop_tx.send_replace(false);
                    tracing::info!("resuming from the swap's savepoint with the new build");
                    continue;
                }
                live.set_status(Status::Finished);
                if !args.quiet {
                    eprintln!(
                        "{}",
                        crate::metrics::summary(&report.metrics, report.elapsed, &carried)
                    );
                }
                if let Some(id) = report.savepoint {
                    match store_hooks.and_then(|h| h.savepoint) {
                        Some((_, dir)) => {
                            println!("savepoint {id}: {}", dir.display());
                            eprintln!(
                                "stopped with savepoint {id}; resume with: weir run --from-savepoint {} {}",
                                dir.display(),
                                args.pipeline.display()
                            );
                        }
                        None => {
                            eprintln!("stopped (checkpointing is off: no savepoint was written)")
                        }
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => {
                // The new build of a swap could not take over: back to the old one, from
                // the same savepoint.
                if let Some((uid, old)) = live.swap_failed(&e.to_string()) {
                    if let Some(node) = graph.nodes.iter_mut().find(|n| n.uid == uid) {
                        node.plugin = old;
                    }
                    tracing::warn!("the swap of `{uid}` failed ({e}): resuming with the old build");
                    continue;
                }
                if live.was_cancel_requested() {
                    live.set_status(Status::Cancelled);
                    return Err(e.into());
                }
                if *stop_rx.borrow() {
                    live.failed(&e.to_string(), false);
                    return Err(e).context("the job failed while stopping");
                }
                if let Some(why) = e.incurable() {
                    live.failed(&e.to_string(), false);
                    return Err(e).with_context(|| {
                        format!(
                            "the job failed and was not restarted ({why}: a restart cannot cure it)"
                        )
                    });
                }
                let progress = store.as_ref().and_then(latest_complete);
                let logic = e.is_plugin_logic().then(|| e.to_string());
                if repeats.repeated(progress, logic) {
                    // The error itself was printed with the restart: once is enough.
                    live.failed(&e.to_string(), false);
                    bail!(
                        "the job failed the same way again after a restart (the error above), before any new checkpoint: the same input fails it every time, so it was not restarted again. Fix the plugin or its input, then run again: it resumes from the latest checkpoint"
                    );
                }
                let Some(delay) = tracker.on_failure() else {
                    live.failed(&e.to_string(), false);
                    let restarts = tracker.restarts();
                    return if restarts > 0 {
                        Err(e).with_context(|| {
                            format!("the job failed; gave up after {restarts} restart(s)")
                        })
                    } else {
                        Err(e.into())
                    };
                };
                live.failed(&e.to_string(), true);
                tracing::warn!(
                    "the job failed: {e}; restart {} in {} from the latest checkpoint",
                    tracker.restarts(),
                    humantime::format_duration(std::time::Duration::from_millis(
                        delay.as_millis() as u64
                    ))
                );
                let mut stop = stop_rx.clone();
                let stopped = rt.block_on(async {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => false,
                        _ = stop.changed() => true,
                    }
                });
                if stopped {
                    live.set_status(Status::Finished);
                    return Err(e).context("stopped while waiting to restart");
                }
                tracker.attempt_started();
                restart_next = true;
            }
        }
    }
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
        config: Vec<(String, String)>,
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

/// Commit checkpoint `id` again in every sink subtask (start, restore its state, commit): sinks'
/// commits are idempotent, so this only publishes what an interrupted final commit left pending.
fn recommit_sinks(
    graph: &JobGraph,
    host: &Arc<PluginHost>,
    job: &str,
    id: u64,
    states: &std::collections::HashMap<(String, u32), Vec<u8>>,
) -> anyhow::Result<()> {
    for node in graph
        .nodes
        .iter()
        .filter(|n| n.kind == crate::config::NodeKind::Sink)
    {
        let crate::runtime::NodeFactory::Sink(start) =
            crate::runtime::NodeFactory::for_job(host.clone(), node, Default::default(), job)
        else {
            unreachable!("a sink node has a sink factory");
        };
        for subtask in 0..node.parallelism {
            let mut sink = start(subtask)?;
            if let Some(state) = states.get(&(node.uid.clone(), subtask)) {
                sink.restore(state)?;
            }
            sink.commit(id)?;
        }
    }
    Ok(())
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

/// The newest complete checkpoint in `store`, if it can be read.
fn latest_complete(store: &StateStore) -> Option<u64> {
    let all = store.list().ok()?;
    all.iter()
        .rev()
        .find(|m| m.status == crate::state::Status::Complete)
        .map(|m| m.id)
}
