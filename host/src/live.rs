//! What a running job shows outside itself (the HTTP API, the dashboard, `/metrics`): its
//! graph, its status, the current attempt's metrics, its checkpoint history and restarts.
//!
//! Invariant: only the job's own threads write it and readers copy what they need under a short
//! lock, so nothing on the data path ever waits for a reader; the metrics themselves are the
//! runtime's atomics, read in place.

use crate::config::{NodeKind, Partition};
use crate::graph::JobGraph;
use crate::metrics::NodeMetrics;
use crate::runtime::{CheckpointHooks, CompletedCheckpoint};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Checkpoints kept in the history.
const HISTORY: usize = 100;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Loading plugins, restoring state.
    Starting,
    Running,
    /// An attempt failed; the next starts after the restart delay.
    Restarting,
    /// A stop was asked for: the last savepoint is being taken.
    Stopping,
    Finished,
    Failed,
    Cancelled,
}

/// A node as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LiveNode {
    pub uid: String,
    pub kind: NodeKind,
    pub parallelism: u32,
    /// Where its plugin comes from (a file, or built in).
    pub plugin: String,
    /// Runs a Wasm component (else a connector native to the host).
    pub wasm: bool,
    pub inputs: Vec<LiveEdge>,
}

/// One input edge of a node.
#[derive(Clone, Debug, Serialize)]
pub struct LiveEdge {
    pub from: String,
    pub partition: Partition,
    /// `main`, `dead-letter` or `late`.
    pub port: &'static str,
}

/// How a checkpoint went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum Outcome {
    InProgress,
    Completed,
    Failed(String),
}

/// One checkpoint of the history.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointInfo {
    pub id: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub savepoint: bool,
    /// Where the savepoint was written.
    pub path: Option<PathBuf>,
    /// When it was triggered, ms since the epoch.
    pub started_ms: u64,
    pub duration_ms: Option<u64>,
    /// Bytes of operator and sink state it holds (keyed state lives in its own pieces).
    pub state_bytes: Option<u64>,
}

/// The mutable part, behind one lock.
struct State {
    status: Status,
    /// Attempts started (the first is 1).
    attempt: u32,
    restarts: u32,
    last_failure: Option<String>,
    /// The running attempt's counters (empty between attempts).
    metrics: Vec<Arc<NodeMetrics>>,
    attempt_started: SystemTime,
    checkpoints: VecDeque<CheckpointInfo>,
    completed: u64,
    failed: u64,
    /// Sum of completed checkpoints' durations, for the Prometheus summary.
    duration_total: Duration,
    /// A cancel was asked for through the API.
    cancel_requested: bool,
    /// The swap between its request and its outcome.
    swap: Option<SwapInFlight>,
}

/// A live plugin swap under way (see [`crate::swap`]).
pub struct SwapInFlight {
    uid: String,
    /// The new build, loaded, tried and saved.
    new: crate::swap::Prepared,
    reply: tokio::sync::oneshot::Sender<Result<SwapDone, String>>,
    /// Once the job stopped at the swap's savepoint: its id, and the old build to go back to.
    at: Option<(u64, crate::graph::Plugin)>,
    /// Where the swap's savepoint was written.
    savepoint_path: Option<PathBuf>,
    /// Records each node had taken in when the old build stopped: what the new build's output
    /// follows.
    records_before: std::collections::BTreeMap<String, u64>,
}

impl SwapInFlight {
    /// Node `uid` is to run `new`; the outcome goes to `reply`.
    pub fn new(
        uid: String,
        new: crate::swap::Prepared,
        reply: tokio::sync::oneshot::Sender<Result<SwapDone, String>>,
    ) -> Self {
        SwapInFlight {
            uid,
            new,
            reply,
            at: None,
            savepoint_path: None,
            records_before: Default::default(),
        }
    }
}

/// What a swap that held reports.
#[derive(Clone, Debug, Serialize)]
pub struct SwapDone {
    pub node: String,
    pub plugin: PathBuf,
    /// The savepoint the new build took over from: output after it is the new build's.
    pub savepoint: u64,
    pub savepoint_path: Option<PathBuf>,
    /// The first checkpoint the new build completed.
    pub checkpoint: u64,
    pub records_before: std::collections::BTreeMap<String, u64>,
}

/// The running job, as seen from outside.
pub struct Live {
    pub pipeline: String,
    pub job: String,
    pub nodes: Vec<LiveNode>,
    /// Capacity of every channel between subtasks, in messages.
    pub channel_capacity: usize,
    pub started: SystemTime,
    state: Mutex<State>,
    /// Bumped at every change of the checkpoint history: waiters for a checkpoint watch it.
    changed: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("pipeline", &self.pipeline)
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl Live {
    pub fn new(graph: &JobGraph, job: &str) -> Arc<Self> {
        let nodes = graph
            .nodes
            .iter()
            .map(|n| LiveNode {
                uid: n.uid.clone(),
                kind: n.kind,
                parallelism: n.parallelism,
                plugin: n.plugin.to_string(),
                wasm: matches!(n.plugin, crate::graph::Plugin::Wasm(_)),
                inputs: n
                    .inputs
                    .iter()
                    .map(|i| LiveEdge {
                        from: graph.nodes[i.from].uid.clone(),
                        partition: i.partition,
                        port: i.port.name(),
                    })
                    .collect(),
            })
            .collect();
        Arc::new(Live {
            pipeline: graph.name.clone(),
            job: job.to_owned(),
            nodes,
            channel_capacity: graph.channel_capacity,
            started: SystemTime::now(),
            state: Mutex::new(State {
                status: Status::Starting,
                attempt: 0,
                restarts: 0,
                last_failure: None,
                metrics: Vec::new(),
                attempt_started: SystemTime::now(),
                checkpoints: VecDeque::new(),
                completed: 0,
                failed: 0,
                duration_total: Duration::ZERO,
                cancel_requested: false,
                swap: None,
            }),
            changed: tokio::sync::watch::channel(0).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An attempt starts: the first, a restart after a failure, or one after a swap.
    pub fn attempt_starting(&self, restart: bool) {
        let mut s = self.lock();
        s.attempt += 1;
        if restart {
            s.restarts += 1;
        }
        s.status = Status::Starting;
        s.metrics.clear();
    }

    pub fn set_status(&self, status: Status) {
        self.lock().status = status;
        self.changed.send_modify(|v| *v += 1);
    }

    /// The attempt failed with `error`.
    pub fn failed(&self, error: &str, restarting: bool) {
        let mut s = self.lock();
        s.last_failure = Some(error.to_owned());
        s.status = if restarting {
            Status::Restarting
        } else {
            Status::Failed
        };
        drop(s);
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    /// The running attempt's counters.
    pub fn metrics(&self) -> Vec<Arc<NodeMetrics>> {
        self.lock().metrics.clone()
    }

    /// Everything but the metrics, copied.
    pub fn summary(&self) -> Summary {
        let s = self.lock();
        Summary {
            status: s.status,
            attempt: s.attempt,
            restarts: s.restarts,
            last_failure: s.last_failure.clone(),
            attempt_started_ms: ms(s.attempt_started),
            checkpoints_completed: s.completed,
            checkpoints_failed: s.failed,
            checkpoint_seconds_total: s.duration_total.as_secs_f64(),
            latest: s.checkpoints.back().cloned(),
        }
    }

    /// The checkpoint history, newest last.
    pub fn checkpoints(&self) -> Vec<CheckpointInfo> {
        self.lock().checkpoints.iter().cloned().collect()
    }

    /// Checkpoint `id` as the history has it.
    pub fn checkpoint(&self, id: u64) -> Option<CheckpointInfo> {
        self.lock().checkpoints.iter().find(|c| c.id == id).cloned()
    }

    /// Wait until checkpoint `id` completes or fails, or the job ends without it.
    pub async fn wait_checkpoint(&self, id: u64) -> Result<CheckpointInfo, String> {
        let mut changed = self.changed.subscribe();
        loop {
            let status = self.status();
            let ended = matches!(
                status,
                Status::Failed | Status::Cancelled | Status::Restarting | Status::Finished
            );
            match self.checkpoint(id) {
                Some(c) if c.outcome == Outcome::Completed => return Ok(c),
                Some(CheckpointInfo {
                    outcome: Outcome::Failed(why),
                    ..
                }) => return Err(format!("checkpoint {id} failed: {why}")),
                Some(_) if ended => {
                    return Err(format!(
                        "the job is {status:?}: checkpoint {id} will not complete"
                    ));
                }
                None if !matches!(status, Status::Running | Status::Starting) => {
                    return Err(format!(
                        "the job is {status:?} and checkpoint {id} never started"
                    ));
                }
                _ => {}
            }
            if changed.changed().await.is_err() {
                return Err("the job is gone".into());
            }
        }
    }

    /// Queue a swap; refused while another is under way.
    pub fn request_swap(&self, swap: SwapInFlight) -> Result<(), String> {
        let mut s = self.lock();
        if let Some(other) = &s.swap {
            return Err(format!(
                "a swap of node `{}` is under way: ask again when it is done",
                other.uid
            ));
        }
        s.swap = Some(swap);
        Ok(())
    }

    /// The attempt (its counters: `metrics`) stopped at `savepoint`: whether that stop was a
    /// swap's. If so, `old` installs the new build in the node and returns the old one.
    pub fn swap_stopped(
        &self,
        savepoint: Option<(u64, Option<PathBuf>)>,
        old: impl FnOnce(&str, crate::plugin::LoadedPlugin) -> crate::graph::Plugin,
        metrics: &[Arc<NodeMetrics>],
    ) -> bool {
        let mut s = self.lock();
        let Some(swap) = s.swap.as_mut().filter(|w| w.at.is_none()) else {
            return false;
        };
        let Some((id, path)) = savepoint else {
            let swap = s.swap.take().expect("present");
            let _ = swap
                .reply
                .send(Err("the job ended before the swap could take place".into()));
            return false;
        };
        let previous = old(&swap.uid, swap.new.plugin.clone());
        swap.at = Some((id, previous));
        swap.savepoint_path = path;
        swap.records_before = metrics
            .iter()
            .map(|m| (m.uid.clone(), m.records_in()))
            .collect();
        true
    }

    /// The attempt with the new build failed with `why`: the swap is over, the caller puts
    /// the old build back (returned with its node) and resumes from the same savepoint.
    pub fn swap_failed(&self, why: &str) -> Option<(String, crate::graph::Plugin)> {
        let mut s = self.lock();
        let swap = s.swap.take_if(|w| w.at.is_some())?;
        let (id, old) = swap.at.expect("checked");
        let _ = swap.reply.send(Err(format!(
            "the new build of `{}` could not take over at savepoint {id}: {why}; the job goes on from that savepoint with the old build",
            swap.uid
        )));
        Some((swap.uid, old))
    }

    /// Checkpoint `id` completed: a swap waiting for its first checkpoint holds.
    fn swap_checkpointed(&self, id: u64) {
        let mut s = self.lock();
        let Some(swap) = s
            .swap
            .take_if(|w| w.at.as_ref().is_some_and(|(sp, _)| id > *sp))
        else {
            return;
        };
        let (savepoint, _) = swap.at.expect("checked");
        let recorded = crate::swap::record(
            &swap.new.state_dir,
            &swap.uid,
            crate::swap::Swapped {
                plugin: swap.new.path.clone(),
                savepoint,
            },
        );
        let done = recorded.map(|()| SwapDone {
            node: swap.uid.clone(),
            plugin: swap.new.path.clone(),
            savepoint,
            savepoint_path: swap.savepoint_path.clone(),
            checkpoint: id,
            records_before: swap.records_before.clone(),
        });
        tracing::info!(
            "node `{}` now runs {} (swapped at savepoint {savepoint})",
            swap.uid,
            swap.new.path.display()
        );
        let _ = swap.reply.send(done);
    }

    /// A cancel was asked for: the job's end is a cancel, not a failure.
    pub fn cancel_requested(&self) {
        self.lock().cancel_requested = true;
    }

    pub fn was_cancel_requested(&self) -> bool {
        self.lock().cancel_requested
    }

    /// Wait until the job has ended: finished, failed or cancelled.
    pub async fn wait_end(&self) -> Status {
        let mut changed = self.changed.subscribe();
        loop {
            let status = self.status();
            if matches!(
                status,
                Status::Finished | Status::Failed | Status::Cancelled
            ) || changed.changed().await.is_err()
            {
                return status;
            }
        }
    }

    fn record(&self, update: impl FnOnce(&mut State)) {
        update(&mut self.lock());
        self.changed.send_modify(|v| *v += 1);
    }
}

/// The job's state at a glance.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub status: Status,
    pub attempt: u32,
    pub restarts: u32,
    pub last_failure: Option<String>,
    pub attempt_started_ms: u64,
    pub checkpoints_completed: u64,
    pub checkpoints_failed: u64,
    pub checkpoint_seconds_total: f64,
    pub latest: Option<CheckpointInfo>,
}

pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checkpoint hooks that record every checkpoint in `live` and hand it on to `inner`.
pub struct LiveHooks<'a> {
    pub inner: &'a mut dyn CheckpointHooks,
    pub live: Arc<Live>,
}

impl CheckpointHooks for LiveHooks<'_> {
    fn started(&mut self, id: u64, savepoint: bool) -> Result<(), String> {
        let r = self.inner.started(id, savepoint);
        self.live.record(|s| {
            s.checkpoints.push_back(CheckpointInfo {
                id,
                outcome: match &r {
                    Ok(()) => Outcome::InProgress,
                    Err(e) => Outcome::Failed(e.clone()),
                },
                savepoint,
                path: None,
                started_ms: ms(SystemTime::now()),
                duration_ms: None,
                state_bytes: None,
            });
            while s.checkpoints.len() > HISTORY {
                s.checkpoints.pop_front();
            }
        });
        r
    }

    fn complete(&mut self, cp: &CompletedCheckpoint) -> Result<(), String> {
        let r = self.inner.complete(cp);
        if r.is_ok() {
            self.live.swap_checkpointed(cp.id);
        }
        let path = self.inner.savepoint_path(cp.id);
        self.live.record(|s| {
            if let Some(c) = s.checkpoints.iter_mut().find(|c| c.id == cp.id) {
                c.duration_ms = Some(cp.duration.as_millis() as u64);
                c.state_bytes = Some(cp.states.iter().map(|s| s.2.len() as u64).sum());
                c.path = path;
                c.outcome = match &r {
                    Ok(()) => Outcome::Completed,
                    Err(e) => Outcome::Failed(e.clone()),
                };
            }
            match &r {
                Ok(()) => {
                    s.completed += 1;
                    s.duration_total += cp.duration;
                }
                Err(_) => s.failed += 1,
            }
        });
        r
    }

    fn failed(&mut self, id: u64, reason: &str) {
        self.inner.failed(id, reason);
        self.live.record(|s| {
            if let Some(c) = s.checkpoints.iter_mut().find(|c| c.id == id)
                && c.outcome == Outcome::InProgress
            {
                c.outcome = Outcome::Failed(reason.to_owned());
                s.failed += 1;
            }
        });
    }

    fn savepoint_path(&self, id: u64) -> Option<PathBuf> {
        self.inner.savepoint_path(id)
    }
}

impl crate::runtime::JobObserver for Live {
    /// The attempt's subtasks run, counting into `metrics`.
    fn running(&self, metrics: Vec<Arc<NodeMetrics>>) {
        let mut s = self.lock();
        s.metrics = metrics;
        s.attempt_started = SystemTime::now();
        if s.status == Status::Starting {
            s.status = Status::Running;
        }
    }

    fn stopping(&self) {
        self.set_status(Status::Stopping);
    }
}
