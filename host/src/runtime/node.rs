//! How the runtime makes a node's subtask instances: one factory per node, called on each
//! subtask's own thread. What the instances are (a Wasm plugin, a native connector) is the
//! business of the layer that builds the factory; the runtime sees the node contract
//! (`weir_core::node`).
//!
//! Invariant: a factory is called once per subtask start (and again per recycled instance),
//! never shared across jobs.

use crate::keyed::SharedKeyed;
use std::sync::Arc;
use weir_core::NodeError;
pub use weir_core::node::{OperatorNode, Polled, SinkNode, SourceNode};

type Factory<T> = Arc<dyn Fn(u32) -> Result<Box<T>, NodeError> + Send + Sync>;

/// Builds an operator subtask's instance, given the subtask index and the subtask's keyed
/// state (every instance of the subtask, also a recycled one, shares it).
pub type OperatorFactory =
    Arc<dyn Fn(u32, &SharedKeyed) -> Result<Box<dyn OperatorNode>, NodeError> + Send + Sync>;

/// Builds one node's subtask instances, given the subtask index. Called on the subtask's own
/// thread, so instantiation of parallel subtasks runs in parallel.
#[derive(Clone)]
pub enum NodeFactory {
    Source(Factory<dyn SourceNode>),
    Operator(OperatorFactory),
    Sink(Factory<dyn SinkNode>),
}
