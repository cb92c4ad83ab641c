//! A subtask's outputs: routes each batch over its out-edges by their partitioning, and hands
//! it to the operators chained behind the subtask.
//!
//! Invariant: within one channel, messages keep their order, and control messages (barriers,
//! watermarks, end) go to every downstream channel and chained operator after every batch sent
//! before them, so a barrier never overtakes data. An output never calls into a chained
//! operator itself: it leaves the message in its outbox, and the chain's head drains them all
//! in a loop (so a chain's length costs no stack).

use super::chain::Chain;
use super::{Message, Port, RunError};
use crate::config::Partition;
use crate::metrics::NodeMetrics;
use crossbeam_channel::{Sender, TrySendError};
use std::sync::Arc;
use std::time::Instant;
use weir_core::batch::{Batch, BatchBuilder};

/// The downstream went away (it failed or the job is cancelled).
#[derive(Debug)]
pub struct Closed;

/// One out-edge of a subtask: the channels to the downstream subtasks it may feed.
pub struct OutEdge {
    pub partition: Partition,
    /// Which of the subtask's outputs this edge carries.
    pub port: Port,
    /// For `forward`, exactly one channel; otherwise one per downstream subtask, in order.
    pub senders: Vec<Sender<Message>>,
}

/// All out-edges of one subtask.
pub struct Output {
    edges: Vec<OutEdge>,
    /// The chained operators this output feeds: (which output, index in the subtask's chain).
    feeds: Vec<(Port, usize)>,
    /// Messages for those operators, waiting for the chain to take them.
    outbox: Vec<(usize, Message)>,
    /// At the head of a chain (the subtask's own node): every operator chained into the
    /// subtask, handed the outboxes after each send.
    chain: Option<Chain>,
    next: usize,
    /// Key groups of the job: `hash` edges send a key to the subtask holding its group.
    max_parallelism: u32,
    /// Where time spent waiting on a full channel is counted: (the node's metrics, subtask).
    stats: Option<(Arc<NodeMetrics>, u32)>,
}

/// Send `msg` on `s`, counting the time a full channel makes the sender wait.
fn send(
    stats: &Option<(Arc<NodeMetrics>, u32)>,
    s: &Sender<Message>,
    msg: Message,
) -> Result<(), Closed> {
    match s.try_send(msg) {
        Ok(()) => Ok(()),
        Err(TrySendError::Disconnected(_)) => Err(Closed),
        Err(TrySendError::Full(msg)) => {
            let waited = Instant::now();
            let sent = s.send(msg).map_err(|_| Closed);
            if let Some((metrics, subtask)) = stats {
                metrics.subtask(*subtask).add_backpressure(waited.elapsed());
            }
            sent
        }
    }
}

impl Output {
    pub fn new(edges: Vec<OutEdge>, max_parallelism: u32) -> Self {
        Output {
            edges,
            feeds: Vec::new(),
            outbox: Vec::new(),
            chain: None,
            next: 0,
            max_parallelism,
            stats: None,
        }
    }

    /// Count the time this subtask waits on full channels in `metrics`.
    pub fn measure(&mut self, metrics: Arc<NodeMetrics>, subtask: u32) {
        self.stats = Some((metrics, subtask));
    }

    /// Feed this output's `port` to operator `index` of the subtask's chain.
    pub fn feed(&mut self, port: Port, index: usize) {
        self.feeds.push((port, index));
    }

    /// Make this the output of the chain's head: it runs `chain` after every send.
    pub fn lead(&mut self, mut chain: Chain) -> Result<(), RunError> {
        // What the chained operators announced as they started goes on now, not with the
        // head's first message.
        chain.drain(std::mem::take(&mut self.outbox))?;
        self.chain = Some(chain);
        Ok(())
    }

    /// The messages left for chained operators since the last call.
    pub fn take_outbox(&mut self) -> Vec<(usize, Message)> {
        std::mem::take(&mut self.outbox)
    }

    /// At a chain's head: hand what this output sent to the chain, and run it dry.
    fn flush(&mut self) -> Result<(), RunError> {
        match &mut self.chain {
            Some(chain) if !self.outbox.is_empty() => chain.drain(std::mem::take(&mut self.outbox)),
            _ => Ok(()),
        }
    }

    /// Whether any edge or chained operator takes the output `port`.
    pub fn has_port(&self, port: Port) -> bool {
        self.edges.iter().any(|e| e.port == port) || self.feeds.iter().any(|(p, _)| *p == port)
    }

    /// Housekeeping of the chained operators (their timers and clocks), at the chain's head.
    pub fn housekeeping(&mut self) -> Result<(), RunError> {
        match &mut self.chain {
            Some(chain) => chain.housekeeping(),
            None => Ok(()),
        }
    }

    /// When a chained operator next has something to do by itself (at the chain's head).
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.chain.as_ref().and_then(Chain::deadline)
    }

    /// Route a batch of the main output. Empty batches are dropped.
    pub fn send_batch(&mut self, batch: Batch) -> Result<(), RunError> {
        self.send_port(Port::Main, batch)
    }

    /// Route a batch of the output `port`. Empty batches are dropped.
    pub fn send_port(&mut self, port: Port, batch: Batch) -> Result<(), RunError> {
        if batch.is_empty() {
            return Ok(());
        }
        let edges: Vec<usize> = (0..self.edges.len())
            .filter(|&i| self.edges[i].port == port)
            .collect();
        let chained: Vec<usize> = self
            .feeds
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|&(_, i)| i)
            .collect();
        let takers = edges.len() + chained.len();
        // Every taker but the last gets a copy.
        let mut batch = Some(batch);
        let mut take = |n: &mut usize| {
            *n += 1;
            if *n == takers {
                batch.take().expect("taken once")
            } else {
                batch.as_ref().expect("still here").clone()
            }
        };
        let mut taken = 0;
        for i in edges {
            let b = take(&mut taken);
            self.route(i, b).map_err(RunError::from)?;
        }
        for i in chained {
            let b = take(&mut taken);
            self.outbox.push((i, Message::Batch(b)));
        }
        self.flush()
    }

    fn route(&mut self, edge: usize, batch: Batch) -> Result<(), Closed> {
        let e = &self.edges[edge];
        let n = e.senders.len();
        match e.partition {
            _ if n == 1 => send(&self.stats, &e.senders[0], Message::Batch(batch)),
            Partition::Forward => unreachable!("forward edges have one channel"),
            Partition::Rebalance => {
                self.next = (self.next + 1) % n;
                send(&self.stats, &e.senders[self.next], Message::Batch(batch))
            }
            Partition::Broadcast => {
                for s in &e.senders {
                    send(&self.stats, s, Message::Batch(batch.clone()))?;
                }
                Ok(())
            }
            Partition::Hash => {
                // Records are copied into one buffer per subtask as they are: no decode of
                // values, no allocation per record.
                let per = batch.body_len() / n + 16;
                let mut parts: Vec<BatchBuilder> =
                    (0..n).map(|_| BatchBuilder::with_capacity(per)).collect();
                let max = self.max_parallelism;
                for r in &batch {
                    let group = weir_core::groups::group_of(r.routing_key(), max);
                    parts[weir_core::groups::subtask_of(group, max, n as u32) as usize]
                        .push_ref(&r);
                }
                for (s, part) in e.senders.iter().zip(parts) {
                    if !part.is_empty() {
                        send(&self.stats, s, Message::Batch(part.finish()))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Send a control message (barrier, watermark, end) down every channel and to every
    /// chained operator.
    pub fn broadcast(&mut self, msg: &Message) -> Result<(), RunError> {
        for e in &self.edges {
            for s in &e.senders {
                send(&self.stats, s, msg.clone_control())?;
            }
        }
        for &(_, i) in &self.feeds {
            self.outbox.push((i, msg.clone_control()));
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(keys: &[&str]) -> Batch {
        let mut b = BatchBuilder::new();
        for k in keys {
            b.push(Some(k.as_bytes()), b"v", None, []);
        }
        b.finish()
    }

    #[test]
    fn hash_routes_equal_keys_to_one_channel() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| crossbeam_channel::unbounded()).unzip();
        let mut out = Output::new(
            vec![OutEdge {
                partition: Partition::Hash,
                port: Port::Main,
                senders: txs,
            }],
            128,
        );
        let keys = ["a", "b", "c", "a", "d", "b", "a"];
        out.send_batch(batch(&keys)).unwrap();
        out.send_batch(batch(&keys)).unwrap();
        let mut home = std::collections::HashMap::new();
        let mut total = 0;
        for (i, rx) in rxs.iter().enumerate() {
            while let Ok(Message::Batch(b)) = rx.try_recv() {
                for r in &b {
                    total += 1;
                    let group = weir_core::groups::group_of(r.key.unwrap(), 128);
                    assert!(
                        weir_core::groups::range(i as u32, 3, 128).contains(&group),
                        "a key reached a subtask that does not hold its key group"
                    );
                    let prev = home.insert(r.key.unwrap().to_vec(), i);
                    assert!(
                        prev.is_none() || prev == Some(i),
                        "a key reached two subtasks"
                    );
                }
            }
        }
        assert_eq!(total, keys.len() * 2);
    }
}
