//! An operator under the host's care: its instance recycled when its memory passes a mark
//! (`recycle_above`), and poison records isolated instead of failing the job (`on_error`).
//!
//! Recycling: runtimes whose heaps only grow (CPython, SpiderMonkey) stay bounded; the instance
//! is replaced (snapshot → fresh instance → restore) between two calls, so nothing is in
//! flight. Isolation: an operator that fails on a batch (error, panic, trap, timeout, out of
//! memory) is not restarted into the same failure forever: with `on_error = "skip"` or
//! `"dead-letter"` the host finds the record(s) that cause it, by replaying the batch in halves
//! on fresh instances restored from the state before the batch, and goes on without them.
//!
//! Invariants: one wrapper does both, so every call and every record a call leaves behind
//! (late records, dead letters) passes through one place and each instance replacement hands
//! over the same things; the output is exactly what the operator produces for the batch without
//! the poison records, in order, and its state afterwards is the state after exactly those
//! records; late records and dead letters travel between the same barriers as the batch, so
//! exactly-once holds for them too. Costs of isolation: a snapshot and a copy of the batch
//! before every batch (cheap for small state), and on a failure about 2·k·log2(batch) extra
//! calls for k poison records.

use super::node::OperatorNode;
use crate::config::OnError;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use weir_core::batch::{self, Batch};
use weir_core::{Call, Cause, Header, NodeError, Record};

/// Starts a fresh instance of the operator (on the subtask's keyed state).
pub type Fresh = Box<dyn Fn() -> Result<Box<dyn OperatorNode>, NodeError> + Send>;

/// What the host does for an operator beyond calling it.
#[derive(Clone, Copy, Debug)]
pub struct Care {
    /// Replace the instance when its memory passes this many bytes.
    pub recycle_above: Option<u64>,
    /// What a failing record does.
    pub on_error: OnError,
}

impl Care {
    /// Whether the operator needs a wrapper at all.
    pub fn any(self) -> bool {
        self.recycle_above.is_some() || self.on_error != OnError::Fail
    }
}

/// An operator node recycled past its memory mark and/or isolating poison records.
pub struct Supervised {
    current: Box<dyn OperatorNode>,
    fresh: Fresh,
    care: Care,
    /// `node[subtask]`, for log lines.
    label: String,
    dead: Vec<Record>,
    /// Records skipped or dead-lettered and not yet counted by the subtask.
    isolated: u64,
}

/// The output, late records and state of a replay, and its poison records with the failure
/// each caused and the time it took.
type Replayed = (
    Batch,
    Vec<Record>,
    Vec<u8>,
    Vec<(Record, NodeError, Duration)>,
);

impl Supervised {
    pub fn new(current: Box<dyn OperatorNode>, fresh: Fresh, care: Care, label: String) -> Self {
        Supervised {
            current,
            fresh,
            care,
            label,
            dead: Vec::new(),
            isolated: 0,
        }
    }

    /// Put a fresh instance restored from `state` in place of the current one, handing it the
    /// late records not yet taken: `late`, then the old instance's own (whose call's output is
    /// kept), so they come out after the call as if nothing had been replaced.
    fn replace(&mut self, state: &[u8], mut late: Vec<Record>) -> Result<(), NodeError> {
        let mut next = (self.fresh)()?;
        next.restore(state)?;
        late.extend(self.current.take_late());
        next.keep_late(late);
        self.current = next;
        Ok(())
    }

    /// After a call: recycle the instance if its memory passed the mark.
    fn recycle_if_needed(&mut self) -> Result<(), NodeError> {
        let Some(high_water) = self.care.recycle_above else {
            return Ok(());
        };
        let used = self.current.memory_bytes();
        tracing::trace!("{}: {} bytes of memory", self.label, used);
        if used <= high_water {
            return Ok(());
        }
        let state = self.current.snapshot()?;
        self.replace(&state, Vec::new())?;
        tracing::info!(
            "{}: recycled the instance at {} MiB of memory (high-water mark {} MiB)",
            self.label,
            used >> 20,
            high_water >> 20
        );
        Ok(())
    }

    /// `process`, isolating the records that make it fail.
    fn process_isolating(&mut self, batch: Batch) -> Result<Batch, NodeError> {
        let before = self.current.snapshot()?;
        let failure = match self.current.process(batch.clone()) {
            Ok(out) => return Ok(out),
            Err(e) if isolatable(&e) => e,
            Err(e) => return Err(e),
        };
        tracing::warn!(
            "{}: {failure}; isolating the record(s) that cause it ({} in the batch)",
            self.label,
            batch.len()
        );
        let (out, late, state, dead) = self.bisect(batch, before)?;
        // The failed call's late records go with it (the old instance's earlier ones were
        // taken after the previous call); the replayed parts' are kept.
        let _ = self.current.take_late();
        self.replace(&state, late)?;
        self.isolated += dead.len() as u64;
        for (record, error, took) in dead {
            match self.care.on_error {
                OnError::Skip => tracing::warn!("{}: skipped a record: {error}", self.label),
                OnError::DeadLetter => {
                    let letter = self.dead_letter(record, &error, took);
                    self.dead.push(letter);
                }
                OnError::Fail => unreachable!("isolation only runs with on_error set"),
            }
        }
        Ok(out)
    }

    /// Replay `records` from `state`, halving every part that fails, until each failing part
    /// is one record.
    fn bisect(&self, records: Batch, mut state: Vec<u8>) -> Result<Replayed, NodeError> {
        let mut out = Batch::empty();
        let mut late = Vec::new();
        let mut dead = Vec::new();
        let mut parts = VecDeque::from([records]);
        while let Some(part) = parts.pop_front() {
            let mut instance = (self.fresh)()?;
            instance.restore(&state)?;
            let started = Instant::now();
            match instance.process(part.clone()) {
                Ok(produced) => {
                    out = batch::concat(out, &produced);
                    late.extend(instance.take_late());
                    state = instance.snapshot()?;
                }
                Err(e) if isolatable(&e) && part.len() == 1 => {
                    let record = part.iter().next().expect("one record");
                    dead.push((batch::owned(&record), e, started.elapsed()));
                }
                Err(e) if isolatable(&e) => {
                    let (left, right) = batch::split(&part, part.len() / 2);
                    parts.push_front(right);
                    parts.push_front(left);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((out, late, state, dead))
    }

    /// `record` as a dead letter: itself, plus headers naming what happened.
    fn dead_letter(&self, mut record: Record, error: &NodeError, took: Duration) -> Record {
        let (node, plugin, cause, backtrace) = match error {
            NodeError::Call {
                node,
                origin,
                cause,
                ..
            } => (
                node.clone(),
                origin.clone(),
                cause.to_string(),
                cause.backtrace().map(str::to_owned),
            ),
            other => (self.label.clone(), String::new(), other.to_string(), None),
        };
        let backtrace = backtrace.map(|b| ("weir.backtrace", b));
        for (key, value) in [
            ("weir.error", error.to_string()),
            ("weir.cause", cause),
            ("weir.node", node),
            ("weir.plugin", plugin),
            ("weir.elapsed_ms", took.as_millis().to_string()),
        ]
        .into_iter()
        .chain(backtrace)
        {
            record.headers.push(Header {
                key: key.into(),
                value: value.into_bytes(),
            });
        }
        record
    }
}

/// Failures a record can cause (not a cancelled job).
fn isolatable(e: &NodeError) -> bool {
    matches!(e, NodeError::Call { call: Call::Process, cause, .. } if !matches!(cause, Cause::Cancelled))
}

impl OperatorNode for Supervised {
    fn process(&mut self, batch: Batch) -> Result<Batch, NodeError> {
        let out = match self.care.on_error {
            OnError::Fail => self.current.process(batch)?,
            _ => self.process_isolating(batch)?,
        };
        self.recycle_if_needed()?;
        Ok(out)
    }

    fn on_watermark(&mut self, ts: i64) -> Result<Batch, NodeError> {
        let out = self.current.on_watermark(ts)?;
        self.recycle_if_needed()?;
        Ok(out)
    }

    fn on_processing_time(&mut self, now: i64) -> Result<Batch, NodeError> {
        let out = self.current.on_processing_time(now)?;
        self.recycle_if_needed()?;
        Ok(out)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.current.next_processing_timer()
    }

    fn finish(&mut self) -> Result<Batch, NodeError> {
        self.current.finish()
    }

    fn take_late(&mut self) -> Vec<Record> {
        self.current.take_late()
    }

    fn keep_late(&mut self, late: Vec<Record>) {
        self.current.keep_late(late)
    }

    fn take_dead_letters(&mut self) -> Vec<Record> {
        let mut dead = std::mem::take(&mut self.dead);
        dead.extend(self.current.take_dead_letters());
        dead
    }

    fn take_isolated(&mut self) -> u64 {
        std::mem::take(&mut self.isolated) + self.current.take_isolated()
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
        self.current.snapshot()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        self.current.restore(state)
    }

    fn memory_bytes(&self) -> u64 {
        self.current.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what it saw (its state); fails on the value "13", sends values starting with
    /// "L" to its late output, appends "!" to the rest; always reports 1 MiB of memory.
    #[derive(Default)]
    struct Picky {
        seen: u64,
        late: Vec<Record>,
    }

    impl OperatorNode for Picky {
        fn process(&mut self, batch: Batch) -> Result<Batch, NodeError> {
            let mut out = weir_core::batch::BatchBuilder::new();
            for r in &batch {
                if r.value == b"13" {
                    return Err(NodeError::Call {
                        node: "picky".into(),
                        subtask: 0,
                        origin: "picky.wasm".into(),
                        call: Call::Process,
                        cause: Cause::Panic {
                            message: "thirteen".into(),
                            backtrace: "".into(),
                        },
                    });
                }
                self.seen += 1;
                if r.value.starts_with(b"L") {
                    self.late.push(weir_core::batch::owned(&r));
                    continue;
                }
                out.push_mapped(&r, |v| {
                    v.extend_from_slice(r.value);
                    v.push(b'!');
                });
            }
            Ok(out.finish())
        }
        fn on_watermark(&mut self, _ts: i64) -> Result<Batch, NodeError> {
            Ok(Batch::empty())
        }
        fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
            Ok(self.seen.to_le_bytes().to_vec())
        }
        fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
            self.seen = u64::from_le_bytes(state.try_into().unwrap());
            Ok(())
        }
        fn take_late(&mut self) -> Vec<Record> {
            std::mem::take(&mut self.late)
        }
        fn keep_late(&mut self, late: Vec<Record>) {
            self.late.splice(0..0, late);
        }
        fn memory_bytes(&self) -> u64 {
            1 << 20
        }
    }

    fn picky(care: Care) -> Supervised {
        Supervised::new(
            Box::new(Picky::default()),
            Box::new(|| Ok(Box::new(Picky::default()) as Box<dyn OperatorNode>)),
            care,
            "picky[0]".into(),
        )
    }

    fn values(records: &[Record]) -> Vec<&str> {
        records
            .iter()
            .map(|r| std::str::from_utf8(&r.value).unwrap())
            .collect()
    }

    fn record(v: &str) -> Record {
        Record {
            key: None,
            value: v.as_bytes().to_vec(),
            timestamp: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn poison_records_are_isolated_and_the_rest_processed_once_in_order() {
        let mut node = picky(Care {
            recycle_above: None,
            on_error: OnError::DeadLetter,
        });
        let batch: Vec<Record> = ["1", "13", "2", "3", "13", "4", "5"]
            .into_iter()
            .map(record)
            .collect();
        let out = node
            .process(weir_core::batch::from_records(&batch))
            .unwrap();
        let values: Vec<&str> = out.iter().map(|r| r.value_str().unwrap()).collect();
        assert_eq!(values, ["1!", "2!", "3!", "4!", "5!"]);
        // The state counts exactly the records that passed.
        assert_eq!(node.snapshot().unwrap(), 5u64.to_le_bytes());
        let dead = node.take_dead_letters();
        assert_eq!(dead.len(), 2);
        assert_eq!(node.take_isolated(), 2);
        let header = |r: &Record, k: &str| {
            r.headers
                .iter()
                .find(|h| h.key == k)
                .map(|h| String::from_utf8(h.value.clone()).unwrap())
        };
        assert_eq!(dead[0].value, b"13");
        assert_eq!(header(&dead[0], "weir.node").as_deref(), Some("picky"));
        assert_eq!(
            header(&dead[0], "weir.plugin").as_deref(),
            Some("picky.wasm")
        );
        assert!(header(&dead[0], "weir.cause").unwrap().contains("thirteen"));
        assert!(header(&dead[0], "weir.elapsed_ms").is_some());
        // Next batch: the fresh instance carries the state on.
        node.process(weir_core::batch::from_records(&[record("6")]))
            .unwrap();
        assert_eq!(node.snapshot().unwrap(), 6u64.to_le_bytes());
    }

    #[test]
    fn late_records_of_a_replay_survive_recycling_and_isolation_together() {
        // Recycled after every call (1 MiB used, mark 1 KiB) and isolating: the late records
        // of the replayed parts, and of a recycled instance, must all come out.
        let mut node = picky(Care {
            recycle_above: Some(1 << 10),
            on_error: OnError::DeadLetter,
        });
        let batch: Vec<Record> = ["1", "L1", "13", "2", "L2"]
            .into_iter()
            .map(record)
            .collect();
        let out = node
            .process(weir_core::batch::from_records(&batch))
            .unwrap();
        let out: Vec<&str> = out.iter().map(|r| r.value_str().unwrap()).collect();
        assert_eq!(out, ["1!", "2!"]);
        assert_eq!(values(&node.take_late()), ["L1", "L2"]);
        assert_eq!(values(&node.take_dead_letters()), ["13"]);
        assert_eq!(node.snapshot().unwrap(), 4u64.to_le_bytes());
        // A batch without poison, recycled after it: its late record too.
        let out = node
            .process(weir_core::batch::from_records(&[record("L3"), record("3")]))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(values(&node.take_late()), ["L3"]);
        assert_eq!(node.snapshot().unwrap(), 6u64.to_le_bytes());
    }
}
