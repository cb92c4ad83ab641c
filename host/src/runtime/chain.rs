//! Operator chaining (Flink's): an operator whose only input is a `forward` edge from a source
//! or operator of equal parallelism runs inside that upstream subtask, called directly where a
//! channel would have carried its input; `chain = false` on the node keeps it apart.
//!
//! Invariants: a chained operator sees exactly the steps its own input loop would have made of
//! the messages (batches, watermarks only when they advance, idleness, the end as a +∞
//! watermark then the end, barriers), in the same order; it keeps its own state, acks, event
//! time, keyed state and metrics under its own uid, so checkpoints and restores cannot tell a
//! chain from separate subtasks.

use super::Message;
use super::input::Step;
use super::subtask::{Flow, OperatorTask};
use super::{JobNode, NodeFactory, Port};
use crate::config::Partition;

/// The upstream node each node is chained into, if it is.
pub fn plan(nodes: &[JobNode]) -> Vec<Option<usize>> {
    nodes
        .iter()
        .map(|n| {
            let [(up, Partition::Forward, Port::Main)] = n.inputs[..] else {
                return None;
            };
            let upstream = &nodes[up];
            let chainable = n.chain
                && matches!(n.factory, NodeFactory::Operator(_))
                && !matches!(upstream.factory, NodeFactory::Sink(_))
                && upstream.parallelism == n.parallelism;
            chainable.then_some(up)
        })
        .collect()
}

/// A chained operator behind one edge of its upstream's output: the upstream's messages turned
/// into the steps of a one-input subtask.
pub struct Chained {
    pub port: Port,
    pub task: Box<OperatorTask>,
    watermark: i64,
    idle: bool,
    ended: bool,
    done: bool,
}

impl Chained {
    /// `watermark`: the input watermark restored from the checkpoint.
    pub fn new(port: Port, task: OperatorTask, watermark: i64) -> Self {
        Chained {
            port,
            task: Box::new(task),
            watermark,
            idle: false,
            ended: false,
            done: false,
        }
    }

    /// Hand the operator one message from upstream.
    pub fn deliver(&mut self, msg: Message) -> Result<(), super::RunError> {
        if self.done {
            return Ok(());
        }
        match msg {
            Message::Batch(b) => {
                self.idle = false;
                self.step(Step::Batch(b))
            }
            Message::Watermark(t) => {
                self.idle = false;
                self.advance(t)
            }
            Message::Idle => {
                if self.idle || self.ended {
                    return Ok(());
                }
                self.idle = true;
                self.step(Step::Idle)
            }
            Message::End => {
                if self.ended {
                    return Ok(());
                }
                self.ended = true;
                self.advance(crate::time::END_OF_TIME)?;
                self.step(Step::End)
            }
            Message::Barrier(b) => self.step(Step::Barrier(b)),
        }
    }

    fn advance(&mut self, t: i64) -> Result<(), super::RunError> {
        if t <= self.watermark {
            return Ok(());
        }
        self.watermark = t;
        self.step(Step::Watermark(t))
    }

    fn step(&mut self, step: Step) -> Result<(), super::RunError> {
        if self.task.step(step, self.watermark)? == Flow::Done {
            self.done = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn node(kind: &str, parallelism: u32, inputs: Vec<(usize, Partition, Port)>) -> JobNode {
        let factory = match kind {
            "source" => NodeFactory::Source(Arc::new(|_| unreachable!())),
            "operator" => NodeFactory::Operator(Arc::new(|_, _| unreachable!())),
            _ => NodeFactory::Sink(Arc::new(|_| unreachable!())),
        };
        JobNode {
            uid: kind.into(),
            parallelism,
            inputs,
            factory,
            watermarks: None,
            chain: true,
        }
    }

    #[test]
    fn only_forward_single_input_operators_of_equal_parallelism_chain() {
        let fwd = |u| (u, Partition::Forward, Port::Main);
        let mut nodes = vec![
            node("source", 2, vec![]),
            node("operator", 2, vec![fwd(0)]), // chained into 0
            node("operator", 2, vec![fwd(1)]), // chained into 1
            node("operator", 2, vec![(2, Partition::Hash, Port::Main)]), // a shuffle
            node("operator", 1, vec![fwd(3)]), // other parallelism
            node("operator", 2, vec![fwd(3), fwd(1)]), // two inputs
            node("operator", 2, vec![(1, Partition::Forward, Port::Late)]), // a side output
            node("sink", 2, vec![fwd(2)]),     // sinks stay apart
            node("operator", 2, vec![fwd(2)]), // chain = false
        ];
        nodes[8].chain = false;
        assert_eq!(
            plan(&nodes),
            [None, Some(0), Some(1), None, None, None, None, None, None]
        );
    }
}
