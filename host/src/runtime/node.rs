//! What a running subtask drives: a source, operator or sink behind a trait, so a Wasm plugin and
//! a native connector (e.g. the benchmark's memory source) run on the same runtime.
//!
//! Invariant: every hook a checkpoint needs (`snapshot`, `restore`, `prepare`, `commit`, `abort`)
//! exists on every node; a node with nothing to save returns empty state.

use super::supervised::{Care, Supervised};
use crate::batch::Batch;
use crate::graph::Node;
use crate::keyed::SharedKeyed;
use crate::plugin::{
    InstanceSpec, LoadedPlugin, OperatorInstance, PluginError, PluginHost, Polled, Record,
    SinkInstance, SourceInstance,
};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A running source subtask.
pub trait SourceNode: Send {
    fn poll(&mut self, max: u32) -> Result<Polled, PluginError>;
    /// The state to keep for checkpoint `checkpoint`, taken between two polls.
    fn snapshot(&mut self, checkpoint: u64) -> Result<Vec<u8>, PluginError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError>;
    /// Records the last poll could not read, bound for the `<node>.dead-letter` output. Taken
    /// after every poll, so they travel before the next barrier like the records of that poll.
    fn take_dead_letters(&mut self) -> Vec<Record> {
        Vec::new()
    }
    /// Checkpoint `id` is complete (durable). For side effects only, e.g. telling an external
    /// system how far the job got; the checkpoint itself already holds the state.
    fn checkpoint_complete(&mut self, _id: u64) -> Result<(), PluginError> {
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
    fn process(&mut self, batch: Batch) -> Result<Batch, PluginError>;
    /// Event time reached `ts`: fire the event-time timers up to it, then tell the plugin.
    fn on_watermark(&mut self, ts: i64) -> Result<Batch, PluginError>;
    /// The wall clock reached `now` (ms since the epoch): fire the processing-time timers due.
    fn on_processing_time(&mut self, _now: i64) -> Result<Batch, PluginError> {
        Ok(Batch::empty())
    }
    /// When the earliest processing-time timer is due, if any.
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }
    /// End of input (after the +∞ watermark): emit what is still held back.
    fn finish(&mut self) -> Result<Batch, PluginError> {
        Ok(Batch::empty())
    }
    /// Records the last call sent to `<node>.late`.
    fn take_late(&mut self) -> Vec<Record> {
        Vec::new()
    }
    /// Hand back late records taken from another instance of this node (recycling), to be
    /// taken with this one's.
    fn keep_late(&mut self, _late: Vec<Record>) {}
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError>;
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
    fn write(&mut self, batch: Batch) -> Result<(), PluginError>;
    /// End of input: no more writes.
    fn finish(&mut self) -> Result<(), PluginError>;
    fn prepare(&mut self, checkpoint: u64) -> Result<(), PluginError>;
    fn commit(&mut self, checkpoint: u64) -> Result<(), PluginError>;
    fn abort(&mut self, checkpoint: u64) -> Result<(), PluginError>;
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError>;
    /// The most memory its plugin instance has held, in bytes (0 for native connectors).
    fn memory_bytes(&self) -> u64 {
        0
    }
}

type Factory<T> = Arc<dyn Fn(u32) -> Result<Box<T>, PluginError> + Send + Sync>;

/// Builds an operator subtask's instance, given the subtask index and the subtask's keyed
/// state (every instance of the subtask, also a recycled one, shares it).
pub type OperatorFactory =
    Arc<dyn Fn(u32, &SharedKeyed) -> Result<Box<dyn OperatorNode>, PluginError> + Send + Sync>;

/// Builds one node's subtask instances, given the subtask index. Called on the subtask's own
/// thread, so instantiation of parallel subtasks runs in parallel.
#[derive(Clone)]
pub enum NodeFactory {
    Source(Factory<dyn SourceNode>),
    Operator(OperatorFactory),
    Sink(Factory<dyn SinkNode>),
}

impl NodeFactory {
    /// The factory of a graph node, Wasm or native, outside any job.
    pub fn of(host: Arc<PluginHost>, node: &Node) -> Self {
        Self::for_job(host, node, Arc::default(), "")
    }

    /// The factory of a graph node of job `job` (its identity) whose cancel flag is `cancel`:
    /// setting it stops every call into the node's plugins.
    pub fn for_job(host: Arc<PluginHost>, node: &Node, cancel: Arc<AtomicBool>, job: &str) -> Self {
        match &node.plugin {
            crate::graph::Plugin::Wasm(plugin) => Self::wasm(host, node, plugin.clone(), cancel),
            crate::graph::Plugin::Native(native) => {
                native.factory(&node.uid, node.parallelism, job)
            }
        }
    }

    /// The factory of a Wasm-backed graph node running `plugin` (its `node.plugin`).
    fn wasm(
        host: Arc<PluginHost>,
        node: &Node,
        plugin: LoadedPlugin,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        let uid = node.uid.clone();
        let parallelism = node.parallelism;
        let mut sandbox = node.sandbox.clone();
        sandbox.cancel = cancel;
        let limits = node.limits;
        let config = node.config.clone();
        match node.kind {
            crate::config::NodeKind::Source => NodeFactory::Source(Arc::new(move |subtask| {
                let i = SourceInstance::start(&InstanceSpec {
                    host: &host,
                    plugin: &plugin,
                    node: &uid,
                    subtask,
                    parallelism,
                    sandbox: &sandbox,
                    limits,
                    config: &config,
                })?;
                Ok(Box::new(i) as Box<dyn SourceNode>)
            })),
            crate::config::NodeKind::Operator => {
                let care = Care {
                    recycle_above: node.recycle_above,
                    on_error: node.on_error,
                };
                NodeFactory::Operator(Arc::new(move |subtask, keyed| {
                    let start = {
                        let (host, plugin, uid) = (host.clone(), plugin.clone(), uid.clone());
                        let (sandbox, config) = (sandbox.clone(), config.clone());
                        let keyed = keyed.clone();
                        move || -> Result<Box<dyn OperatorNode>, PluginError> {
                            let spec = InstanceSpec {
                                host: &host,
                                plugin: &plugin,
                                node: &uid,
                                subtask,
                                parallelism,
                                sandbox: &sandbox,
                                limits,
                                config: &config,
                            };
                            let i = OperatorInstance::start(&spec, Some(keyed.clone()))?;
                            Ok(Box::new(i))
                        }
                    };
                    let first = start()?;
                    if !care.any() {
                        return Ok(first);
                    }
                    let label = format!("{uid}[{subtask}]");
                    Ok(
                        Box::new(Supervised::new(first, Box::new(start), care, label))
                            as Box<dyn OperatorNode>,
                    )
                }))
            }
            crate::config::NodeKind::Sink => NodeFactory::Sink(Arc::new(move |subtask| {
                let i = SinkInstance::start(&InstanceSpec {
                    host: &host,
                    plugin: &plugin,
                    node: &uid,
                    subtask,
                    parallelism,
                    sandbox: &sandbox,
                    limits,
                    config: &config,
                })?;
                Ok(Box::new(i) as Box<dyn SinkNode>)
            })),
        }
    }
}

impl SourceNode for SourceInstance {
    fn poll(&mut self, max: u32) -> Result<Polled, PluginError> {
        SourceInstance::poll(self, max)
    }
    fn snapshot(&mut self, _checkpoint: u64) -> Result<Vec<u8>, PluginError> {
        SourceInstance::snapshot(self)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        SourceInstance::restore(self, state)
    }
    fn take_watermark(&mut self) -> Option<i64> {
        SourceInstance::take_watermark(self)
    }
    fn memory_bytes(&self) -> u64 {
        SourceInstance::memory_bytes(self)
    }
}

impl OperatorNode for OperatorInstance {
    fn process(&mut self, batch: Batch) -> Result<Batch, PluginError> {
        OperatorInstance::process(self, &batch)
    }
    fn on_watermark(&mut self, ts: i64) -> Result<Batch, PluginError> {
        OperatorInstance::on_watermark(self, ts)
    }
    fn on_processing_time(&mut self, now: i64) -> Result<Batch, PluginError> {
        OperatorInstance::on_processing_time(self, now)
    }
    fn next_processing_timer(&self) -> Option<i64> {
        OperatorInstance::next_processing_timer(self)
    }
    fn finish(&mut self) -> Result<Batch, PluginError> {
        OperatorInstance::finish(self)
    }
    fn take_late(&mut self) -> Vec<Record> {
        OperatorInstance::take_late(self)
    }
    fn keep_late(&mut self, late: Vec<Record>) {
        OperatorInstance::keep_late(self, late)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        OperatorInstance::snapshot(self)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        OperatorInstance::restore(self, state)
    }
    fn memory_bytes(&self) -> u64 {
        OperatorInstance::memory_bytes(self)
    }
}

impl SinkNode for SinkInstance {
    fn write(&mut self, batch: Batch) -> Result<(), PluginError> {
        SinkInstance::write(self, &batch)
    }
    fn finish(&mut self) -> Result<(), PluginError> {
        SinkInstance::finish(self)
    }
    fn prepare(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        SinkInstance::prepare(self, checkpoint)
    }
    fn commit(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        SinkInstance::commit(self, checkpoint)
    }
    fn abort(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        SinkInstance::abort(self, checkpoint)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        SinkInstance::snapshot(self)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        SinkInstance::restore(self, state)
    }
    fn memory_bytes(&self) -> u64 {
        SinkInstance::memory_bytes(self)
    }
}
