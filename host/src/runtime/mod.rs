//! The runtime: one OS thread per subtask (in the runtime's context), bounded channels between them, in-band
//! control messages, and a coordinator that drives barriers and ends the job.
//!
//! Data path: source subtask ─poll→ Batch ─chan→ operator ─process→ ... ─chan→ sink ─write.
//! A job ends with a final barrier: when every source is exhausted the coordinator triggers it,
//! every subtask snapshots and acks it, sinks prepare it, and once all acked the sinks commit it.
//!
//! Invariant: channels are bounded (a slow sink slows the sources; memory stays flat), and a
//! barrier travels behind every record sent before it on the same channel.

mod bookkeeping;
mod chain;
mod coordinator;
mod input;
mod launch;
pub mod node;
mod output;
mod subtask;
mod supervised;

pub use coordinator::{
    CheckpointHooks, Command, Commands, CompletedCheckpoint, JobObserver, NoCheckpointStore,
    RestorePoint, RunOptions, StopSignal,
};
pub use node::{NodeFactory, OperatorFactory, OperatorNode, SinkNode, SourceNode};
pub use supervised::{Care, Supervised};

use crate::config::Partition;
use crate::metrics::NodeMetrics;
use std::sync::Arc;
use weir_core::batch::Batch;
use weir_core::{NodeError, Retry};

/// What flows on a channel between two subtasks.
#[derive(Debug)]
pub enum Message {
    Batch(Batch),
    /// Checkpoint barrier, in band with the data.
    Barrier(Barrier),
    /// Event time reached this many ms since the epoch on the sending subtask (`i64::MAX`: its
    /// input ended).
    Watermark(i64),
    /// The sender has no data for now: it holds no watermark back until its next batch or
    /// watermark.
    Idle,
    /// The sender's input is exhausted (it still forwards the final barrier after this).
    End,
}

impl Message {
    /// Copy a control message; batches are never copied this way.
    fn clone_control(&self) -> Message {
        match self {
            Message::Barrier(b) => Message::Barrier(*b),
            Message::Watermark(t) => Message::Watermark(*t),
            Message::Idle => Message::Idle,
            Message::End => Message::End,
            Message::Batch(_) => unreachable!("batches are routed, not broadcast as control"),
        }
    }
}

/// A checkpoint barrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Barrier {
    pub id: u64,
    /// The job ends once this checkpoint is committed (end of input, or stop with savepoint).
    pub last: bool,
}

/// Which of an upstream node's outputs an edge carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Port {
    /// The records the node produces.
    #[default]
    Main,
    /// Records a source could not read (corrupt input), with the error and their coordinates
    /// in headers: its `<node>.dead-letter` output.
    DeadLetter,
    /// Records an operator's event-time logic found too late: its `<node>.late` output.
    Late,
}

impl Port {
    /// Its name, as the suffix of an input (`<node>.dead-letter`) and in the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Port::Main => "main",
            Port::DeadLetter => "dead-letter",
            Port::Late => "late",
        }
    }
}

/// One node of a runnable job.
pub struct JobNode {
    pub uid: String,
    pub parallelism: u32,
    /// (index of the upstream node, partitioning, which of its outputs)
    pub inputs: Vec<(usize, Partition, Port)>,
    pub factory: NodeFactory,
    /// Where the node's output gets its event time and watermarks, if it does.
    pub watermarks: Option<weir_core::time::watermarks::Strategy>,
    /// May run chained into its upstream subtask (see `chain`).
    pub chain: bool,
}

/// A runnable job: nodes in topological order.
pub struct Job {
    pub name: String,
    pub nodes: Vec<JobNode>,
    pub batch_size: u32,
    pub channel_capacity: usize,
    /// Key groups of the job's keyed state; `hash` edges route by them.
    pub max_parallelism: u32,
    /// Set when the job is being torn down: subtasks stop, and calls into plugins are cut
    /// short (also ones blocked in a host call).
    pub cancel: Arc<std::sync::atomic::AtomicBool>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Node(NodeError),
    #[error("checkpoint storage: {0}")]
    Checkpoint(String),
    #[error("the job was cancelled")]
    Cancelled,
    #[error("the job was cancelled on request (its HTTP API), without a savepoint")]
    CancelledOnRequest,
    #[error(
        "the stop with savepoint did not complete within {0:?} (a plugin call still running?): the job was cancelled without a savepoint; its latest complete checkpoint is kept (raise --stop-grace to wait longer)"
    )]
    StopTimedOut(std::time::Duration),
    /// A record's event time could not be read: the same input fails the same way again.
    #[error(transparent)]
    Time(weir_core::time::watermarks::TimestampError),
    #[error(transparent)]
    Keyed(crate::keyed::KeyedError),
    #[error("internal: {0}")]
    Internal(String),
}

impl RunError {
    /// Why a restart cannot cure this failure, if it cannot: the same plugin, config and
    /// components fail the same way every time. Restarting those only repeats the error.
    pub fn incurable(&self) -> Option<&'static str> {
        match self {
            RunError::Node(e) => match e.retry() {
                Retry::Never(why) => Some(why),
                Retry::Restart => None,
            },
            RunError::Time(_) => Some("the input has a record without a usable event time"),
            RunError::CancelledOnRequest => Some("it was cancelled on request"),
            _ => None,
        }
    }

    /// Whether this is a failure of a plugin's own logic (an error it returned that is not the
    /// operating system's, a panic, a trap): the same input makes it again.
    pub fn is_plugin_logic(&self) -> bool {
        matches!(self, RunError::Node(e) if e.is_plugin_logic())
    }
}

impl From<NodeError> for RunError {
    /// A call cut short because the job was cancelled is the cancellation, not the node's
    /// failure: it must not hide the error that caused it.
    fn from(e: NodeError) -> Self {
        if e.is_cancelled() {
            RunError::Cancelled
        } else {
            RunError::Node(e)
        }
    }
}

/// What a finished run reports.
pub struct RunReport {
    pub metrics: Vec<Arc<NodeMetrics>>,
    pub elapsed: std::time::Duration,
    /// The last checkpoint that completed, if any.
    pub last_checkpoint: Option<u64>,
    /// Set when the job stopped on a savepoint rather than at the end of its input.
    pub savepoint: Option<u64>,
}

/// Run `job` to its end or first failure.
pub async fn run(
    job: Job,
    options: RunOptions,
    hooks: &mut dyn CheckpointHooks,
    stop: Option<StopSignal>,
) -> Result<RunReport, RunError> {
    coordinator::run(job, options, hooks, stop).await
}
