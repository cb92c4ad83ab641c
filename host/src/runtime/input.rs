//! A subtask's inputs: receives from every upstream channel, aligns barriers and merges
//! watermarks and end-of-input.
//!
//! Invariant (exactly-once): once an input delivered barrier n, nothing more is read from it until
//! barrier n arrived on every open input, so the snapshot at n reflects exactly the records before
//! n on every input. At-least-once mode keeps reading (no blocking); a closed input counts as
//! having delivered every barrier.

use super::Message;
use super::subtask::Control;
use crate::plugin::Record;
use crossbeam_channel::{Receiver, Select};
use std::collections::BTreeMap;

/// What the subtask should act on next.
pub enum Step {
    Batch(Vec<Record>),
    /// Barrier complete on every input: snapshot, then forward it.
    Barrier(super::Barrier),
    /// The minimum watermark over the inputs advanced to this.
    Watermark(i64),
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
    current_watermark: i64,
    end_sent: bool,
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
            current_watermark: i64::MIN,
            end_sent: false,
            align,
            barriers: BTreeMap::new(),
        }
    }

    /// Block until there is something to act on.
    pub fn next(&mut self, control: Option<&Receiver<Control>>) -> Step {
        loop {
            let candidates: Vec<usize> = (0..self.rx.len())
                .filter(|&i| self.open[i] && !self.blocked[i])
                .collect();
            if candidates.is_empty() {
                return Step::Closed;
            }
            let (index, received) = if candidates.len() == 1 && control.is_none() {
                let i = candidates[0];
                (i, self.rx[i].recv())
            } else {
                let mut sel = Select::new();
                for &i in &candidates {
                    sel.recv(&self.rx[i]);
                }
                if let Some(c) = control {
                    sel.recv(c);
                }
                let op = sel.select();
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
                        return Step::Barrier(b);
                    }
                    if let Some(step) = self.check_end() {
                        return step;
                    }
                }
                Ok(Message::Batch(b)) => return Step::Batch(b),
                Ok(Message::Watermark(t)) => {
                    self.watermarks[index] = self.watermarks[index].max(t);
                    let min = (0..self.rx.len())
                        .filter(|&i| self.open[i])
                        .map(|i| self.watermarks[i])
                        .min()
                        .unwrap_or(i64::MIN);
                    if min > self.current_watermark {
                        self.current_watermark = min;
                        return Step::Watermark(min);
                    }
                }
                Ok(Message::End) => {
                    self.ended[index] = true;
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
        Message::Batch(vec![Record {
            key: None,
            value: v.as_bytes().to_vec(),
            timestamp: None,
            headers: Vec::new(),
        }])
    }

    fn value(step: Step) -> String {
        match step {
            Step::Batch(b) => String::from_utf8(b[0].value.clone()).unwrap(),
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
        assert_eq!(value(inputs.next(None)), "b-before");
        assert_eq!(value(inputs.next(None)), "barrier 1");
        assert_eq!(value(inputs.next(None)), "a-after");
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
        assert_eq!(value(inputs.next(None)), "a-after");
        b_tx.send(Message::Barrier(bar)).unwrap();
        assert_eq!(value(inputs.next(None)), "barrier 1");
    }

    #[test]
    fn a_closed_input_counts_as_arrived() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded::<Message>();
        a_tx.send(Message::Barrier(Barrier { id: 7, last: true }))
            .unwrap();
        drop(b_tx);
        let mut inputs = Inputs::new(vec![a_rx, b_rx], true);
        assert_eq!(value(inputs.next(None)), "barrier 7");
    }

    #[test]
    fn end_comes_once_every_input_ended() {
        let (a_tx, a_rx) = crossbeam_channel::unbounded();
        let (b_tx, b_rx) = crossbeam_channel::unbounded();
        a_tx.send(Message::End).unwrap();
        b_tx.send(batch("late")).unwrap();
        b_tx.send(Message::End).unwrap();
        let mut inputs = Inputs::new(vec![a_rx, b_rx], true);
        assert_eq!(value(inputs.next(None)), "late");
        assert!(matches!(inputs.next(None), Step::End));
    }
}
