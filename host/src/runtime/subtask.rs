//! The loops of source, operator and sink subtasks.
//!
//! Invariants: a source snapshots only between two polls, so its state and the records it sent
//! before the barrier agree; a sink prepares before it snapshots, and commits a checkpoint only
//! when the coordinator says it is complete; a subtask whose peers went away stops quietly and
//! leaves the job's error to the subtask that failed first.

use super::input::{Inputs, Step};
use super::node::{OperatorNode, SinkNode, SourceNode};
use super::output::{Closed, Output};
use super::{Barrier, Message, Port, RunError};
use crate::metrics::NodeMetrics;
use crate::plugin::Polled;
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// From the coordinator to a source or sink subtask.
#[derive(Debug)]
pub enum Control {
    /// (sources) Snapshot now and emit this barrier.
    Trigger(Barrier),
    /// Checkpoint complete: sinks commit everything prepared up to it; sources are told.
    Commit(u64),
}

/// From a subtask to the coordinator.
pub enum Event {
    Ack {
        checkpoint: u64,
        node: usize,
        subtask: u32,
        state: Vec<u8>,
    },
    SourceEnded,
    Committed {
        checkpoint: u64,
    },
    Exited {
        node: usize,
        subtask: u32,
        result: Result<(), RunError>,
    },
}

/// What every subtask loop knows about itself.
pub struct SubtaskCtx {
    pub node: usize,
    pub subtask: u32,
    pub events: UnboundedSender<Event>,
    pub metrics: Arc<NodeMetrics>,
    pub cancel: Arc<AtomicBool>,
    /// State to restore, from the checkpoint the job resumes from.
    pub restore: Option<Vec<u8>>,
    /// The checkpoint the job resumes from, and the later ones that never completed.
    pub restored_checkpoint: Option<u64>,
    pub abort_after_restore: Vec<u64>,
}

impl SubtaskCtx {
    fn ack(&self, checkpoint: u64, state: Vec<u8>) {
        let _ = self.events.send(Event::Ack {
            checkpoint,
            node: self.node,
            subtask: self.subtask,
            state,
        });
    }

    fn cancelled(&self) -> RunError {
        RunError::Cancelled
    }
}

impl From<Closed> for RunError {
    fn from(_: Closed) -> Self {
        RunError::Cancelled
    }
}

pub fn run_source(
    ctx: &SubtaskCtx,
    node: &mut dyn SourceNode,
    mut out: Output,
    control: Receiver<Control>,
    batch_size: u32,
) -> Result<(), RunError> {
    if let Some(state) = &ctx.restore {
        node.restore(state)?;
    }
    let mut ended = false;
    loop {
        if ctx.cancel.load(Ordering::Relaxed) {
            return Err(ctx.cancelled());
        }
        let ctl = if ended {
            match control.recv() {
                Ok(c) => Some(c),
                Err(_) => return Ok(()),
            }
        } else {
            match control.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return Err(ctx.cancelled()),
            }
        };
        match ctl {
            Some(Control::Trigger(b)) => {
                let state = node.snapshot(b.id)?;
                ctx.ack(b.id, state);
                out.broadcast(&Message::Barrier(b))?;
                if b.last {
                    return await_last_commit(ctx, node, &control, b.id);
                }
                continue;
            }
            Some(Control::Commit(id)) => {
                node.checkpoint_complete(id)?;
                continue;
            }
            None => {}
        }
        let polled = node.poll(batch_size)?;
        let dead = node.take_dead_letters();
        if !dead.is_empty() {
            out.send_port(Port::DeadLetter, dead)?;
        }
        match polled {
            Polled::Batch(b) => {
                ctx.metrics.add_out(b.len());
                out.send_batch(b)?;
            }
            Polled::Idle => std::thread::sleep(Duration::from_millis(2)),
            Polled::End => {
                out.broadcast(&Message::End)?;
                let _ = ctx.events.send(Event::SourceEnded);
                ended = true;
            }
        }
    }
}

/// After the last barrier: tell the source when that checkpoint completes (e.g. so it commits
/// its final offsets), then end. Ends quietly if the job is cancelled first.
fn await_last_commit(
    ctx: &SubtaskCtx,
    node: &mut dyn SourceNode,
    control: &Receiver<Control>,
    last: u64,
) -> Result<(), RunError> {
    while !ctx.cancel.load(Ordering::Relaxed) {
        match control.recv_timeout(Duration::from_millis(100)) {
            Ok(Control::Commit(id)) => {
                node.checkpoint_complete(id)?;
                if id >= last {
                    return Ok(());
                }
            }
            Ok(Control::Trigger(_)) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
    Ok(())
}

pub fn run_operator(
    ctx: &SubtaskCtx,
    node: &mut dyn OperatorNode,
    mut inputs: Inputs,
    mut out: Output,
) -> Result<(), RunError> {
    if let Some(state) = &ctx.restore {
        node.restore(state)?;
    }
    loop {
        match inputs.next(None) {
            Step::Batch(b) => {
                ctx.metrics.add_in(b.len());
                let produced = node.process(b)?;
                ctx.metrics.add_out(produced.len());
                out.send_batch(produced)?;
                // Poison records isolated from this batch, between the same barriers.
                let dead = node.take_dead_letters();
                if !dead.is_empty() {
                    out.send_port(Port::DeadLetter, dead)?;
                }
                ctx.metrics.add_isolated(node.take_isolated());
            }
            Step::Watermark(t) => {
                let produced = node.on_watermark(t)?;
                ctx.metrics.add_out(produced.len());
                out.send_batch(produced)?;
                out.broadcast(&Message::Watermark(t))?;
            }
            Step::End => out.broadcast(&Message::End)?,
            Step::Barrier(b) => {
                let state = node.snapshot()?;
                ctx.ack(b.id, state);
                out.broadcast(&Message::Barrier(b))?;
                if b.last {
                    return Ok(());
                }
            }
            Step::Closed | Step::ControlClosed | Step::Control(_) => return Err(ctx.cancelled()),
        }
    }
}

pub fn run_sink(
    ctx: &SubtaskCtx,
    node: &mut dyn SinkNode,
    mut inputs: Inputs,
    control: Receiver<Control>,
) -> Result<(), RunError> {
    if let Some(state) = &ctx.restore {
        node.restore(state)?;
    }
    if let Some(id) = ctx.restored_checkpoint {
        // What was prepared for the restored checkpoint may not have been published yet.
        node.commit(id)?;
        for newer in &ctx.abort_after_restore {
            node.abort(*newer)?;
        }
    }
    let mut last: Option<u64> = None;
    loop {
        let step = if last.is_some() {
            match control.recv() {
                Ok(c) => Step::Control(c),
                Err(_) => Step::ControlClosed,
            }
        } else {
            inputs.next(Some(&control))
        };
        match step {
            Step::Batch(b) => {
                ctx.metrics.add_in(b.len());
                node.write(b)?;
            }
            Step::Watermark(_) => {}
            Step::End => node.finish()?,
            Step::Barrier(b) => {
                node.prepare(b.id)?;
                let state = node.snapshot()?;
                ctx.ack(b.id, state);
                if b.last {
                    last = Some(b.id);
                }
            }
            Step::Control(Control::Commit(id)) => {
                node.commit(id)?;
                let _ = ctx.events.send(Event::Committed { checkpoint: id });
                if last.is_some_and(|l| id >= l) {
                    return Ok(());
                }
            }
            Step::Control(Control::Trigger(_)) => {
                return Err(RunError::Internal(
                    "a sink was asked to trigger a checkpoint".into(),
                ));
            }
            Step::Closed | Step::ControlClosed => return Err(ctx.cancelled()),
        }
    }
}
