//! The coordinator: starts every subtask, triggers checkpoints (periodic, final, savepoint),
//! collects acks, declares checkpoints complete or failed, tells sinks to commit, and ends the
//! job on its last committed checkpoint or on its first failure.
//!
//! Invariant: a sink is told to commit checkpoint n only after every subtask acked n and the
//! hooks made n durable ([`CheckpointHooks::complete`] returned). A checkpoint that is not
//! complete within the timeout is declared failed and the job goes on.

use super::bookkeeping::{Ack, Bookkeeping, Limits, Trigger};
use super::launch::Launched;
use super::subtask::{Control, Event};
use super::{Job, RunError, RunReport};
use crate::metrics::NodeMetrics;
use crossbeam_channel::Sender;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::UnboundedReceiver;

/// How a run checkpoints and what it resumes from.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Trigger a checkpoint this often; `None`: only the final one at the end of input.
    pub interval: Option<Duration>,
    /// Align barriers (exactly-once) or not (at-least-once).
    pub exactly_once: bool,
    /// A checkpoint not complete after this long is declared failed.
    pub timeout: Duration,
    /// At most this many checkpoints in flight.
    pub max_concurrent: usize,
    /// Pause at least this long after one checkpoint completes before triggering the next.
    pub min_pause: Duration,
    /// The first checkpoint id this run uses.
    pub first_id: u64,
    /// Resume from this state.
    pub restore: Option<RestorePoint>,
    /// Show live progress on stderr.
    pub progress: bool,
    /// After a stop is asked for, the longest the job may take to finish its savepoint before
    /// it is cancelled without one (every plugin call cut short).
    pub stop_grace: Duration,
    /// Where operators keep keyed state; `None`: a temporary store for this run.
    pub keyed: Option<crate::keyed::Store>,
    /// Requests from outside the job (the HTTP API), across attempts.
    pub commands: Option<Commands>,
    /// Where the job shows itself (the HTTP API): each attempt publishes its metrics there.
    pub observer: Option<Arc<dyn JobObserver>>,
}

/// What the job's operator asks of a running job.
#[derive(Debug)]
pub enum Command {
    /// Trigger a checkpoint now (a savepoint if `savepoint`, the job going on): the reply is
    /// its id, or why none could start.
    Checkpoint {
        savepoint: bool,
        reply: tokio::sync::oneshot::Sender<Result<u64, String>>,
    },
    /// Cancel the job at once, without a savepoint.
    Cancel,
}

/// The receiving end of [`Command`]s, shared by the attempts of one run.
pub type Commands = Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Command>>>;

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            interval: None,
            exactly_once: true,
            timeout: Duration::from_secs(600),
            max_concurrent: 1,
            min_pause: Duration::ZERO,
            first_id: 1,
            restore: None,
            progress: false,
            stop_grace: Duration::from_secs(60),
            keyed: None,
            commands: None,
            observer: None,
        }
    }
}

/// The state of a sink subtask a lower parallelism dropped: (old subtask index, state).
pub type Retired = (u32, Vec<u8>);

/// State to resume a job from.
#[derive(Clone, Debug, Default)]
pub struct RestorePoint {
    pub checkpoint: u64,
    /// (node uid, subtask) → state bytes.
    pub states: HashMap<(String, u32), Vec<u8>>,
    /// Checkpoints started after the restored one that never completed: sinks abort them.
    pub abort: Vec<u64>,
    /// node uid → its keyed state (pieces in the keyed store).
    pub keyed: HashMap<String, crate::keyed::KeyedManifest>,
    /// (sink uid, subtask) → the states of old subtasks a lower parallelism dropped, by old
    /// index: that subtask finishes their transactions before it starts.
    pub retired: HashMap<(String, u32), Vec<Retired>>,
}

/// A checkpoint every subtask acked, handed to the hooks to make durable.
pub struct CompletedCheckpoint {
    pub id: u64,
    /// The job ends with it (end of input, or stop with savepoint).
    pub last: bool,
    pub savepoint: bool,
    pub started: SystemTime,
    pub duration: Duration,
    /// (node uid, subtask, state bytes)
    pub states: Vec<(String, u32, Vec<u8>)>,
    /// node uid → its keyed state (the pieces are in the keyed store already).
    pub keyed: BTreeMap<String, crate::keyed::KeyedManifest>,
}

/// Who watches a running job (the HTTP API's view of it): told when its subtasks run and when
/// it starts to stop. Checkpoints are reported through [`CheckpointHooks`].
pub trait JobObserver: Send + Sync {
    /// Every subtask runs; `metrics` are the nodes' counters, live.
    fn running(&self, metrics: Vec<Arc<NodeMetrics>>);
    /// A stop was asked for: the job is draining.
    fn stopping(&self);
}

impl std::fmt::Debug for dyn JobObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobObserver")
    }
}

/// Where checkpoints go. The runtime calls these on the coordinator's thread.
pub trait CheckpointHooks: Send {
    /// A checkpoint (a savepoint if `savepoint`) was triggered.
    fn started(&mut self, _id: u64, _savepoint: bool) -> Result<(), String> {
        Ok(())
    }
    /// Make `checkpoint` durable. Sinks commit it only after this returns `Ok`.
    fn complete(&mut self, checkpoint: &CompletedCheckpoint) -> Result<(), String>;
    /// `id` will never complete.
    fn failed(&mut self, _id: u64, _reason: &str) {}
    /// Where savepoint `id` was written, once it is complete.
    fn savepoint_path(&self, _id: u64) -> Option<std::path::PathBuf> {
        None
    }
}

/// Hooks that keep nothing: checkpoints only drive the sinks' two-phase commit.
pub struct NoCheckpointStore;

impl CheckpointHooks for NoCheckpointStore {
    fn complete(&mut self, _checkpoint: &CompletedCheckpoint) -> Result<(), String> {
        Ok(())
    }
}

/// A way to ask a running job to stop with a savepoint.
pub type StopSignal = tokio::sync::watch::Receiver<bool>;

/// Run `job` to its end or first failure: launch its subtasks, then steer its checkpoints
/// until every subtask exited.
pub async fn run(
    job: Job,
    options: RunOptions,
    hooks: &mut dyn CheckpointHooks,
    stop: Option<StopSignal>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let cancel = job.cancel.clone();
    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let metrics: Vec<Arc<NodeMetrics>> = job
        .nodes
        .iter()
        .map(|n| Arc::new(NodeMetrics::new(&n.uid, n.parallelism)))
        .collect();

    let launched = super::launch::launch(&job, &options, &metrics, events_tx)?;
    let Launched {
        handles,
        sources: source_controls,
        sinks: sink_controls,
        subtasks: total_subtasks,
        threads,
        sources_total,
    } = launched;
    let sinks_total = sink_controls.len();

    let progress = options
        .progress
        .then(|| crate::metrics::spawn_progress(metrics.clone(), cancel.clone()));

    // The coordinator loop.
    let mut steer = Steer {
        book: Bookkeeping::new(
            Limits {
                max_concurrent: options.max_concurrent,
                min_pause: options.min_pause,
                timeout: options.timeout,
                subtasks: total_subtasks,
            },
            options.first_id,
        ),
        hooks,
        sources: source_controls,
        sinks: sink_controls,
        sinks_total,
        sources_total,
        sources_ended: 0,
        final_commits: 0,
        finished: false,
        cancel: cancel.clone(),
        error: None,
        uids: job.nodes.iter().map(|n| n.uid.clone()).collect(),
    };
    if let Some(observer) = &options.observer {
        observer.running(metrics.clone());
    }
    let commands = match &options.commands {
        Some(c) => Some(c.clone().lock_owned().await),
        None => None,
    };
    steer.drive(&options, threads, events, stop, commands).await;
    cancel.store(true, Ordering::Relaxed);
    // Every subtask reported `Exited`; its thread is returning.
    tokio::task::block_in_place(|| {
        for h in handles {
            let _ = h.join();
        }
    });
    if let Some(p) = progress {
        let _ = p.await;
    }
    steer.outcome(metrics, started.elapsed())
}

/// The coordinator's side of a run: the bookkeeping, and what acts on it (the hooks, the
/// subtasks' control channels, the cancel flag).
struct Steer<'h> {
    book: Bookkeeping,
    hooks: &'h mut dyn CheckpointHooks,
    sources: Vec<Sender<Control>>,
    sinks: Vec<Sender<Control>>,
    sinks_total: usize,
    sources_total: usize,
    sources_ended: usize,
    /// Sinks that committed the job's last checkpoint.
    final_commits: usize,
    finished: bool,
    cancel: Arc<AtomicBool>,
    /// The run's first real error.
    error: Option<RunError>,
    /// Node uids, by index.
    uids: Vec<String>,
}

impl Steer<'_> {
    /// Steer the run until each of its `threads` reported `Exited`: trigger checkpoints
    /// (periodic, asked for, final), stop on a stop signal, answer commands, expire what is
    /// late, and take what the subtasks report.
    async fn drive(
        &mut self,
        options: &RunOptions,
        threads: usize,
        mut events: UnboundedReceiver<Event>,
        mut stop: Option<StopSignal>,
        mut commands: Option<tokio::sync::OwnedMutexGuard<UnboundedReceiver<Command>>>,
    ) {
        let mut live = threads;
        let mut stop_asked: Option<Instant> = None;
        let mut interval = options.interval.map(|d| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut housekeeping = tokio::time::interval(Duration::from_millis(50));
        // A stop asked for before the job started (during start-up) is honoured at once: the
        // select arm below sees it as a change.
        if let Some(s) = stop.as_mut().filter(|s| *s.borrow()) {
            s.mark_changed();
        }
        while live > 0 {
            tokio::select! {
                // Periodic checkpoints, while the job runs and there is room for one more.
                _ = async { interval.as_mut().expect("guarded").tick().await }, if interval.is_some() && !self.book.finishing() && self.error.is_none() => {
                    if let Some(t) = self.book.periodic(Instant::now()) {
                        self.trigger(t);
                    }
                }
                // Stop with a savepoint: a last barrier that drains the pipeline. A stop asked
                // while the job is already finishing only starts the grace period.
                changed = async { stop.as_mut().expect("guarded").changed().await }, if stop.is_some() && stop_asked.is_none() && self.error.is_none() => {
                    if changed.is_err() {
                        stop = None;
                        continue;
                    }
                    // Only a change to "stop" stops (a swap resets the flag between attempts).
                    if !*stop.as_ref().expect("guarded").borrow() {
                        continue;
                    }
                    stop_asked = Some(Instant::now());
                    if let Some(observer) = &options.observer {
                        observer.stopping();
                    }
                    match self.book.stop(Instant::now()) {
                        Some(t) => {
                            tracing::info!("stopping with savepoint {}", t.barrier.id);
                            self.trigger(t);
                        }
                        None => tracing::info!("stop asked while the job is finishing: it has {:?} to finish", options.stop_grace),
                    }
                }
                // Requests from outside (the HTTP API): a checkpoint or savepoint now, a cancel.
                command = async { commands.as_mut().expect("guarded").recv().await }, if commands.is_some() && self.error.is_none() => {
                    match command {
                        None => commands = None,
                        Some(command) => self.command(command),
                    }
                }
                // Cancel a stop past its grace; expire checkpoints past their timeout.
                _ = housekeeping.tick() => {
                    if stop_asked.is_some_and(|t| t.elapsed() > options.stop_grace) && self.error.is_none() {
                        tracing::warn!("the savepoint did not complete within {:?}: cancelling the job", options.stop_grace);
                        self.fail(RunError::StopTimedOut(options.stop_grace));
                    }
                    self.expire(options.timeout);
                }
                // What the subtasks report: acks, commits, ended sources, exits.
                event = events.recv() => {
                    let Some(event) = event else { break };
                    if let Event::Exited { .. } = event {
                        live -= 1;
                    }
                    self.event(event);
                }
            }
        }
    }

    /// Start checkpoint `t`: the hooks hear of it, the sources inject its barrier.
    fn trigger(&mut self, t: Trigger) {
        let Trigger { barrier, savepoint } = t;
        if let Err(e) = self.hooks.started(barrier.id, savepoint) {
            return self.fail(RunError::Checkpoint(e));
        }
        for c in &self.sources {
            let _ = c.send(Control::Trigger(barrier));
        }
        tracing::debug!(
            "triggered checkpoint {}{}",
            barrier.id,
            if barrier.last { " (last)" } else { "" }
        );
    }

    fn fail(&mut self, e: RunError) {
        fail(
            &mut self.error,
            e,
            &self.cancel,
            &mut self.sources,
            &mut self.sinks,
        );
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Checkpoint { savepoint, reply } => {
                let answer = self.book.requested(savepoint, Instant::now()).map(|t| {
                    let what = if savepoint { "savepoint" } else { "checkpoint" };
                    tracing::info!("{what} {} asked for", t.barrier.id);
                    self.trigger(t);
                    t.barrier.id
                });
                let answer = match (&self.error, answer) {
                    (Some(e), Ok(_)) => Err(e.to_string()),
                    (_, answer) => answer,
                };
                let _ = reply.send(answer);
            }
            Command::Cancel => {
                tracing::warn!("cancelling the job on request");
                self.fail(RunError::CancelledOnRequest);
            }
        }
    }

    /// Checkpoints past `timeout` fail; the job goes on, unless it was its last.
    fn expire(&mut self, timeout: Duration) {
        for (id, last) in self.book.expired(Instant::now()) {
            let reason = format!("not complete after {timeout:?} (checkpoint timeout)");
            tracing::warn!("checkpoint {id} failed: {reason}; the job goes on");
            self.hooks.failed(id, &reason);
            if last {
                self.fail(RunError::Checkpoint(format!(
                    "the last checkpoint {id} was {reason}"
                )));
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::SourceEnded => {
                self.sources_ended += 1;
                if self.sources_ended == self.sources_total
                    && self.error.is_none()
                    && let Some(t) = self.book.sources_ended(Instant::now())
                {
                    self.trigger(t);
                }
            }
            Event::Ack {
                checkpoint,
                node,
                subtask,
                state,
                time,
                keyed,
            } => {
                let ack = Ack {
                    checkpoint,
                    uid: self.uids[node].clone(),
                    subtask,
                    state,
                    time,
                    keyed,
                };
                if let Some(done) = self.book.ack(ack, Instant::now()) {
                    self.complete(done);
                }
            }
            Event::Committed { checkpoint } => {
                if self.book.is_final(checkpoint) {
                    self.final_commits += 1;
                    self.finished = self.final_commits == self.sinks_total;
                }
            }
            Event::Exited {
                node,
                subtask,
                result: Err(e),
            } => {
                if !matches!(e, RunError::Cancelled) {
                    tracing::debug!("{}[{subtask}] failed: {e}", self.uids[node]);
                }
                self.fail(e);
            }
            Event::Exited { .. } => {}
        }
    }

    /// Every subtask acked `done`: make it durable, then tell sinks and sources to commit.
    fn complete(&mut self, done: CompletedCheckpoint) {
        let id = done.id;
        let stored = tokio::task::block_in_place(|| self.hooks.complete(&done));
        if let Err(e) = stored {
            self.hooks.failed(id, &e);
            if done.last {
                self.fail(RunError::Checkpoint(e));
            } else {
                tracing::warn!("checkpoint {id} could not be stored: {e}; the job goes on");
            }
            return;
        }
        tracing::debug!("checkpoint {id} complete in {:?}", done.duration);
        for older in self.book.completed(id, Instant::now()) {
            self.hooks.failed(older, "subsumed by a newer checkpoint");
        }
        for c in self.sinks.iter().chain(&self.sources) {
            let _ = c.send(Control::Commit(id));
        }
    }

    /// What the run comes to once every subtask exited.
    fn outcome(
        self,
        metrics: Vec<Arc<NodeMetrics>>,
        elapsed: Duration,
    ) -> Result<RunReport, RunError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.sinks_total > 0 && !self.finished {
            return Err(RunError::Internal(
                "the job ended before its last checkpoint committed".into(),
            ));
        }
        Ok(RunReport {
            metrics,
            elapsed,
            last_checkpoint: self.book.last_completed(),
            savepoint: self.book.stop_savepoint(),
        })
    }
}

/// Record the job's first real error and cancel every subtask. A `Cancelled` error (a subtask
/// that stopped because its peers went away) never hides the error that caused it.
fn fail(
    error: &mut Option<RunError>,
    e: RunError,
    cancel: &AtomicBool,
    sources: &mut Vec<Sender<Control>>,
    sinks: &mut Vec<Sender<Control>>,
) {
    let replace = match (&*error, &e) {
        (None, _) => true,
        (Some(RunError::Cancelled), other) => !matches!(other, RunError::Cancelled),
        _ => false,
    };
    if replace {
        *error = Some(e);
    }
    cancel.store(true, Ordering::Relaxed);
    sources.clear();
    sinks.clear();
}
