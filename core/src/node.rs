//! The node contract: what a running subtask drives (a source, an operator or a sink) behind a
//! trait, so a Wasm plugin and a native connector run on the same runtime.
//!
//! Invariant: every hook a checkpoint needs (`snapshot`, `restore`, `prepare`, `commit`, `abort`)
//! exists on every node; a node with nothing to save returns empty state.

use crate::batch::Batch;
use crate::error::NodeError;
use crate::record::Record;

/// What one source poll produced.
pub enum Polled {
    Batch(Batch),
    Idle,
    End,
}

/// A running source subtask.
pub trait SourceNode: Send {
    fn poll(&mut self, max: u32) -> Result<Polled, NodeError>;
    /// The state to keep for checkpoint `checkpoint`, taken between two polls.
    fn snapshot(&mut self, checkpoint: u64) -> Result<Vec<u8>, NodeError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError>;
    /// Records the last poll could not read, bound for the `<node>.dead-letter` output. Taken
    /// after every poll, so they travel before the next barrier like the records of that poll.
    fn take_dead_letters(&mut self) -> Vec<Record> {
        Vec::new()
    }
    /// Checkpoint `id` is complete (durable). For side effects only, e.g. telling an external
    /// system how far the job got; the checkpoint itself already holds the state.
    fn checkpoint_complete(&mut self, _id: u64) -> Result<(), NodeError> {
        Ok(())
    }
    /// A watermark the last poll emitted itself (sources that know their event time).
    fn take_watermark(&mut self) -> Option<i64> {
        None
    }
    /// The most memory its plugin instance has held, in bytes (0 for native connectors).
    fn memory_bytes(&self) -> u64 {
        0
    }
}

/// A running operator subtask.
pub trait OperatorNode: Send {
    fn process(&mut self, batch: Batch) -> Result<Batch, NodeError>;
    /// Event time reached `ts`: fire the event-time timers up to it, then tell the plugin.
    fn on_watermark(&mut self, ts: i64) -> Result<Batch, NodeError>;
    /// The wall clock reached `now` (ms since the epoch): fire the processing-time timers due.
    fn on_processing_time(&mut self, _now: i64) -> Result<Batch, NodeError> {
        Ok(Batch::empty())
    }
    /// When the earliest processing-time timer is due, if any.
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }
    /// End of input (after the +∞ watermark): emit what is still held back.
    fn finish(&mut self) -> Result<Batch, NodeError> {
        Ok(Batch::empty())
    }
    /// Records the last call sent to `<node>.late`.
    fn take_late(&mut self) -> Vec<Record> {
        Vec::new()
    }
    /// Hand back late records taken from another instance of this node (recycling), to be
    /// taken with this one's.
    fn keep_late(&mut self, _late: Vec<Record>) {}
    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError>;
    /// Linear memory in use, for recycling; 0 when unknown.
    fn memory_bytes(&self) -> u64 {
        0
    }
    /// Poison records the last `process` isolated for `<node>.dead-letter`.
    fn take_dead_letters(&mut self) -> Vec<Record> {
        Vec::new()
    }
    /// How many records were skipped or dead-lettered since the last call.
    fn take_isolated(&mut self) -> u64 {
        0
    }
}

/// A running sink subtask.
pub trait SinkNode: Send {
    fn write(&mut self, batch: Batch) -> Result<(), NodeError>;
    /// End of input: no more writes.
    fn finish(&mut self) -> Result<(), NodeError>;
    fn prepare(&mut self, checkpoint: u64) -> Result<(), NodeError>;
    fn commit(&mut self, checkpoint: u64) -> Result<(), NodeError>;
    fn abort(&mut self, checkpoint: u64) -> Result<(), NodeError>;
    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError>;
    /// The most memory its plugin instance has held, in bytes (0 for native connectors).
    fn memory_bytes(&self) -> u64 {
        0
    }
}
