//! The runtime: one OS thread per subtask (in the runtime's context), bounded channels between them, in-band
//! control messages, and a coordinator that drives barriers and ends the job.
//!
//! Data path: source subtask ─poll→ Batch ─chan→ operator ─process→ ... ─chan→ sink ─write.
//! A job ends with a final barrier: when every source is exhausted the coordinator triggers it,
//! every subtask snapshots and acks it, sinks prepare it, and once all acked the sinks commit it.
//!
//! Invariant: channels are bounded (a slow sink slows the sources; memory stays flat), and a
//! barrier travels behind every record sent before it on the same channel.

mod chain;
mod coordinator;
mod input;
pub mod node;
mod output;
mod subtask;
mod supervised;

pub use coordinator::{
    CheckpointHooks, Command, Commands, CompletedCheckpoint, NoCheckpointStore, RestorePoint,
    RunOptions, StopSignal,
};
pub use node::{NodeFactory, OperatorFactory, OperatorNode, SinkNode, SourceNode};
pub use output::stable_hash;
pub use supervised::{Care, Supervised};

use crate::batch::Batch;
use crate::config::Partition;
use crate::metrics::NodeMetrics;
use crate::plugin::PluginError;
use std::sync::Arc;

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
    pub watermarks: Option<crate::time::watermarks::Strategy>,
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

impl Job {
    /// The job of a validated graph (`job`: its identity, empty outside a state directory).
    pub fn from_graph(
        graph: &crate::graph::JobGraph,
        host: Arc<crate::plugin::PluginHost>,
        job: &str,
    ) -> Self {
        let cancel: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        Job {
            name: graph.name.clone(),
            nodes: graph
                .nodes
                .iter()
                .map(|n| JobNode {
                    uid: n.uid.clone(),
                    parallelism: n.parallelism,
                    inputs: n
                        .inputs
                        .iter()
                        .map(|e| (e.from, e.partition, e.port))
                        .collect(),
                    factory: NodeFactory::for_job(host.clone(), n, cancel.clone(), job),
                    watermarks: n.watermarks.clone(),
                    chain: n.chain,
                })
                .collect(),
            batch_size: graph.batch_size,
            channel_capacity: graph.channel_capacity,
            max_parallelism: graph.max_parallelism,
            cancel,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plugin(PluginError),
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
    Time(crate::time::watermarks::TimestampError),
    #[error(transparent)]
    Keyed(crate::keyed::KeyedError),
    #[error("internal: {0}")]
    Internal(String),
}

impl RunError {
    /// Why a restart cannot cure this failure, if it cannot: the same plugin, config and
    /// components fail the same way every time. Restarting those only repeats the error.
    pub fn incurable(&self) -> Option<&'static str> {
        use crate::plugin::Cause;
        match self {
            RunError::Plugin(PluginError::Call {
                call: "open" | "instantiate",
                cause:
                    Cause::Error(_) | Cause::Io(_) | Cause::OutOfMemory { .. } | Cause::TooLarge(_),
                ..
            }) => Some("the plugin refuses to start with this config or ceiling"),
            RunError::Plugin(PluginError::Call {
                call: "restore",
                cause: Cause::Error(_),
                ..
            }) => Some(
                "the plugin refuses the stored state, which every restart restores again (run the build that wrote it, or start over with --fresh)",
            ),
            RunError::Plugin(PluginError::Call {
                call: "restore",
                cause: Cause::Io(_),
                ..
            }) => Some(
                "the plugin cannot use a file or directory its stored state names, and a restart finds it the same way (were files under its grants moved, deleted or made read-only outside weir? put them back, or start over with --fresh --yes)",
            ),
            RunError::Plugin(PluginError::Call {
                cause: Cause::TooLarge(_),
                ..
            }) => Some(
                "the same input makes the same reply again (raise the node's reply limit the message names, or lower [pipeline] batch_size)",
            ),
            RunError::Plugin(PluginError::Call {
                cause: Cause::KeyedMisuse(_),
                ..
            }) => Some("the plugin's code uses keyed state this way on the same input again"),
            RunError::Plugin(
                PluginError::Read { .. }
                | PluginError::Compile { .. }
                | PluginError::NotAPlugin { .. }
                | PluginError::Incomplete { .. }
                | PluginError::Imports { .. }
                | PluginError::Instantiate { .. },
            ) => Some("the plugin cannot be loaded or started"),
            RunError::Plugin(PluginError::Call {
                cause: Cause::BadBatch(_),
                ..
            }) => Some("the plugin does not speak this weir's batch format"),
            RunError::Time(_) => Some("the input has a record without a usable event time"),
            RunError::CancelledOnRequest => Some("it was cancelled on request"),
            _ => None,
        }
    }
}

impl RunError {
    /// Whether this is a failure of a plugin's own logic (an error it returned that is not the
    /// operating system's, a panic, a trap): the same input makes it again. Not a limit the
    /// host enforced, not I/O, not a cancellation.
    pub fn is_plugin_logic(&self) -> bool {
        use crate::plugin::Cause;
        matches!(
            self,
            RunError::Plugin(PluginError::Call {
                cause: Cause::Error(_) | Cause::Panic { .. } | Cause::Trap(_),
                ..
            })
        )
    }
}

impl From<PluginError> for RunError {
    /// A call cut short because the job was cancelled is the cancellation, not the plugin's
    /// failure: it must not hide the error that caused it.
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Call {
                cause: crate::plugin::Cause::Cancelled,
                ..
            } => RunError::Cancelled,
            e => RunError::Plugin(e),
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
