//! Test source for event time: record i (of `count`, split over the subtasks, i mod
//! parallelism) is `{"user":"u<i mod users>","ts":<i * step_ms>}` with that timestamp. Only
//! subtasks below `producers` produce all theirs; the others produce `stall_after` and then
//! nothing, forever (an input that goes quiet). `end = false`: producers, too, go quiet instead
//! of ending. `emit_watermarks = true`: after each poll the source emits its newest timestamp
//! as its watermark.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Poll, Record, Result, Source, source, time};

#[derive(Serialize, Deserialize)]
struct EventSource {
    next: u64,
    count: u64,
    step: i64,
    users: u64,
    parallelism: u64,
    limit: u64,
    end: bool,
    emit: bool,
}

#[source]
impl Source for EventSource {
    fn open(config: &Config, ctx: &Context) -> Result<Self> {
        config.only(&[
            "count",
            "step_ms",
            "users",
            "producers",
            "stall_after",
            "end",
            "emit_watermarks",
        ])?;
        let count = config.parse_or("count", 1000)?;
        let producers: u32 = config.parse_or("producers", ctx.parallelism)?;
        Ok(EventSource {
            next: u64::from(ctx.subtask),
            count,
            step: config.parse_or("step_ms", 100)?,
            users: config.parse_or("users", 5)?,
            parallelism: u64::from(ctx.parallelism),
            limit: if ctx.subtask < producers {
                count
            } else {
                (config.parse_or::<u64>("stall_after", 0)? * u64::from(ctx.parallelism)).min(count)
            },
            end: config.parse_or("end", true)?,
            emit: config.parse_or("emit_watermarks", false)?,
        })
    }

    fn poll(&mut self, max: usize) -> Result<Poll> {
        if self.next >= self.limit {
            return Ok(if self.end && self.limit == self.count {
                Poll::End
            } else {
                Poll::Idle
            });
        }
        let mut batch = Vec::new();
        while batch.len() < max && self.next < self.limit {
            let i = self.next;
            let ts = i as i64 * self.step;
            let mut r = Record::new(format!(r#"{{"user":"u{}","ts":{ts}}}"#, i % self.users));
            r.timestamp = Some(ts);
            batch.push(r);
            self.next += self.parallelism;
        }
        if self.emit
            && let Some(ts) = batch.last().and_then(|r| r.timestamp)
        {
            time::emit_watermark(ts);
        }
        Ok(Poll::Batch(batch))
    }
}
