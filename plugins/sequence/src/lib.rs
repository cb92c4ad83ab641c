//! Built-in `sequence` source: `count` generated records, or the literal `values` list.
//!
//! Invariant: its state is the index of the next record, so a restored source continues exactly
//! where the checkpoint left it. With parallelism N, subtask i emits the records whose index is
//! i modulo N, so together the subtasks emit every record once.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Poll, Record, Result, Source, bail, source};

#[derive(Serialize, Deserialize)]
struct Sequence {
    /// Literal values (config `values`, one per line); empty means generate numbers.
    values: Vec<String>,
    /// How many records in total (over all subtasks).
    count: u64,
    /// Next index this subtask emits.
    next: u64,
    /// Step between this subtask's indices (the parallelism).
    step: u64,
    /// Pad generated values with `.` up to this many bytes.
    value_size: usize,
}

#[source]
impl Source for Sequence {
    fn open(config: &Config, ctx: &Context) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            count: Option<u64>,
            #[serde(default)]
            values: Vec<String>,
            #[serde(default)]
            value_size: usize,
        }
        let Settings {
            count,
            values,
            value_size,
        } = config.read()?;
        let count = match (count, values.len()) {
            (count, 0) => count.unwrap_or(10),
            (None, n) => n as u64,
            (Some(_), _) => bail!("config keys `count` and `values` exclude each other: keep one"),
        };
        Ok(Sequence {
            values,
            count,
            next: u64::from(ctx.subtask),
            step: u64::from(ctx.parallelism.max(1)),
            value_size,
        })
    }

    fn poll(&mut self, max: usize) -> Result<Poll> {
        if self.next >= self.count {
            return Ok(Poll::End);
        }
        let mut batch = Vec::with_capacity(max.min(4096));
        while batch.len() < max && self.next < self.count {
            let i = self.next;
            let value = match self.values.get(i as usize) {
                Some(v) => v.clone().into_bytes(),
                None => {
                    let mut v = i.to_string().into_bytes();
                    if v.len() < self.value_size {
                        v.resize(self.value_size, b'.');
                    }
                    v
                }
            };
            batch.push(Record::keyed(i.to_string(), value));
            self.next += self.step;
        }
        Ok(Poll::Batch(batch))
    }
}
