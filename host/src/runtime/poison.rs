//! Poison records: an operator that fails on a batch (error, panic, trap, timeout, out of
//! memory) is not restarted into the same failure forever. With `on_error = "skip"` or
//! `"dead-letter"` the host finds the record(s) that cause it, by replaying the batch in halves
//! on fresh instances restored from the state before the batch, and goes on without them.
//!
//! Invariants: the output is exactly what the operator produces for the batch without the
//! poison records, in order, and its state afterwards is the state after exactly those records;
//! dead letters travel on the node's `<node>.dead-letter` output between the same barriers as
//! the batch, so exactly-once holds for them too. Costs: a snapshot and a copy of the batch
//! before every batch (cheap for small state), and on a failure about 2·k·log2(batch) extra
//! calls for k poison records.

use super::node::OperatorNode;
use crate::batch::{self, Batch};
use crate::config::OnError;
use crate::plugin::{Cause, Header, PluginError, Record};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

type Fresh = Box<dyn Fn() -> Result<Box<dyn OperatorNode>, PluginError> + Send>;

/// An operator node that isolates poison records instead of failing on them.
pub struct Isolating {
    current: Box<dyn OperatorNode>,
    fresh: Fresh,
    mode: OnError,
    /// `node[subtask]`, for log lines.
    label: String,
    dead: Vec<Record>,
    /// Records skipped or dead-lettered and not yet counted by the subtask.
    isolated: u64,
}

impl Isolating {
    pub fn new(current: Box<dyn OperatorNode>, fresh: Fresh, mode: OnError, label: String) -> Self {
        Isolating {
            current,
            fresh,
            mode,
            label,
            dead: Vec::new(),
            isolated: 0,
        }
    }

    /// Replay `records` from `state`, halving every part that fails, until each failing part
    /// is one record. Returns the output of the rest, its late records, the state after it, and the poison
    /// records with the failure each caused and the time it took.
    #[allow(clippy::type_complexity)]
    fn bisect(
        &self,
        records: Batch,
        mut state: Vec<u8>,
    ) -> Result<
        (
            Batch,
            Vec<Record>,
            Vec<u8>,
            Vec<(Record, PluginError, Duration)>,
        ),
        PluginError,
    > {
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
    fn dead_letter(&self, mut record: Record, error: &PluginError, took: Duration) -> Record {
        let (node, plugin, cause, backtrace) = match error {
            PluginError::Call {
                node,
                origin,
                cause,
                ..
            } => (
                node.clone(),
                origin.to_string(),
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
fn isolatable(e: &PluginError) -> bool {
    matches!(e, PluginError::Call { call: "process", cause, .. } if !matches!(cause, Cause::Cancelled))
}

impl OperatorNode for Isolating {
    fn process(&mut self, batch: Batch) -> Result<Batch, PluginError> {
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
        let mut next = (self.fresh)()?;
        next.restore(&state)?;
        // The failed call's late records go with it; the replayed parts' are kept.
        next.keep_late(late);
        self.current = next;
        self.isolated += dead.len() as u64;
        for (record, error, took) in dead {
            match self.mode {
                OnError::Skip => tracing::warn!("{}: skipped a record: {error}", self.label),
                OnError::DeadLetter => {
                    let letter = self.dead_letter(record, &error, took);
                    self.dead.push(letter);
                }
                OnError::Fail => unreachable!("a failing node is not wrapped"),
            }
        }
        Ok(out)
    }

    fn take_dead_letters(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.dead)
    }

    fn take_isolated(&mut self) -> u64 {
        std::mem::take(&mut self.isolated)
    }

    fn on_watermark(&mut self, ts: i64) -> Result<Batch, PluginError> {
        self.current.on_watermark(ts)
    }

    fn on_processing_time(&mut self, now: i64) -> Result<Batch, PluginError> {
        self.current.on_processing_time(now)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.current.next_processing_timer()
    }

    fn finish(&mut self) -> Result<Batch, PluginError> {
        self.current.finish()
    }

    fn take_late(&mut self) -> Vec<Record> {
        self.current.take_late()
    }

    fn keep_late(&mut self, late: Vec<Record>) {
        self.current.keep_late(late)
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        self.current.snapshot()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        self.current.restore(state)
    }

    fn memory_bytes(&self) -> u64 {
        self.current.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::PluginOrigin;
    use std::path::PathBuf;

    /// Counts what it saw (its state); fails on the value "13", appends "!" to the rest.
    struct Picky {
        seen: u64,
    }

    impl OperatorNode for Picky {
        fn process(&mut self, batch: Batch) -> Result<Batch, PluginError> {
            let mut out = crate::batch::BatchBuilder::new();
            for r in &batch {
                if r.value == b"13" {
                    return Err(PluginError::Call {
                        node: "picky".into(),
                        subtask: 0,
                        origin: PluginOrigin::File(PathBuf::from("picky.wasm")),
                        call: "process",
                        cause: Cause::Panic {
                            message: "thirteen".into(),
                            backtrace: "".into(),
                        },
                    });
                }
                self.seen += 1;
                out.push_mapped(&r, |v| {
                    v.extend_from_slice(r.value);
                    v.push(b'!');
                });
            }
            Ok(out.finish())
        }
        fn on_watermark(&mut self, _ts: i64) -> Result<Batch, PluginError> {
            Ok(Batch::empty())
        }
        fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
            Ok(self.seen.to_le_bytes().to_vec())
        }
        fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
            self.seen = u64::from_le_bytes(state.try_into().unwrap());
            Ok(())
        }
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
        let mut node = Isolating::new(
            Box::new(Picky { seen: 0 }),
            Box::new(|| Ok(Box::new(Picky { seen: 0 }) as Box<dyn OperatorNode>)),
            OnError::DeadLetter,
            "picky[0]".into(),
        );
        let batch: Vec<Record> = ["1", "13", "2", "3", "13", "4", "5"]
            .into_iter()
            .map(record)
            .collect();
        let out = node.process(crate::batch::from_records(&batch)).unwrap();
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
        node.process(crate::batch::from_records(&[record("6")]))
            .unwrap();
        assert_eq!(node.snapshot().unwrap(), 6u64.to_le_bytes());
    }
}
