//! Wasm plugins as nodes: the factory that starts a node's plugin instances (wrapped in
//! [`Supervised`] where the node asks for recycling or poison isolation), and the node contract
//! of `weir_core::node` implemented by the three instance types.
//!
//! Invariant: every error a plugin call raises reaches the runtime as a [`NodeError`] that names
//! the node, the subtask, the plugin and the call.

use super::{
    InstanceSpec, LoadedPlugin, OperatorInstance, PluginHost, SandboxSpec, SinkInstance,
    SourceInstance,
};
use crate::config::NodeKind;
use crate::runtime::{Care, NodeFactory, Supervised};
use std::sync::Arc;
use weir_core::NodeError;
use weir_core::Record;
use weir_core::batch::Batch;
use weir_core::node::{OperatorNode, Polled, SinkNode, SourceNode};

/// What starting a Wasm node's instances needs besides its plugin.
pub struct WasmNode {
    pub uid: String,
    pub kind: NodeKind,
    pub parallelism: u32,
    /// Its sandbox, with the job's cancel flag in it.
    pub sandbox: SandboxSpec,
    pub limits: super::Limits,
    pub config: crate::config::PluginConfig,
    /// Recycling and poison isolation (operators).
    pub care: Care,
}

/// What every instance of one Wasm node starts from.
struct Starter {
    host: Arc<PluginHost>,
    plugin: LoadedPlugin,
    uid: String,
    parallelism: u32,
    sandbox: SandboxSpec,
    limits: super::Limits,
    config: crate::config::PluginConfig,
}

impl Starter {
    /// The spec of subtask `subtask`'s instance.
    fn spec(&self, subtask: u32) -> InstanceSpec<'_> {
        InstanceSpec {
            host: &self.host,
            plugin: &self.plugin,
            node: &self.uid,
            subtask,
            parallelism: self.parallelism,
            sandbox: &self.sandbox,
            limits: self.limits,
            config: &self.config,
        }
    }
}

/// The factory of a Wasm node running `plugin`.
pub fn factory(host: Arc<PluginHost>, plugin: LoadedPlugin, node: WasmNode) -> NodeFactory {
    let care = node.care;
    let kind = node.kind;
    let starter = Arc::new(Starter {
        host,
        plugin,
        uid: node.uid,
        parallelism: node.parallelism,
        sandbox: node.sandbox,
        limits: node.limits,
        config: node.config,
    });
    match kind {
        NodeKind::Source => NodeFactory::Source(Arc::new(move |subtask| {
            let i = SourceInstance::start(&starter.spec(subtask))?;
            Ok(Box::new(i) as Box<dyn SourceNode>)
        })),
        NodeKind::Operator => NodeFactory::Operator(Arc::new(move |subtask, keyed| {
            let start = {
                let (starter, keyed) = (starter.clone(), keyed.clone());
                move || -> Result<Box<dyn OperatorNode>, NodeError> {
                    let i = OperatorInstance::start(&starter.spec(subtask), Some(keyed.clone()))?;
                    Ok(Box::new(i))
                }
            };
            let first = start()?;
            if !care.any() {
                return Ok(first);
            }
            let label = format!("{}[{subtask}]", starter.uid);
            Ok(
                Box::new(Supervised::new(first, Box::new(start), care, label))
                    as Box<dyn OperatorNode>,
            )
        })),
        NodeKind::Sink => NodeFactory::Sink(Arc::new(move |subtask| {
            let i = SinkInstance::start(&starter.spec(subtask))?;
            Ok(Box::new(i) as Box<dyn SinkNode>)
        })),
    }
}

impl SourceNode for SourceInstance {
    fn poll(&mut self, max: u32) -> Result<Polled, NodeError> {
        SourceInstance::poll(self, max).map_err(Into::into)
    }
    fn snapshot(&mut self, _checkpoint: u64) -> Result<Vec<u8>, NodeError> {
        SourceInstance::snapshot(self).map_err(Into::into)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        SourceInstance::restore(self, state).map_err(Into::into)
    }
    fn take_watermark(&mut self) -> Option<i64> {
        SourceInstance::take_watermark(self)
    }
    fn memory_bytes(&self) -> u64 {
        SourceInstance::memory_bytes(self)
    }
}

impl OperatorNode for OperatorInstance {
    fn process(&mut self, batch: Batch) -> Result<Batch, NodeError> {
        OperatorInstance::process(self, &batch).map_err(Into::into)
    }
    fn on_watermark(&mut self, ts: i64) -> Result<Batch, NodeError> {
        OperatorInstance::on_watermark(self, ts).map_err(Into::into)
    }
    fn on_processing_time(&mut self, now: i64) -> Result<Batch, NodeError> {
        OperatorInstance::on_processing_time(self, now).map_err(Into::into)
    }
    fn next_processing_timer(&self) -> Option<i64> {
        OperatorInstance::next_processing_timer(self)
    }
    fn finish(&mut self) -> Result<Batch, NodeError> {
        OperatorInstance::finish(self).map_err(Into::into)
    }
    fn take_late(&mut self) -> Vec<Record> {
        OperatorInstance::take_late(self)
    }
    fn keep_late(&mut self, late: Vec<Record>) {
        OperatorInstance::keep_late(self, late)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
        OperatorInstance::snapshot(self).map_err(Into::into)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        OperatorInstance::restore(self, state).map_err(Into::into)
    }
    fn memory_bytes(&self) -> u64 {
        OperatorInstance::memory_bytes(self)
    }
}

impl SinkNode for SinkInstance {
    fn write(&mut self, batch: Batch) -> Result<(), NodeError> {
        SinkInstance::write(self, &batch).map_err(Into::into)
    }
    fn finish(&mut self) -> Result<(), NodeError> {
        SinkInstance::finish(self).map_err(Into::into)
    }
    fn prepare(&mut self, checkpoint: u64) -> Result<(), NodeError> {
        SinkInstance::prepare(self, checkpoint).map_err(Into::into)
    }
    fn commit(&mut self, checkpoint: u64) -> Result<(), NodeError> {
        SinkInstance::commit(self, checkpoint).map_err(Into::into)
    }
    fn abort(&mut self, checkpoint: u64) -> Result<(), NodeError> {
        SinkInstance::abort(self, checkpoint).map_err(Into::into)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
        SinkInstance::snapshot(self).map_err(Into::into)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        SinkInstance::restore(self, state).map_err(Into::into)
    }
    fn memory_bytes(&self) -> u64 {
        SinkInstance::memory_bytes(self)
    }
}
