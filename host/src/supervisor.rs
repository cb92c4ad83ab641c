//! The job supervisor: runs a job's attempts one after the other, each resuming from the newest
//! intact checkpoint (or the savepoint the run started from), hands over to a swapped build,
//! and after a failure restarts as the restart strategy says, unless a restart cannot cure it.
//! `weir run` is a thin command over it.
//!
//! Invariant: every attempt restores from the newest intact checkpoint taken by this run or
//! before it; a restart never goes back further than the savepoint a run started from; a
//! failure that repeats on the same input with no checkpoint between ends the run.

use crate::checkpoint::{StoreHooks, identity, restore_point, savepoint};
use crate::config::PipelineSpec;
use crate::config::checkpoint::CheckpointSettings;
use crate::graph::JobGraph;
use crate::live::{Live, LiveHooks, Status};
use crate::plugin::PluginHost;
use crate::restart::{Repeats, RestartTracker};
use crate::runtime::{
    self, CheckpointHooks, Commands, NoCheckpointStore, RestorePoint, RunError, RunOptions,
    RunReport,
};
use crate::state::StateStore;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How a run behaves, from the command line.
pub struct Options {
    /// The pipeline file, for messages.
    pub pipeline: PathBuf,
    pub quiet: bool,
    pub allow_non_restored_state: bool,
    pub stop_grace: Duration,
}

/// A job being run: what stays the same across its attempts.
pub struct Supervisor {
    pub options: Options,
    pub spec: PipelineSpec,
    pub settings: CheckpointSettings,
    pub host: Arc<PluginHost>,
    pub graph: JobGraph,
    pub store: Option<StateStore>,
    pub job: identity::JobIdentity,
    pub from_savepoint: Option<savepoint::Savepoint>,
    /// The first checkpoint id of this run: attempts resume only from checkpoints at or after
    /// it when the run started from a savepoint.
    pub first_id: u64,
    pub keyed: Option<crate::keyed::Store>,
    pub live: Arc<Live>,
    pub commands: Commands,
    pub stop_tx: Arc<tokio::sync::watch::Sender<bool>>,
    pub stop_rx: tokio::sync::watch::Receiver<bool>,
    /// Set by a stop a person asked for (a signal, the API's stop), not by a swap.
    pub stop_asked: Arc<AtomicBool>,
    pub tracker: RestartTracker,
}

/// A savepoint an attempt wrote: (checkpoint id, directory).
type Written = (u64, PathBuf);

/// Where an attempt starts from.
enum Resume {
    From(Option<RestorePoint>),
    /// The job finished before (at this checkpoint): nothing to run.
    Finished(u64),
}

/// What comes after an attempt.
enum Next {
    /// Another attempt (after a swap, or a restart).
    Again {
        restart: bool,
    },
    Done(anyhow::Result<ExitCode>),
}

impl Supervisor {
    /// Run attempts until the job ends: finished, stopped, or failed past what restarts cure.
    pub fn supervise(mut self, rt: &tokio::runtime::Runtime) -> anyhow::Result<ExitCode> {
        let mut restart = false;
        // Counts of attempts that handed over to a swapped build, for the run's summary.
        let mut carried = crate::metrics::Carried::default();
        let mut repeats = Repeats::default();
        loop {
            self.live.attempt_starting(restart);
            let restore = match self.resume()? {
                Resume::From(restore) => restore,
                Resume::Finished(id) => {
                    eprintln!(
                        "{}: the job already finished (checkpoint {id}); its output is complete. To run it again from the start: weir run --fresh PIPELINE (or --dev while you edit and rerun it).",
                        self.spec.name
                    );
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let (outcome, savepoint_dir) = self.attempt(rt, restore)?;
            let next = match outcome {
                Ok(report) => self.finished(report, savepoint_dir, &mut carried),
                Err(e) => self.failed(rt, e, &mut repeats),
            };
            match next {
                Next::Again { restart: r } => restart = r,
                Next::Done(result) => return result,
            }
        }
    }

    /// What the next attempt resumes from: this run's newest intact checkpoint, else the
    /// savepoint it started from, else nothing.
    fn resume(&mut self) -> anyhow::Result<Resume> {
        let Some(store) = &self.store else {
            return Ok(Resume::From(None));
        };
        let latest = store.latest_restorable()?;
        let ours = latest.filter(|r| self.from_savepoint.is_none() || r.meta.id >= self.first_id);
        if let Some(r) = ours {
            if r.meta.finished {
                // The run that finished may have died before every sink committed.
                recommit_sinks(&self.graph, &self.host, &self.job.id, r.meta.id, &r.states)?;
                return Ok(Resume::Finished(r.meta.id));
            }
            let abort = store.incomplete_after(r.meta.id)?;
            tracing::info!("resuming from checkpoint {}", r.meta.id);
            let point = restore_point(
                &self.graph,
                r.meta.id,
                r.states,
                r.meta.keyed,
                self.options.allow_non_restored_state,
                abort,
            )
            .map_err(anyhow::Error::msg)?;
            return Ok(Resume::From(Some(point)));
        }
        if let Some(sp) = &self.from_savepoint {
            let point = restore_point(
                &self.graph,
                sp.meta.checkpoint,
                sp.states.clone(),
                sp.meta.keyed.clone(),
                self.options.allow_non_restored_state,
                Vec::new(),
            )
            .map_err(anyhow::Error::msg)?;
            return Ok(Resume::From(Some(point)));
        }
        if self.job.checkpointed {
            bail!(
                "{}: the checkpoint store in {} holds no intact checkpoint, but this job ({}) completed checkpoints before: the store was lost or damaged. Starting over would replay the input into outputs that already hold committed data. Resume from a savepoint (weir run --from-savepoint DIR {}; savepoints are kept in {}), or start over with --fresh --yes (exactly-once file outputs are then replaced)",
                self.spec.name,
                store.dir().display(),
                self.job.id,
                self.options.pipeline.display(),
                self.settings.dir.join("savepoints").display()
            );
        }
        Ok(Resume::From(None))
    }

    /// One attempt of the job from `restore`: its outcome, and the savepoint it stopped with
    /// (id, directory), if it wrote one.
    fn attempt(
        &mut self,
        rt: &tokio::runtime::Runtime,
        restore: Option<RestorePoint>,
    ) -> anyhow::Result<(Result<RunReport, RunError>, Option<Written>)> {
        let first_id = match &self.store {
            Some(s) => s.next_id()?.max(self.first_id),
            None => 1,
        };
        let settings = &self.settings;
        let options = RunOptions {
            interval: settings.enabled.then_some(settings.interval),
            exactly_once: settings.exactly_once,
            timeout: settings.timeout,
            max_concurrent: settings.max_concurrent,
            min_pause: settings.min_pause,
            first_id,
            restore,
            progress: !self.options.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            stop_grace: self.options.stop_grace,
            keyed: self.keyed.clone(),
            commands: Some(self.commands.clone()),
            observer: Some(self.live.clone()),
        };
        let mut store_hooks = self.store.as_ref().map(|s| StoreHooks {
            store: s,
            job: self.job.clone(),
            state_dir: settings.dir.clone(),
            retain: settings.retain,
            pipeline: self.spec.name.clone(),
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
            live: self.live.clone(),
        };
        let job_run = self.graph.job(self.host.clone(), &self.job.id);
        // Only a stop asked from now on stops this attempt (a swap's stop was for the last).
        let mut attempt_stop = self.stop_rx.clone();
        attempt_stop.borrow_and_update();
        let outcome = rt.block_on(runtime::run(
            job_run,
            options,
            &mut hooks,
            Some(attempt_stop),
        ));
        let savepoint = store_hooks.as_ref().and_then(|h| h.savepoint.clone());
        if let Some(h) = &store_hooks {
            self.job.checkpointed |= h.job.checkpointed;
        }
        Ok((outcome, savepoint))
    }

    /// The attempt ended without an error: a swap's stop (the next attempt runs the new
    /// build), or the job's end (finished, or stopped with a savepoint).
    fn finished(
        &mut self,
        report: RunReport,
        written: Option<Written>,
        carried: &mut crate::metrics::Carried,
    ) -> Next {
        let savepoint = report.savepoint.map(|id| {
            let dir = written
                .as_ref()
                .filter(|(w, _)| *w == id)
                .map(|(_, d)| d.clone());
            (id, dir)
        });
        let asked = self.stop_asked.load(Ordering::Relaxed);
        let graph = &mut self.graph;
        let swapping = !asked
            && self.live.swap_stopped(
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
            self.stop_tx.send_replace(false);
            tracing::info!("resuming from the swap's savepoint with the new build");
            return Next::Again { restart: false };
        }
        self.live.set_status(Status::Finished);
        if !self.options.quiet {
            eprintln!(
                "{}",
                crate::metrics::summary(&report.metrics, report.elapsed, carried)
            );
        }
        if let Some(id) = report.savepoint {
            match written {
                Some((_, dir)) => {
                    println!("savepoint {id}: {}", dir.display());
                    eprintln!(
                        "stopped with savepoint {id}; resume with: weir run --from-savepoint {} {}",
                        dir.display(),
                        self.options.pipeline.display()
                    );
                }
                None => eprintln!("stopped (checkpointing is off: no savepoint was written)"),
            }
        }
        Next::Done(Ok(ExitCode::SUCCESS))
    }

    /// The attempt failed with `e`: back to the old build if a swap's new one could not take
    /// over; otherwise a restart after the strategy's delay, unless the failure is one a
    /// restart cannot cure, repeats on the same input, or the strategy is spent.
    fn failed(&mut self, rt: &tokio::runtime::Runtime, e: RunError, repeats: &mut Repeats) -> Next {
        if let Some((uid, old)) = self.live.swap_failed(&e.to_string()) {
            if let Some(node) = self.graph.nodes.iter_mut().find(|n| n.uid == uid) {
                node.plugin = old;
            }
            tracing::warn!("the swap of `{uid}` failed ({e}): resuming with the old build");
            return Next::Again { restart: false };
        }
        if self.live.was_cancel_requested() {
            self.live.set_status(Status::Cancelled);
            return Next::Done(Err(e.into()));
        }
        let end = |live: &Live, e: &RunError| live.failed(&e.to_string(), false);
        if *self.stop_rx.borrow() {
            end(&self.live, &e);
            return Next::Done(Err(e).context("the job failed while stopping"));
        }
        if let Some(why) = e.incurable() {
            end(&self.live, &e);
            return Next::Done(Err(e).with_context(|| {
                format!("the job failed and was not restarted ({why}: a restart cannot cure it)")
            }));
        }
        let progress = self.store.as_ref().and_then(latest_complete);
        if repeats.repeated(progress, e.is_plugin_logic().then(|| e.to_string())) {
            // The error itself was printed with the restart: once is enough.
            end(&self.live, &e);
            return Next::Done(Err(anyhow::anyhow!(
                "the job failed the same way again after a restart (the error above), before any new checkpoint: the same input fails it every time, so it was not restarted again. Fix the plugin or its input, then run again: it resumes from the latest checkpoint"
            )));
        }
        let Some(delay) = self.tracker.on_failure() else {
            end(&self.live, &e);
            let restarts = self.tracker.restarts();
            return Next::Done(if restarts > 0 {
                Err(e)
                    .with_context(|| format!("the job failed; gave up after {restarts} restart(s)"))
            } else {
                Err(e.into())
            });
        };
        self.live.failed(&e.to_string(), true);
        tracing::warn!(
            "the job failed: {e}; restart {} in {} from the latest checkpoint",
            self.tracker.restarts(),
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        );
        let mut stop = self.stop_rx.clone();
        let stopped = rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(delay) => false,
                _ = stop.changed() => true,
            }
        });
        if stopped {
            self.live.set_status(Status::Finished);
            return Next::Done(Err(e).context("stopped while waiting to restart"));
        }
        self.tracker.attempt_started();
        Next::Again { restart: true }
    }
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
            node.factory_in(host.clone(), Default::default(), job)
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

/// The newest complete checkpoint in `store`, if it can be read.
fn latest_complete(store: &StateStore) -> Option<u64> {
    let all = store.list().ok()?;
    all.iter()
        .rev()
        .find(|m| m.status == crate::state::Status::Complete)
        .map(|m| m.id)
}
