//! The coordinator: starts every subtask, triggers checkpoints (periodic, final, savepoint),
//! collects acks, declares checkpoints complete or failed, tells sinks to commit, and ends the
//! job on its last committed checkpoint or on its first failure.
//!
//! Invariant: a sink is told to commit checkpoint n only after every subtask acked n and the
//! hooks made n durable ([`CheckpointHooks::complete`] returned). A checkpoint that is not
//! complete within the timeout is declared failed and the job goes on.

use super::chain::Chained;
use super::input::Inputs;
use super::output::{OutEdge, Output};
use super::subtask::{
    Control, Event, OperatorTask, SubtaskCtx, run_operator, run_sink, run_source,
};
use super::{Barrier, Job, NodeFactory, RunError, RunReport};
use crate::config::Partition;
use crate::metrics::NodeMetrics;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

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
    pub live: Option<Arc<crate::live::Live>>,
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
            live: None,
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

/// The body of one subtask, run on its own blocking task.
type SubtaskBody = Box<dyn FnOnce(&SubtaskCtx) -> Result<(), RunError> + Send>;

/// `out`, the output of node `node`'s subtask, at the head of the operators chained into it.
fn lead(
    mut out: Output,
    node: usize,
    chain: Vec<super::chain::Member>,
) -> Result<Output, RunError> {
    if !chain.is_empty() {
        let chain = super::chain::Chain::assemble(&mut out, node, chain)?;
        out.lead(chain)?;
    }
    Ok(out)
}

struct Pending {
    barrier: Barrier,
    savepoint: bool,
    started_at: Instant,
    started: SystemTime,
    states: Vec<(String, u32, Vec<u8>)>,
    keyed: BTreeMap<String, crate::keyed::KeyedManifest>,
    /// Subtasks that acked (each acks its state, and its event time when it has any).
    acks: usize,
}

pub async fn run(
    job: Job,
    options: RunOptions,
    hooks: &mut dyn CheckpointHooks,
    mut stop: Option<StopSignal>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let cancel = job.cancel.clone();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let metrics: Vec<Arc<NodeMetrics>> = job
        .nodes
        .iter()
        .map(|n| Arc::new(NodeMetrics::new(&n.uid, n.parallelism)))
        .collect();

    // Operators that run inside their upstream's subtask: no channel, no thread of their own.
    let chained_into = super::chain::plan(&job.nodes);
    for (d, up) in chained_into.iter().enumerate() {
        if let Some(u) = up {
            tracing::debug!(
                "node `{}` runs chained into `{}` (no channel between them; `chain = false` on it keeps it apart)",
                job.nodes[d].uid,
                job.nodes[*u].uid
            );
        }
    }
    // Channels: one per connected (upstream subtask, downstream subtask) pair.
    let mut outs: Vec<Vec<Vec<OutEdge>>> = job
        .nodes
        .iter()
        .map(|node| (0..node.parallelism).map(|_| Vec::new()).collect())
        .collect();
    let mut ins: Vec<Vec<Vec<Receiver<super::Message>>>> = job
        .nodes
        .iter()
        .map(|node| (0..node.parallelism).map(|_| Vec::new()).collect())
        .collect();
    for (d, node) in job.nodes.iter().enumerate() {
        if chained_into[d].is_some() {
            continue;
        }
        for &(u, partition, port) in &node.inputs {
            let up = job.nodes[u].parallelism;
            for us in 0..up {
                let targets: Vec<u32> = if partition == Partition::Forward {
                    vec![us]
                } else {
                    (0..node.parallelism).collect()
                };
                let mut senders: Vec<Sender<super::Message>> = Vec::new();
                for ds in targets {
                    let (tx, rx) = bounded(job.channel_capacity);
                    senders.push(tx);
                    ins[d][ds as usize].push(rx);
                }
                outs[u][us as usize].push(OutEdge {
                    partition,
                    port,
                    senders,
                });
            }
        }
    }

    // Each subtask's event time to resume from, decoded before any subtask starts (a stored
    // time that does not decode fails the run with nothing running yet).
    let mut restore_times: Vec<Vec<Option<crate::time::SubtaskTime>>> = Vec::new();
    for node in &job.nodes {
        let mut times = Vec::new();
        for s in 0..node.parallelism {
            let key = (crate::time::time_uid(&node.uid), s);
            let stored = options.restore.as_ref().and_then(|r| r.states.get(&key));
            times.push(match stored {
                None => None,
                Some(bytes) => Some(
                    crate::time::SubtaskTime::decode(bytes)
                        .map_err(|e| RunError::Checkpoint(format!("{}[{s}]: {e}", node.uid)))?,
                ),
            });
        }
        restore_times.push(times);
    }

    // Spawn every subtask as a blocking task.
    let mut source_controls: Vec<Sender<Control>> = Vec::new();
    let mut sink_controls: Vec<Sender<Control>> = Vec::new();
    let mut handles = Vec::new();
    let restore = options.restore.clone();
    // Keyed state of this run's operators (a temporary store without a checkpoint store, and
    // only when the job has an operator).
    let has_operator = job
        .nodes
        .iter()
        .any(|n| matches!(n.factory, NodeFactory::Operator(_)));
    let keyed_store = match (&options.keyed, has_operator) {
        (Some(s), _) => Some(s.clone()),
        (None, true) => Some(crate::keyed::Store::temporary().map_err(RunError::Keyed)?),
        (None, false) => None,
    };
    let mut total_subtasks = 0usize;
    let mut threads = 0usize;
    let mut sources_total = 0usize;
    // The node whose subtask each node runs in: itself, or the head of the chain it is in.
    let mut heads: Vec<usize> = Vec::with_capacity(job.nodes.len());
    for up in &chained_into {
        let head = up.map_or(heads.len(), |u| heads[u]);
        heads.push(head);
    }
    // Per (head node, subtask): the operators chained into it, built in its thread.
    let mut chains: Vec<Vec<Vec<super::chain::Member>>> = job
        .nodes
        .iter()
        .map(|n| (0..n.parallelism).map(|_| Vec::new()).collect())
        .collect();
    let mut spawns: Vec<(String, u32, SubtaskCtx, SubtaskBody)> = Vec::new();
    for (i, node) in job.nodes.iter().enumerate().rev() {
        for s in (0..node.parallelism).rev() {
            total_subtasks += 1;
            let ctx = SubtaskCtx {
                node: i,
                uid: node.uid.clone(),
                subtask: s,
                events: events_tx.clone(),
                metrics: metrics[i].clone(),
                cancel: cancel.clone(),
                restore: restore
                    .as_ref()
                    .and_then(|r| r.states.get(&(node.uid.clone(), s)).cloned()),
                restore_time: restore_times[i][s as usize],
                watermarks: node.watermarks.clone(),
                restored_checkpoint: restore.as_ref().map(|r| r.checkpoint),
                abort_after_restore: restore
                    .as_ref()
                    .map(|r| r.abort.clone())
                    .unwrap_or_default(),
            };
            let mut out = Output::new(
                std::mem::take(&mut outs[i][s as usize]),
                job.max_parallelism,
            );
            out.measure(metrics[i].clone(), s);
            let chain = std::mem::take(&mut chains[i][s as usize]);
            let inputs = Inputs::new(
                std::mem::take(&mut ins[i][s as usize]),
                options.exactly_once,
            );
            let batch_size = job.batch_size;
            let factory = node.factory.clone();
            let task: SubtaskBody = match factory {
                NodeFactory::Source(f) => {
                    sources_total += 1;
                    let (tx, rx) = unbounded();
                    source_controls.push(tx);
                    Box::new(move |ctx| {
                        let out = lead(out, i, chain)?;
                        let mut node = f(ctx.subtask)?;
                        run_source(ctx, node.as_mut(), out, rx, batch_size)
                    })
                }
                NodeFactory::Operator(f) => {
                    let (store, uid, parallelism) = (
                        keyed_store.clone().expect("made for operators"),
                        node.uid.clone(),
                        node.parallelism,
                    );
                    let manifest = restore
                        .as_ref()
                        .and_then(|r| r.keyed.get(&node.uid).cloned());
                    let max_parallelism = job.max_parallelism;
                    // The node's instance and keyed state, made on the thread that runs it.
                    let build = move |ctx: &SubtaskCtx| -> Result<_, RunError> {
                        let mut backend = crate::keyed::KeyedBackend::new(
                            &store,
                            &uid,
                            ctx.subtask,
                            parallelism,
                            max_parallelism,
                        )
                        .map_err(RunError::Keyed)?;
                        if let Some(m) = &manifest {
                            backend.restore(m).map_err(RunError::Keyed)?;
                        }
                        let keyed: crate::keyed::SharedKeyed =
                            Arc::new(std::sync::Mutex::new(backend));
                        store.registry.add(&uid, ctx.subtask, parallelism, &keyed);
                        let node = f(ctx.subtask, &keyed)?;
                        Ok((node, keyed))
                    };
                    if let Some(up) = chained_into[i] {
                        let ctx = ctx.clone();
                        chains[heads[i]][s as usize].push(super::chain::Member {
                            node: i,
                            upstream: up,
                            port: node.inputs[0].2,
                            out,
                            start: Box::new(move |out| {
                                let (node, keyed) = build(&ctx)?;
                                let input = ctx.restore_time.map_or(i64::MIN, |t| t.input);
                                let task = OperatorTask::start(ctx, node, out, keyed, input)?;
                                Ok(Chained::new(task, input))
                            }),
                        });
                        continue;
                    }
                    Box::new(move |ctx| {
                        let out = lead(out, i, chain)?;
                        let (node, keyed) = build(ctx)?;
                        run_operator(ctx.clone(), node, inputs, out, keyed)
                    })
                }
                NodeFactory::Sink(f) => {
                    let (tx, rx) = unbounded();
                    sink_controls.push(tx);
                    let retired = restore
                        .as_ref()
                        .and_then(|r| r.retired.get(&(node.uid.clone(), s)).cloned())
                        .unwrap_or_default();
                    Box::new(move |ctx| {
                        // Subtasks a smaller parallelism dropped: what they prepared for the
                        // restored checkpoint is published, what came after aborted, once.
                        for (old, state) in &retired {
                            let mut gone = f(*old)?;
                            gone.restore(state)?;
                            if let Some(id) = ctx.restored_checkpoint {
                                gone.commit(id)?;
                                for newer in &ctx.abort_after_restore {
                                    gone.abort(*newer)?;
                                }
                            }
                        }
                        let mut node = f(ctx.subtask)?;
                        run_sink(ctx, node.as_mut(), inputs, rx)
                    })
                }
            };
            threads += 1;
            spawns.push((node.uid.clone(), s, ctx, task));
        }
    }
    // Spawned in job order (sources last built, first started is irrelevant: channels are
    // bounded and every subtask waits on its inputs).
    for (uid, s, ctx, task) in spawns.into_iter().rev() {
        // One OS thread per subtask (not tokio's blocking pool, whose 512 threads would
        // leave the rest of a large job waiting forever), inside this runtime's context so
        // plugin calls can wait on host I/O and timers.
        let rt = tokio::runtime::Handle::current();
        let spawned = std::thread::Builder::new()
            .name(format!("{uid}[{s}]"))
            .spawn(move || {
                let _rt = rt.enter();
                // A bug in host code must end the job with an error, not leave the coordinator
                // waiting for a subtask that will never report.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&ctx)))
                    .unwrap_or_else(|panic| {
                        let msg = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(RunError::Internal(format!("subtask panicked: {msg}")))
                    });
                let _ = ctx.events.send(Event::Exited {
                    node: ctx.node,
                    subtask: ctx.subtask,
                    result,
                });
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                cancel.store(true, Ordering::Relaxed);
                return Err(RunError::Internal(format!(
                    "cannot start a thread for subtask {uid}[{s}]: {e} (too many subtasks for this machine's thread limit?)"
                )));
            }
        }
    }
    drop(events_tx);
    let sinks_total = sink_controls.len();

    let progress = options
        .progress
        .then(|| crate::metrics::spawn_progress(metrics.clone(), cancel.clone()));

    // The coordinator loop.
    let mut next_id = options.first_id;
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut last_completed: Option<u64> = None;
    let mut last_completed_at = Instant::now();
    let mut sources_ended = 0usize;
    let mut final_id: Option<u64> = None;
    let mut savepoint: Option<u64> = None;
    let mut stop_asked: Option<Instant> = None;
    let mut final_commits = 0usize;
    let mut finished = false;
    let mut error: Option<RunError> = None;
    let mut live = threads;
    let mut interval = options.interval.map(|d| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut housekeeping = tokio::time::interval(Duration::from_millis(50));

    let trigger = |id: u64,
                   last: bool,
                   savepoint: bool,
                   pending: &mut BTreeMap<u64, Pending>,
                   controls: &[Sender<Control>],
                   hooks: &mut dyn CheckpointHooks|
     -> Result<(), RunError> {
        hooks.started(id, savepoint).map_err(RunError::Checkpoint)?;
        let barrier = Barrier { id, last };
        pending.insert(
            id,
            Pending {
                barrier,
                savepoint,
                started_at: Instant::now(),
                started: SystemTime::now(),
                states: Vec::new(),
                keyed: BTreeMap::new(),
                acks: 0,
            },
        );
        for c in controls {
            let _ = c.send(Control::Trigger(barrier));
        }
        tracing::debug!(
            "triggered checkpoint {id}{}",
            if last { " (last)" } else { "" }
        );
        Ok(())
    };

    if let Some(live) = &options.live {
        live.running(metrics.clone());
    }
    let mut commands = match &options.commands {
        Some(c) => Some(c.clone().lock_owned().await),
        None => None,
    };

    // A stop asked for before the job started (during start-up) is honoured at once: the
    // select arm below sees it as a change.
    if let Some(s) = stop.as_mut().filter(|s| *s.borrow()) {
        s.mark_changed();
    }
    while live > 0 {
        tokio::select! {
            // Periodic checkpoints, while the job runs and there is room for one more.
            _ = async { interval.as_mut().expect("guarded").tick().await }, if interval.is_some() && final_id.is_none() && error.is_none() => {
                if pending.len() < options.max_concurrent && last_completed_at.elapsed() >= options.min_pause {
                    let id = next_id;
                    next_id += 1;
                    if let Err(e) = trigger(id, false, false, &mut pending, &source_controls, hooks) {
                        fail(&mut error, e, &cancel, &mut source_controls, &mut sink_controls);
                    }
                }
            }
            // Stop with a savepoint: a last barrier that drains the pipeline.
            // A stop asked while the job is already finishing only starts the grace period.
            changed = async { stop.as_mut().expect("guarded").changed().await }, if stop.is_some() && stop_asked.is_none() && error.is_none() => {
                if changed.is_err() {
                    stop = None;
                    continue;
                }
                // Only a change to "stop" stops (a swap resets the flag between attempts).
                if !*stop.as_ref().expect("guarded").borrow() {
                    continue;
                }
                stop_asked = Some(Instant::now());
                if let Some(live) = &options.live {
                    live.set_status(crate::live::Status::Stopping);
                }
                if final_id.is_some() {
                    tracing::info!("stop asked while the job is finishing: it has {:?} to finish", options.stop_grace);
                    continue;
                }
                let id = next_id;
                next_id += 1;
                final_id = Some(id);
                savepoint = Some(id);
                tracing::info!("stopping with savepoint {id}");
                if let Err(e) = trigger(id, true, true, &mut pending, &source_controls, hooks) {
                    fail(&mut error, e, &cancel, &mut source_controls, &mut sink_controls);
                }
            }
            // Requests from outside: a checkpoint or savepoint now, a cancel.
            command = async { commands.as_mut().expect("guarded").recv().await }, if commands.is_some() && error.is_none() => {
                match command {
                    None => commands = None,
                    Some(Command::Checkpoint { savepoint, reply }) => {
                        let answer = if final_id.is_some() {
                            Err("the job is finishing: it takes no more checkpoints".to_string())
                        } else if pending.len() >= options.max_concurrent {
                            Err(format!(
                                "{} checkpoint(s) in progress, the most allowed at once ([checkpoint] max_concurrent = {}): ask again when it completes",
                                pending.len(),
                                options.max_concurrent
                            ))
                        } else {
                            let id = next_id;
                            next_id += 1;
                            tracing::info!("{} {id} asked for", if savepoint { "savepoint" } else { "checkpoint" });
                            match trigger(id, false, savepoint, &mut pending, &source_controls, hooks) {
                                Ok(()) => Ok(id),
                                Err(e) => {
                                    let message = e.to_string();
                                    fail(&mut error, e, &cancel, &mut source_controls, &mut sink_controls);
                                    Err(message)
                                }
                            }
                        };
                        let _ = reply.send(answer);
                    }
                    Some(Command::Cancel) => {
                        tracing::warn!("cancelling the job on request");
                        fail(&mut error, RunError::CancelledOnRequest, &cancel, &mut source_controls, &mut sink_controls);
                    }
                }
            }
            // Expire checkpoints past their timeout; cancel a stop past its grace.
            _ = housekeeping.tick() => {
                if stop_asked.is_some_and(|t| t.elapsed() > options.stop_grace) && error.is_none() {
                    tracing::warn!("the savepoint did not complete within {:?}: cancelling the job", options.stop_grace);
                    fail(&mut error, RunError::StopTimedOut(options.stop_grace), &cancel, &mut source_controls, &mut sink_controls);
                }
                let expired: Vec<u64> = pending
                    .iter()
                    .filter(|(_, p)| p.started_at.elapsed() > options.timeout)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    let p = pending.remove(&id).expect("listed above");
                    let reason = format!("not complete after {:?} (checkpoint timeout)", options.timeout);
                    tracing::warn!("checkpoint {id} failed: {reason}; the job goes on");
                    hooks.failed(id, &reason);
                    if p.barrier.last {
                        fail(&mut error, RunError::Checkpoint(format!("the last checkpoint {id} was {reason}")), &cancel, &mut source_controls, &mut sink_controls);
                    }
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    Event::SourceEnded => {
                        sources_ended += 1;
                        if sources_ended == sources_total && final_id.is_none() && error.is_none() {
                            let id = next_id;
                            next_id += 1;
                            final_id = Some(id);
                            if let Err(e) = trigger(id, true, false, &mut pending, &source_controls, hooks) {
                                fail(&mut error, e, &cancel, &mut source_controls, &mut sink_controls);
                            }
                        }
                    }
                    Event::Ack { checkpoint, node, subtask, state, time, keyed } => {
                        let Some(p) = pending.get_mut(&checkpoint) else { continue };
                        let uid = &job.nodes[node].uid;
                        p.states.push((uid.clone(), subtask, state));
                        if let Some(part) = keyed.filter(|k| !k.groups.is_empty()) {
                            let whole = p.keyed.entry(uid.clone()).or_insert_with(|| crate::keyed::KeyedManifest {
                                max_parallelism: part.max_parallelism,
                                groups: Default::default(),
                            });
                            whole.groups.extend(part.groups);
                        }
                        if let Some(time) = time {
                            p.states.push((crate::time::time_uid(uid), subtask, time));
                        }
                        p.acks += 1;
                        if p.acks < total_subtasks {
                            continue;
                        }
                        let p = pending.remove(&checkpoint).expect("present");
                        let done = CompletedCheckpoint {
                            id: checkpoint,
                            last: p.barrier.last,
                            savepoint: p.savepoint,
                            started: p.started,
                            duration: p.started_at.elapsed(),
                            states: p.states,
                            keyed: p.keyed,
                        };
                        let stored = tokio::task::block_in_place(|| hooks.complete(&done));
                        if let Err(e) = stored {
                            hooks.failed(checkpoint, &e);
                            if done.last {
                                fail(&mut error, RunError::Checkpoint(e), &cancel, &mut source_controls, &mut sink_controls);
                            } else {
                                tracing::warn!("checkpoint {checkpoint} could not be stored: {e}; the job goes on");
                            }
                            continue;
                        }
                        tracing::debug!("checkpoint {checkpoint} complete in {:?}", done.duration);
                        last_completed = Some(checkpoint);
                        last_completed_at = Instant::now();
                        // Older checkpoints still pending are subsumed by this one.
                        let older: Vec<u64> = pending.range(..checkpoint).map(|(id, _)| *id).collect();
                        for id in older {
                            pending.remove(&id);
                            hooks.failed(id, "subsumed by a newer checkpoint");
                        }
                        for c in sink_controls.iter().chain(&source_controls) {
                            let _ = c.send(Control::Commit(checkpoint));
                        }
                    }
                    Event::Committed { checkpoint } => {
                        if final_id.is_some_and(|f| checkpoint >= f) {
                            final_commits += 1;
                            if final_commits == sinks_total {
                                finished = true;
                            }
                        }
                    }
                    Event::Exited { node, subtask, result } => {
                        live -= 1;
                        if let Err(e) = result {
                            if !matches!(e, RunError::Cancelled) {
                                tracing::debug!("{}[{subtask}] failed: {e}", job.nodes[node].uid);
                            }
                            fail(&mut error, e, &cancel, &mut source_controls, &mut sink_controls);
                        }
                    }
                }
            }
        }
    }
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
    if let Some(e) = error {
        return Err(e);
    }
    if sinks_total > 0 && !finished {
        return Err(RunError::Internal(
            "the job ended before its last checkpoint committed".into(),
        ));
    }
    Ok(RunReport {
        metrics,
        elapsed: started.elapsed(),
        last_checkpoint: last_completed,
        savepoint,
    })
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
