//! What a running subtask drives: a source, operator or sink behind a trait, so a Wasm plugin and
//! a native connector (e.g. the benchmark's memory source) run on the same runtime.
//!
//! Invariant: every hook a checkpoint needs (`snapshot`, `restore`, `prepare`, `commit`, `abort`)
//! exists on every node; a node with nothing to save returns empty state.

use crate::graph::Node;
use crate::plugin::{
    OperatorInstance, PluginError, PluginHost, Polled, Record, SinkInstance, SourceInstance,
};
use std::sync::Arc;

/// A running source subtask.
pub trait SourceNode: Send {
    fn poll(&mut self, max: u32) -> Result<Polled, PluginError>;
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError>;
}

/// A running operator subtask.
pub trait OperatorNode: Send {
    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>, PluginError>;
    fn on_watermark(&mut self, ts: i64) -> Result<Vec<Record>, PluginError>;
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError>;
}

/// A running sink subtask.
pub trait SinkNode: Send {
    fn write(&mut self, batch: Vec<Record>) -> Result<(), PluginError>;
    /// End of input: no more writes.
    fn finish(&mut self) -> Result<(), PluginError>;
    fn prepare(&mut self, checkpoint: u64) -> Result<(), PluginError>;
    fn commit(&mut self, checkpoint: u64) -> Result<(), PluginError>;
    fn abort(&mut self, checkpoint: u64) -> Result<(), PluginError>;
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError>;
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError>;
}

type Factory<T> = Arc<dyn Fn(u32) -> Result<Box<T>, PluginError> + Send + Sync>;

/// Builds one node's subtask instances, given the subtask index. Called on the subtask's own
/// thread, so instantiation of parallel subtasks runs in parallel.
#[derive(Clone)]
pub enum NodeFactory {
    Source(Factory<dyn SourceNode>),
    Operator(Factory<dyn OperatorNode>),
    Sink(Factory<dyn SinkNode>),
}

impl NodeFactory {
    /// The factory of a Wasm-backed graph node.
    pub fn wasm(host: Arc<PluginHost>, node: &Node) -> Self {
        let plugin = node.plugin.clone();
        let uid = node.uid.clone();
        let parallelism = node.parallelism;
        let sandbox = node.sandbox.clone();
        let limits = node.limits;
        let config = node.config.clone();
        match node.kind {
            crate::config::NodeKind::Source => NodeFactory::Source(Arc::new(move |subtask| {
                let i = SourceInstance::start(
                    &host,
                    &plugin,
                    &uid,
                    subtask,
                    parallelism,
                    &sandbox,
                    limits,
                    &config,
                )?;
                Ok(Box::new(i) as Box<dyn SourceNode>)
            })),
            crate::config::NodeKind::Operator => NodeFactory::Operator(Arc::new(move |subtask| {
                let i = OperatorInstance::start(
                    &host,
                    &plugin,
                    &uid,
                    subtask,
                    parallelism,
                    &sandbox,
                    limits,
                    &config,
                )?;
                Ok(Box::new(i) as Box<dyn OperatorNode>)
            })),
            crate::config::NodeKind::Sink => NodeFactory::Sink(Arc::new(move |subtask| {
                let i = SinkInstance::start(
                    &host,
                    &plugin,
                    &uid,
                    subtask,
                    parallelism,
                    &sandbox,
                    limits,
                    &config,
                )?;
                Ok(Box::new(i) as Box<dyn SinkNode>)
            })),
        }
    }
}

impl SourceNode for SourceInstance {
    fn poll(&mut self, max: u32) -> Result<Polled, PluginError> {
        SourceInstance::poll(self, max)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        SourceInstance::snapshot(self)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        SourceInstance::restore(self, state)
    }
}

impl OperatorNode for OperatorInstance {
    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>, PluginError> {
        OperatorInstance::process(self, &batch)
    }
    fn on_watermark(&mut self, ts: i64) -> Result<Vec<Record>, PluginError> {
        OperatorInstance::on_watermark(self, ts)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        OperatorInstance::snapshot(self)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        OperatorInstance::restore(self, state)
    }
}

impl SinkNode for SinkInstance {
    fn write(&mut self, batch: Vec<Record>) -> Result<(), PluginError> {
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
}
