//! Operator chaining (Flink's): an operator whose only input is a `forward` edge from a source
//! or operator of equal parallelism runs inside that upstream subtask, called directly where a
//! channel would have carried its input; `chain = false` on the node keeps it apart.
//!
//! Invariants: a chained operator sees exactly the steps its own input loop would have made of
//! the messages (batches, watermarks only when they advance, idleness, the end as a +∞
//! watermark then the end, barriers), in the same order; it keeps its own state, acks, event
//! time, keyed state and metrics under its own uid, so checkpoints and restores cannot tell a
//! chain from separate subtasks. A chain of any length costs no stack per operator: every
//! operator of a subtask's chain sits in one flat list, and what one hands the next waits in a
//! queue the subtask drains in a loop (never a call from one operator into the next).

use super::Message;
use super::input::Step;
use super::output::Output;
use super::subtask::{Flow, OperatorTask};
use super::{JobNode, NodeFactory, Port, RunError};
use crate::config::Partition;
use std::collections::{HashMap, VecDeque};

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

/// One operator to run chained into a subtask, not yet started: built on the subtask's thread.
pub struct Member {
    /// Its node (chains are assembled in node order, which is topological).
    pub node: usize,
    /// The node it is chained behind.
    pub upstream: usize,
    /// Which of the upstream's outputs feeds it.
    pub port: Port,
    /// Its own output (channels to nodes outside the chain).
    pub out: Output,
    /// Restores and starts it on its output (with the chained operators behind it wired in).
    pub start: Box<dyn FnOnce(Output) -> Result<Chained, RunError> + Send>,
}

/// Every operator chained into one subtask, and the messages on their way between them.
pub struct Chain {
    tasks: Vec<Chained>,
    queue: VecDeque<(usize, Message)>,
}

impl Chain {
    /// Wire `members` behind `head` (the subtask's own output; its node is `head_node`) and
    /// start them in node order. Returns the chain; the head output hands it its messages.
    pub fn assemble(
        head: &mut Output,
        head_node: usize,
        mut members: Vec<Member>,
    ) -> Result<Chain, RunError> {
        members.sort_by_key(|m| m.node);
        let at: HashMap<usize, usize> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.node, i))
            .collect();
        for i in 0..members.len() {
            let (upstream, port) = (members[i].upstream, members[i].port);
            match at.get(&upstream) {
                Some(&u) => members[u].out.feed(port, i),
                None if upstream == head_node => head.feed(port, i),
                None => {
                    return Err(RunError::Internal(format!(
                        "chained node {} hangs off node {upstream}, which is not in its chain",
                        members[i].node
                    )));
                }
            }
        }
        let mut tasks = Vec::with_capacity(members.len());
        for m in members {
            tasks.push((m.start)(m.out)?);
        }
        let mut chain = Chain {
            tasks,
            queue: VecDeque::new(),
        };
        // What the operators announced as they started (their restored watermarks).
        for i in 0..chain.tasks.len() {
            let sent = chain.tasks[i].task.take_outbox();
            chain.queue.extend(sent);
        }
        Ok(chain)
    }

    /// Hand on `sent` (messages for operators of this chain), and everything they send each
    /// other in turn, until nothing is left: breadth first, each operator's messages in order.
    pub fn drain(&mut self, sent: Vec<(usize, Message)>) -> Result<(), RunError> {
        self.queue.extend(sent);
        while let Some((i, msg)) = self.queue.pop_front() {
            let c = &mut self.tasks[i];
            c.deliver(msg)?;
            let sent = c.task.take_outbox();
            self.queue.extend(sent);
        }
        Ok(())
    }

    /// Every chained operator's housekeeping (timers, clocks), and what it sends.
    pub fn housekeeping(&mut self) -> Result<(), RunError> {
        for i in 0..self.tasks.len() {
            if self.tasks[i].done {
                continue;
            }
            self.tasks[i].task.housekeeping()?;
            let sent = self.tasks[i].task.take_outbox();
            self.drain(sent)?;
        }
        Ok(())
    }

    /// When a chained operator next has something to do by itself.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.tasks.iter().filter_map(|c| c.task.deadline()).min()
    }
}

/// A chained operator behind one edge of its upstream's output: the upstream's messages turned
/// into the steps of a one-input subtask.
pub struct Chained {
    task: OperatorTask,
    watermark: i64,
    idle: bool,
    ended: bool,
    done: bool,
}

impl Chained {
    /// `watermark`: the input watermark restored from the checkpoint.
    pub fn new(task: OperatorTask, watermark: i64) -> Self {
        Chained {
            task,
            watermark,
            idle: false,
            ended: false,
            done: false,
        }
    }

    /// Hand the operator one message from upstream.
    pub fn deliver(&mut self, msg: Message) -> Result<(), RunError> {
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
                self.advance(weir_core::time::END_OF_TIME)?;
                self.step(Step::End)
            }
            Message::Barrier(b) => self.step(Step::Barrier(b)),
        }
    }

    fn advance(&mut self, t: i64) -> Result<(), RunError> {
        if t <= self.watermark {
            return Ok(());
        }
        self.watermark = t;
        self.step(Step::Watermark(t))
    }

    fn step(&mut self, step: Step) -> Result<(), RunError> {
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
