//! The loops of source, operator and sink subtasks.
//!
//! Invariants: a source snapshots only between two polls, so its state and the records it sent
//! before the barrier agree; a sink prepares before it snapshots, and commits a checkpoint only
//! when the coordinator says it is complete; a subtask whose peers went away stops quietly and
//! leaves the job's error to the subtask that failed first. Event time: a subtask's watermark
//! goes out after every record sent before it, its time is in every checkpoint beside its state,
//! and after a restore it announces the watermark it had, never a lower one.

use super::input::{Inputs, Step};
use super::node::{OperatorNode, SinkNode, SourceNode};
use super::output::{Closed, Output};
use super::{Barrier, Message, Port, RunError};
use crate::metrics::NodeMetrics;
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use weir_core::batch::{self, Batch};
use weir_core::node::Polled;
use weir_core::time::SubtaskTime;
use weir_core::time::timers::wall_clock_ms;
use weir_core::time::watermarks::{Emit, Generator, Strategy};

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
        /// The subtask's event time, when it has any.
        time: Option<Vec<u8>>,
        /// The subtask's part of its node's keyed state (operators).
        keyed: Option<crate::keyed::KeyedManifest>,
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
#[derive(Clone)]
pub struct SubtaskCtx {
    pub node: usize,
    pub uid: String,
    pub subtask: u32,
    pub events: UnboundedSender<Event>,
    pub metrics: Arc<NodeMetrics>,
    pub cancel: Arc<AtomicBool>,
    /// State to restore, from the checkpoint the job resumes from.
    pub restore: Option<Vec<u8>>,
    /// Event time to resume from, from the same checkpoint.
    pub restore_time: Option<SubtaskTime>,
    /// The node's watermark strategy, if its output carries event time.
    pub watermarks: Option<Strategy>,
    /// The checkpoint the job resumes from, and the later ones that never completed.
    pub restored_checkpoint: Option<u64>,
    pub abort_after_restore: Vec<u64>,
}

impl SubtaskCtx {
    fn ack(
        &self,
        checkpoint: u64,
        state: Vec<u8>,
        time: SubtaskTime,
        keyed: Option<crate::keyed::KeyedManifest>,
    ) {
        let time = (time.input > i64::MIN || time.generator.is_some()).then(|| time.encode());
        let _ = self.events.send(Event::Ack {
            checkpoint,
            node: self.node,
            subtask: self.subtask,
            state,
            time,
            keyed,
        });
    }

    /// The subtask's output clock, resumed from the checkpoint.
    fn clock(&self) -> Generator {
        let mut clock = Generator::new(&self.uid, self.watermarks.clone());
        if let Some(g) = self.restore_time.and_then(|t| t.generator) {
            clock.restore(g);
        }
        clock
    }

    /// This subtask's counters.
    pub fn stats(&self) -> &crate::metrics::SubtaskMetrics {
        self.metrics.subtask(self.subtask)
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
    let mut clock = ctx.clock();
    announce(&clock, &mut out)?;
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
                let time = SubtaskTime {
                    input: i64::MIN,
                    generator: clock.checkpoint(),
                };
                ctx.ack(b.id, state, time, None);
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
        let polled = busy(ctx, || node.poll(batch_size));
        ctx.stats().set_memory(node.memory_bytes());
        let polled = polled?;
        let dead = node.take_dead_letters();
        if !dead.is_empty() {
            out.send_port(Port::DeadLetter, batch::from_records(&dead))?;
        }
        match polled {
            Polled::Batch(b) => {
                let b = clock.observe(b).map_err(RunError::Time)?;
                ctx.stats().add_out(b.len());
                out.send_batch(b)?;
            }
            Polled::Idle => std::thread::sleep(Duration::from_millis(2)),
            Polled::End => {
                // Downstream takes the end as a watermark of +∞.
                out.broadcast(&Message::End)?;
                let _ = ctx.events.send(Event::SourceEnded);
                ended = true;
                continue;
            }
        }
        if let Some(w) = node.take_watermark().and_then(|ts| clock.offer(ts)) {
            out.broadcast(&Message::Watermark(w))?;
        }
        ctx.stats().set_watermark(clock.state().emitted);
        tick(&mut clock, &mut out)?;
        out.housekeeping()?;
    }
}

/// After a restore: tell downstream the watermark this subtask had sent, so it does not wait
/// for new records to learn it again.
fn announce(clock: &Generator, out: &mut Output) -> Result<(), RunError> {
    let sent = clock.state().emitted;
    if sent > i64::MIN {
        out.broadcast(&Message::Watermark(sent))?;
    }
    Ok(())
}

/// Send what the clock has for now: a watermark, or that the subtask went idle. A node without
/// a strategy has nothing periodic to send (and reads no clock per batch).
fn tick(clock: &mut Generator, out: &mut Output) -> Result<(), RunError> {
    if !clock.assigns() {
        return Ok(());
    }
    match clock.poll(Instant::now()) {
        Some(Emit::Watermark(w)) => out.broadcast(&Message::Watermark(w))?,
        Some(Emit::Idle) => out.broadcast(&Message::Idle)?,
        None => {}
    }
    Ok(())
}

/// Run `call`, the node's own code, counting its time as the subtask's busy time (not what
/// the subtask does around it: routing, waiting on full channels, chained operators).
fn busy<T>(ctx: &SubtaskCtx, call: impl FnOnce() -> T) -> T {
    let began = Instant::now();
    let done = call();
    ctx.stats().add_busy(began.elapsed());
    done
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An operator's output of one call: event time assigned (if the node has a strategy),
/// counted, routed; then its late records and dead letters, between the same barriers.
fn emit(
    ctx: &SubtaskCtx,
    node: &mut dyn OperatorNode,
    clock: &mut Generator,
    out: &mut Output,
    produced: Batch,
) -> Result<(), RunError> {
    // The call's memory is known before its output leaves: whoever sees the output downstream
    // sees the memory it took too.
    ctx.stats().set_memory(node.memory_bytes());
    let produced = clock.observe(produced).map_err(RunError::Time)?;
    ctx.stats().add_out(produced.len());
    out.send_batch(produced)?;
    let late = node.take_late();
    if !late.is_empty() {
        ctx.metrics.add_late(late.len(), !out.has_port(Port::Late));
        out.send_port(Port::Late, batch::from_records(&late))?;
    }
    // Poison records isolated from this batch.
    let dead = node.take_dead_letters();
    if !dead.is_empty() {
        out.send_port(Port::DeadLetter, batch::from_records(&dead))?;
    }
    ctx.metrics.add_isolated(node.take_isolated());
    Ok(())
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

/// One operator subtask's work, fed one [`Step`] at a time: by [`run_operator`] from its own
/// input channels, or, chained, by the subtask upstream of it (its [`Output`] hands it every
/// batch and control message in order, see [`super::chain`]).
pub struct OperatorTask {
    ctx: SubtaskCtx,
    node: Box<dyn OperatorNode>,
    out: Output,
    keyed: crate::keyed::SharedKeyed,
    clock: Generator,
    /// Without a strategy of its own, the input's watermarks and idleness pass through.
    passes_time: bool,
}

/// What a step leaves the operator to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// It forwarded the job's last barrier: nothing follows.
    Done,
}

impl OperatorTask {
    /// Restore the node's state and announce the watermark it had; `input` is the input's
    /// watermark restored from the checkpoint.
    pub fn start(
        ctx: SubtaskCtx,
        mut node: Box<dyn OperatorNode>,
        out: Output,
        keyed: crate::keyed::SharedKeyed,
        input: i64,
    ) -> Result<Self, RunError> {
        if let Some(state) = &ctx.restore {
            node.restore(state)?;
        }
        let clock = ctx.clock();
        let passes_time = !clock.assigns();
        let mut me = OperatorTask {
            ctx,
            node,
            out,
            keyed,
            clock,
            passes_time,
        };
        if me.passes_time && input > i64::MIN {
            me.out.broadcast(&Message::Watermark(input))?;
        }
        announce(&me.clock, &mut me.out)?;
        Ok(me)
    }

    /// Act on one step; `watermark` is the input's watermark after it.
    pub fn step(&mut self, step: Step, watermark: i64) -> Result<Flow, RunError> {
        let flow = self.step_inner(step, watermark);
        let stats = self.ctx.stats();
        stats.set_watermark(watermark);
        stats.set_memory(self.node.memory_bytes());
        flow
    }

    fn step_inner(&mut self, step: Step, watermark: i64) -> Result<Flow, RunError> {
        let ctx = &self.ctx;
        let node = self.node.as_mut();
        match step {
            Step::Batch(b) => {
                ctx.stats().add_in(b.len());
                let produced = busy(ctx, || node.process(b))?;
                emit(ctx, node, &mut self.clock, &mut self.out, produced)?;
            }
            Step::Watermark(t) => {
                let produced = busy(ctx, || node.on_watermark(t))?;
                emit(ctx, node, &mut self.clock, &mut self.out, produced)?;
                // +∞ goes on as the end, after what `finish` emits (else that would be late).
                if self.passes_time && t < weir_core::time::END_OF_TIME {
                    self.out.broadcast(&Message::Watermark(t))?;
                }
            }
            Step::Idle => {
                if self.passes_time {
                    self.out.broadcast(&Message::Idle)?;
                }
            }
            Step::Tick => {}
            Step::End => {
                let produced = busy(ctx, || node.finish())?;
                emit(ctx, node, &mut self.clock, &mut self.out, produced)?;
                self.out.broadcast(&Message::End)?;
            }
            Step::Barrier(b) => {
                let state = busy(ctx, || node.snapshot())?;
                let time = SubtaskTime {
                    input: watermark,
                    generator: self.clock.checkpoint(),
                };
                // This subtask writes its keyed state's pieces itself; the ack names them.
                let manifest = self
                    .keyed
                    .lock()
                    .map_err(|_| RunError::Internal("keyed state lock poisoned".into()))?
                    .snapshot(b.id)
                    .map_err(RunError::Keyed)?;
                ctx.ack(b.id, state, time, Some(manifest));
                self.out.broadcast(&Message::Barrier(b))?;
                if b.last {
                    return Ok(Flow::Done);
                }
            }
            Step::Closed | Step::ControlClosed | Step::Control(_) => return Err(ctx.cancelled()),
        }
        Ok(Flow::Continue)
    }

    /// Between steps: the processing-time timers due fire, the clock sends what it has; the
    /// same for every operator chained behind this one.
    pub fn housekeeping(&mut self) -> Result<(), RunError> {
        if self
            .node
            .next_processing_timer()
            .is_some_and(|due| due <= wall_clock_ms())
        {
            let node = self.node.as_mut();
            let produced = busy(&self.ctx, || node.on_processing_time(wall_clock_ms()))?;
            emit(
                &self.ctx,
                self.node.as_mut(),
                &mut self.clock,
                &mut self.out,
                produced,
            )?;
        }
        tick(&mut self.clock, &mut self.out)?;
        self.out.housekeeping()
    }

    /// The messages this operator's output left for operators chained behind it.
    pub fn take_outbox(&mut self) -> Vec<(usize, Message)> {
        self.out.take_outbox()
    }

    /// When this operator, or one chained behind it, next has something to do by itself.
    pub fn deadline(&self) -> Option<Instant> {
        let timer = self.node.next_processing_timer().map(|due| {
            Instant::now()
                + Duration::from_millis(due.saturating_sub(wall_clock_ms()).max(0) as u64)
        });
        earliest(earliest(self.clock.deadline(), timer), self.out.deadline())
    }
}

pub fn run_operator(
    ctx: SubtaskCtx,
    node: Box<dyn OperatorNode>,
    mut inputs: Inputs,
    out: Output,
    keyed: crate::keyed::SharedKeyed,
) -> Result<(), RunError> {
    if let Some(t) = ctx.restore_time {
        inputs.restore_watermark(t.input);
    }
    let mut task = OperatorTask::start(ctx, node, out, keyed, inputs.watermark())?;
    loop {
        let step = inputs.next(None, task.deadline());
        task.ctx.stats().set_queued(inputs.queued());
        if task.step(step, inputs.watermark())? == Flow::Done {
            return Ok(());
        }
        task.housekeeping()?;
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
    if let Some(t) = ctx.restore_time {
        inputs.restore_watermark(t.input);
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
            inputs.next(Some(&control), None)
        };
        let stats = ctx.stats();
        stats.set_queued(inputs.queued());
        stats.set_watermark(inputs.watermark());
        match step {
            Step::Batch(b) => {
                stats.add_in(b.len());
                let written = busy(ctx, || node.write(b));
                stats.set_memory(node.memory_bytes());
                written?;
            }
            Step::Watermark(_) | Step::Idle | Step::Tick => {}
            Step::End => node.finish()?,
            Step::Barrier(b) => {
                node.prepare(b.id)?;
                let state = node.snapshot()?;
                let time = SubtaskTime {
                    input: inputs.watermark(),
                    generator: None,
                };
                ctx.ack(b.id, state, time, None);
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
