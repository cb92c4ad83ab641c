//! A subtask's inputs: receives from every upstream channel, aligns barriers and merges
//! watermarks, idleness and end-of-input.
//!
//! Invariant (exactly-once): once an input delivered barrier n, nothing more is read from it until
//! barrier n arrived on every open input, so the snapshot at n reflects exactly the records before
//! n on every input. At-least-once mode keeps reading (no blocking); a closed input counts as
//! having delivered every barrier.
//!
//! Invariant (event time): the subtask's watermark is the minimum over its active inputs (open,
//! not idle; an ended input counts as +∞), and it never goes back, also not when an idle input
//! returns behind it or after a restore.

use super::Message;
use super::subtask::Control;
use crossbeam_channel::{Receiver, RecvError, RecvTimeoutError, Select};
use std::collections::BTreeMap;
use std::time::Instant;
use weir_core::batch::Batch;

/// What the subtask should act on next.
pub enum Step {
    Batch(Batch),
    /// Barrier complete on every input: snapshot, then forward it.
    Barrier(super::Barrier),
    /// The minimum watermark over the active inputs advanced to this.
    Watermark(i64),
    /// Every input that has not ended is idle: the subtask is idle too.
    Idle,
    /// The deadline passed with nothing to act on.
    Tick,
    /// Every input reached its end of data.
    End,
    /// A message on the control channel.
    Control(Control),
    /// The control channel closed: the job is being cancelled.
    ControlClosed,
    /// Every input channel closed.
    Closed,
}

pub struct Inputs {
    rx: Vec<Receiver<Message>>,
    open: Vec<bool>,
    blocked: Vec<bool>,
    ended: Vec<bool>,
    watermarks: Vec<i64>,
    idle: Vec<bool>,
    current_watermark: i64,
    /// `Step::Idle` was returned and no input became active since.
    idle_sent: bool,
    end_sent: bool,
    /// An input ended and its +∞ watermark was returned first: look for the end next.
    end_pending: bool,
    /// Every input went idle and the watermark they had was returned first: `Idle` next.
    idle_pending: bool,
    /// Block inputs at barriers (exactly-once) or not (at-least-once).
    align: bool,
    /// Barriers seen on some inputs but not all: id → (barrier, arrived per input).
    barriers: BTreeMap<u64, (super::Barrier, Vec<bool>)>,
}

impl Inputs {
    pub fn new(rx: Vec<Receiver<Message>>, align: bool) -> Self {
        let n = rx.len();
        Inputs {
            rx,
            open: vec![true; n],
            blocked: vec![false; n],
            ended: vec![false; n],
            watermarks: vec![i64::MIN; n],
            idle: vec![false; n],
            current_watermark: i64::MIN,
            idle_sent: false,
            end_sent: false,
            end_pending: false,
            idle_pending: false,
            align,
            barriers: BTreeMap::new(),
        }
    }

    /// The subtask's watermark (`i64::MIN` before the first).
    pub fn watermark(&self) -> i64 {
        self.current_watermark
    }

    /// Resume at the watermark a checkpoint holds: nothing below it is returned again.
    pub fn restore_watermark(&mut self, watermark: i64) {
        self.current_watermark = self.current_watermark.max(watermark);
    }

    /// Messages waiting in the input channels.
    pub fn queued(&self) -> usize {
        self.rx.iter().map(Receiver::len).sum()
    }

    /// Block until there is something to act on, or until `deadline` ([`Step::Tick`]).
    pub fn next(&mut self, control: Option<&Receiver<Control>>, deadline: Option<Instant>) -> Step {
        loop {
            if std::mem::take(&mut self.end_pending)
                && let Some(step) = self.check_end()
            {
                return step;
            }
            if std::mem::take(&mut self.idle_pending) && !self.idle_sent {
                self.idle_sent = true;
                return Step::Idle;
            }
            let candidates: Vec<usize> = (0..self.rx.len())
                .filter(|&i| self.open[i] && !self.blocked[i])
                .collect();
            if candidates.is_empty() {
                return Step::Closed;
            }
            let (index, received) = if candidates.len() == 1 && control.is_none() {
                let i = candidates[0];
                match deadline {
                    None => (i, self.rx[i].recv()),
                    Some(d) => match self.rx[i].recv_deadline(d) {
                        Ok(m) => (i, Ok(m)),
                        Err(RecvTimeoutError::Timeout) => return Step::Tick,
                        Err(RecvTimeoutError::Disconnected) => (i, Err(RecvError)),
                    },
                }
            } else {
                let mut sel = Select::new();
                for &i in &candidates {
                    sel.recv(&self.rx[i]);
                }
                if let Some(c) = control {
                    sel.recv(c);
                }
                let op = match deadline {
                    None => sel.select(),
                    Some(d) => match sel.select_deadline(d) {
                        Ok(op) => op,
                        Err(_) => return Step::Tick,
                    },
                };
                let k = op.index();
                if k == candidates.len() {
                    let c = control.expect("the extra operation is the control channel");
                    return match op.recv(c) {
                        Ok(ctl) => Step::Control(ctl),
                        Err(_) => Step::ControlClosed,
                    };
                }
                let i = candidates[k];
                (i, op.recv(&self.rx[i]))
            };
            match received {
                Err(_) => {
                    self.open[index] = false;
                    if let Some(b) = self.complete_barrier() {
                        self.end_pending = true;
                        return Step::Barrier(b);
                    }
                    if let Some(step) = self.advance() {
                        self.end_pending = true;
                        return step;
                    }
                    if let Some(step) = self.check_end() {
                        return step;
                    }
                }
                Ok(Message::Batch(b)) => {
                    self.wake(index);
                    return Step::Batch(b);
                }
                Ok(Message::Watermark(t)) => {
                    self.wake(index);
                    self.watermarks[index] = self.watermarks[index].max(t);
                    if let Some(step) = self.advance() {
                        return step;
                    }
                }
                Ok(Message::Idle) => {
                    self.idle[index] = true;
                    if let Some(step) = self.advance() {
                        return step;
                    }
                }
                Ok(Message::End) => {
                    // An ended input holds nothing back: its watermark is +∞.
                    self.ended[index] = true;
                    self.watermarks[index] = weir_core::time::END_OF_TIME;
                    if let Some(step) = self.advance() {
                        self.end_pending = true;
                        return step;
                    }
                    if let Some(step) = self.check_end() {
                        return step;
                    }
                }
                Ok(Message::Barrier(b)) => {
                    let n = self.rx.len();
                    self.barriers
                        .entry(b.id)
                        .or_insert_with(|| (b, vec![false; n]))
                        .1[index] = true;
                    if self.align {
                        self.blocked[index] = true;
                    }
                    if let Some(b) = self.complete_barrier() {
                        return Step::Barrier(b);
                    }
                }
            }
        }
    }

    /// Input `i` delivered data or time: it is active again.
    fn wake(&mut self, i: usize) {
        if self.idle[i] {
            self.idle[i] = false;
            self.idle_sent = false;
        }
    }

    /// Recompute the watermark over the active inputs: the step to return when it advanced,
    /// or when every input that has not ended just went idle.
    fn advance(&mut self) -> Option<Step> {
        let active =
            (0..self.rx.len()).filter(|&i| self.open[i] && (self.ended[i] || !self.idle[i]));
        match active.map(|i| self.watermarks[i]).min() {
            None => {
                // Every input that has not ended is idle: as Flink's watermark valve does, the
                // subtask moves on to the newest watermark among them (each promised nothing
                // older follows), then says it is idle. An input that went idle first must not
                // hold back one that went idle later with a newer watermark.
                let idle = (0..self.rx.len()).filter(|&i| self.open[i] && self.idle[i]);
                let newest = idle.map(|i| self.watermarks[i]).max()?;
                if newest > self.current_watermark {
                    self.current_watermark = newest;
                    self.idle_pending = true;
                    return Some(Step::Watermark(newest));
                }
                if !self.idle_sent {
                    self.idle_sent = true;
                    return Some(Step::Idle);
                }
                None
            }
            Some(min) if min > self.current_watermark => {
                self.current_watermark = min;
                Some(Step::Watermark(min))
            }
            Some(_) => None,
        }
    }

    /// The newest barrier that every open input delivered; it subsumes older ones.
    fn complete_barrier(&mut self) -> Option<super::Barrier> {
        let open = &self.open;
        let done = self
            .barriers
            .iter()
            .rev()
            .find(|(_, (_, arrived))| arrived.iter().zip(open).all(|(a, o)| *a || !*o))
            .map(|(id, (b, _))| (*id, *b))?;
        self.barriers.retain(|id, _| *id > done.0);
        // Inputs stay blocked only for barriers still in flight.
        for (i, blocked) in self.blocked.iter_mut().enumerate() {
            *blocked = self.align && self.barriers.values().any(|(_, arrived)| arrived[i]);
        }
        Some(done.1)
    }

    fn check_end(&mut self) -> Option<Step> {
        if self.end_sent {
            return None;
        }
        let all_ended = (0..self.rx.len()).all(|i| self.ended[i] || !self.open[i]);
        if all_ended && self.open.iter().any(|o| *o) {
            self.end_sent = true;
            return Some(Step::End);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Barrier;

    fn batch(v: &str) -> Message {
        let mut b = weir_core::batch::BatchBuilder::new();
        b.push(None, v.as_bytes(), None, []);
        Message::Batch(b.finish())
    }

    fn value(step: Step) -> String {
        match step {
            Step::Batch(b) => b.iter().next().unwrap().value_str().unwrap().to_owned(),
            Step::Barrier(b) => format!("barrier {}", b.id),
            _ => "other".into(),
        }
    }

    #[test]
    fn aligned_inputs_hold_records_after_the_barrier() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded();
        let bar = Barrier { id: 1, last: false };
        a_tx.send(Message::Barrier(bar)).unwrap();
        a_tx.send(batch("a-after")).unwrap();
        b_tx.send(batch("b-before")).unwrap();
        b_tx.send(Message::Barrier(bar)).unwrap();
        let mut inputs = Inputs::new(vec![a_rx, b_rx], true);
        // "a-after" must not be seen before the barrier completes.
        assert_eq!(value(inputs.next(None, None)), "b-before");
        assert_eq!(value(inputs.next(None, None)), "barrier 1");
        assert_eq!(value(inputs.next(None, None)), "a-after");
    }

    #[test]
    fn unaligned_inputs_keep_reading() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded();
        let bar = Barrier { id: 1, last: false };
        a_tx.send(Message::Barrier(bar)).unwrap();
        a_tx.send(batch("a-after")).unwrap();
        drop(a_tx);
        let mut inputs = Inputs::new(vec![a_rx, b_rx], false);
        assert_eq!(value(inputs.next(None, None)), "a-after");
        b_tx.send(Message::Barrier(bar)).unwrap();
        assert_eq!(value(inputs.next(None, None)), "barrier 1");
    }

    #[test]
    fn a_closed_input_counts_as_arrived() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded::<Message>();
        a_tx.send(Message::Barrier(Barrier { id: 7, last: true }))
            .unwrap();
        drop(b_tx);
        let mut inputs = Inputs::new(vec![a_rx, b_rx], true);
        assert_eq!(value(inputs.next(None, None)), "barrier 7");
    }

    fn step(s: Step) -> String {
        match s {
            Step::Watermark(t) => format!("wm {t}"),
            Step::Idle => "idle".into(),
            Step::End => "end".into(),
            Step::Tick => "tick".into(),
            other => value(other),
        }
    }

    #[test]
    fn the_watermark_is_the_minimum_over_active_inputs_and_never_goes_back() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded();
        let mut inputs = Inputs::new(vec![a_rx, b_rx], true);
        a_tx.send(Message::Watermark(10)).unwrap();
        b_tx.send(Message::Watermark(5)).unwrap();
        assert_eq!(step(inputs.next(None, None)), "wm 5");
        b_tx.send(Message::Idle).unwrap();
        assert_eq!(
            step(inputs.next(None, None)),
            "wm 10",
            "an idle input holds nothing back"
        );
        a_tx.send(Message::Idle).unwrap();
        assert_eq!(step(inputs.next(None, None)), "idle");
        // b returns behind the watermark: it does not move back.
        let soon = || Some(Instant::now() + std::time::Duration::from_millis(5));
        b_tx.send(Message::Watermark(7)).unwrap();
        assert_eq!(step(inputs.next(None, soon())), "tick");
        b_tx.send(Message::Watermark(15)).unwrap();
        assert_eq!(step(inputs.next(None, None)), "wm 15", "a is still idle");
        a_tx.send(Message::Watermark(20)).unwrap();
        assert_eq!(
            step(inputs.next(None, soon())),
            "tick",
            "a returns ahead of b"
        );
        a_tx.send(Message::End).unwrap();
        b_tx.send(Message::End).unwrap();
        assert_eq!(
            step(inputs.next(None, None)),
            "wm 9223372036854775807",
            "the end is +inf first"
        );
        assert_eq!(step(inputs.next(None, None)), "end");
    }

    #[test]
    fn when_every_input_is_idle_the_newest_of_their_watermarks_holds() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded();
        let mut inputs = Inputs::new(vec![a_rx, b_rx], true);
        let soon = || Some(Instant::now() + std::time::Duration::from_millis(5));
        // a is done early and goes idle before b has said anything.
        a_tx.send(Message::Watermark(100)).unwrap();
        a_tx.send(Message::Idle).unwrap();
        assert_eq!(step(inputs.next(None, soon())), "tick");
        b_tx.send(Message::Watermark(5)).unwrap();
        assert_eq!(step(inputs.next(None, None)), "wm 5");
        b_tx.send(Message::Idle).unwrap();
        assert_eq!(
            step(inputs.next(None, None)),
            "wm 100",
            "a's watermark is not lost"
        );
        assert_eq!(step(inputs.next(None, None)), "idle");
        assert_eq!(step(inputs.next(None, soon())), "tick");
    }

    #[test]
    fn an_ended_input_counts_as_infinite_and_a_deadline_ticks() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded();
        let mut inputs = Inputs::new(vec![a_rx, b_rx], true);
        inputs.restore_watermark(3);
        a_tx.send(Message::Watermark(2)).unwrap();
        a_tx.send(Message::End).unwrap();
        b_tx.send(Message::Watermark(8)).unwrap();
        assert_eq!(step(inputs.next(None, None)), "wm 8");
        let soon = Instant::now() + std::time::Duration::from_millis(5);
        assert_eq!(step(inputs.next(None, Some(soon))), "tick");
        drop(b_tx);
        assert_eq!(step(inputs.next(None, None)), "wm 9223372036854775807");
    }

    #[test]
    fn end_comes_once_every_input_ended() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded();
        a_tx.send(Message::End).unwrap();
        b_tx.send(batch("late")).unwrap();
        b_tx.send(Message::End).unwrap();
        let mut inputs = Inputs::new(vec![a_rx, b_rx], true);
        assert_eq!(value(inputs.next(None, None)), "late");
        assert!(matches!(inputs.next(None, None), Step::Watermark(i64::MAX)));
        assert!(matches!(inputs.next(None, None), Step::End));
    }
}
