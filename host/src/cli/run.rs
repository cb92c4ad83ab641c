//! `weir run PIPELINE`: run a pipeline, resuming from its latest complete checkpoint (or a
//! savepoint), restarting after failures as its restart strategy says, and stopping with a
//! savepoint on SIGTERM/SIGINT.
//!
//! Invariant: every attempt restores from the newest intact checkpoint taken by this run or
//! before it; a restart never goes back further than the savepoint a run started from.

use crate::checkpoint::settings::{CheckpointSettings, RestartStrategy, RestartTracker};
use crate::checkpoint::{StoreHooks, restore_point, savepoint};
use crate::config::PipelineSpec;
use crate::graph::JobGraph;
use crate::plugin::PluginHost;
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
    /// Resume from this savepoint directory instead of the latest checkpoint.
    #[arg(long, value_name = "PATH", conflicts_with = "fresh")]
    pub from_savepoint: Option<PathBuf>,
    /// Drop the saved state of nodes the pipeline no longer has instead of refusing to start.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// On SIGTERM/SIGINT, how long the savepoint may take before the job is cancelled without
    /// one (every plugin call cut short), e.g. "30s".
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_grace)]
    pub stop_grace: std::time::Duration,
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
    rt.spawn(stop_on_signals(stop_tx));
    let spec = PipelineSpec::load(&args.pipeline)?;
    let settings = CheckpointSettings::from_spec(&spec)?;
    let restart = RestartStrategy::from_spec(&spec, settings.enabled)?;
    let host = Arc::new(PluginHost::new()?);
    let graph = JobGraph::build(&spec, &host)?;

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
    if let (true, Some(store)) = (args.fresh, &store) {
        start_over(store, args.yes)?;
    }
    let from_savepoint = match &args.from_savepoint {
        Some(path) => {
            let sp = savepoint::read(path).map_err(anyhow::Error::msg)?;
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
    let mut tracker = RestartTracker::new(restart);
    loop {
        // What this attempt resumes from.
        let mut restore: Option<RestorePoint> = None;
        if let Some(store) = &store {
            let latest = store.latest_restorable()?;
            let ours = latest.filter(|r| from_savepoint.is_none() || r.meta.id >= run_first_id);
            if let Some(r) = ours {
                if r.meta.finished {
                    // The run that finished may have died before every sink committed.
                    recommit_sinks(&graph, &host, r.meta.id, &r.states)?;
                    eprintln!(
                        "{}: the job already finished (checkpoint {}); its output is complete. Run with --fresh to start over.",
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
                        args.allow_non_restored_state,
                        abort,
                    )
                    .map_err(anyhow::Error::msg)?,
                );
            } else if let Some(sp) = &from_savepoint {
                restore = Some(
                    restore_point(
                        &graph,
                        sp.meta.checkpoint,
                        sp.states.clone(),
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
        };
        let mut store_hooks = store.as_ref().map(|s| StoreHooks {
            store: s,
            retain: settings.retain,
            pipeline: spec.name.clone(),
            savepoint_dir: settings.dir.join("savepoints"),
            savepoint: None,
        });
        let mut none = NoCheckpointStore;
        let hooks: &mut dyn CheckpointHooks = match &mut store_hooks {
            Some(h) => h,
            None => &mut none,
        };
        let job = Job::from_graph(&graph, host.clone());
        match rt.block_on(runtime::run(job, options, hooks, Some(stop_rx.clone()))) {
            Ok(report) => {
                if !args.quiet {
                    eprintln!(
                        "{}",
                        crate::metrics::summary(&report.metrics, report.elapsed)
                    );
                }
                if let Some(id) = report.savepoint {
                    match store_hooks.and_then(|h| h.savepoint) {
                        Some(dir) => {
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
                if *stop_rx.borrow() {
                    return Err(e).context("the job failed while stopping");
                }
                let Some(delay) = tracker.on_failure() else {
                    let restarts = tracker.failures() - 1;
                    return if restarts > 0 {
                        Err(e).with_context(|| {
                            format!("the job failed; gave up after {restarts} restart(s)")
                        })
                    } else {
                        Err(e.into())
                    };
                };
                tracing::warn!(
                    "the job failed: {e}; restart {} in {delay:?} from the latest checkpoint",
                    tracker.failures()
                );
                let mut stop = stop_rx.clone();
                let stopped = rt.block_on(async {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => false,
                        _ = stop.changed() => true,
                    }
                });
                if stopped {
                    return Err(e).context("stopped while waiting to restart");
                }
            }
        }
    }
}

/// Commit checkpoint `id` again in every sink subtask (start, restore its state, commit): sinks'
/// commits are idempotent, so this only publishes what an interrupted final commit left pending.
fn recommit_sinks(
    graph: &JobGraph,
    host: &Arc<PluginHost>,
    id: u64,
    states: &std::collections::HashMap<(String, u32), Vec<u8>>,
) -> anyhow::Result<()> {
    for node in graph
        .nodes
        .iter()
        .filter(|n| n.kind == crate::config::NodeKind::Sink)
    {
        let crate::runtime::NodeFactory::Sink(start) =
            crate::runtime::NodeFactory::of(host.clone(), node)
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

/// `--fresh`: delete every checkpoint, after asking on a terminal unless `--yes`.
fn start_over(store: &StateStore, yes: bool) -> anyhow::Result<()> {
    let n = store.list()?.len();
    if n == 0 {
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "--fresh would delete {n} checkpoint(s) in {}: add --yes to confirm",
                store.dir().display()
            );
        }
        eprint!(
            "delete {n} checkpoint(s) in {} and start over? [y/N] ",
            store.dir().display()
        );
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not deleted; nothing was run");
        }
    }
    store.clear()?;
    Ok(())
}

/// The first SIGTERM or SIGINT asks the job to stop with a savepoint; a second one exits at once.
async fn stop_on_signals(stop: tokio::sync::watch::Sender<bool>) {
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
        let _ = stop.send(true);
    }
}
