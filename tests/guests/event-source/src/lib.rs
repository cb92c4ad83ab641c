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

/// The node's config, every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    count: u64,
    step_ms: i64,
    users: u64,
    producers: Option<u32>,
    stall_after: u64,
    end: bool,
    emit_watermarks: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            count: 1000,
            step_ms: 100,
            users: 5,
            producers: None,
            stall_after: 0,
            end: true,
            emit_watermarks: false,
        }
    }
}

#[source]
impl Source for EventSource {
    fn open(config: &Config, ctx: &Context) -> Result<Self> {
        let c: Settings = config.read()?;
        let producers = c.producers.unwrap_or(ctx.parallelism);
        Ok(EventSource {
            next: u64::from(ctx.subtask),
            count: c.count,
            step: c.step_ms,
            users: c.users,
            parallelism: u64::from(ctx.parallelism),
            limit: if ctx.subtask < producers {
                c.count
            } else {
                (c.stall_after * u64::from(ctx.parallelism)).min(c.count)
            },
            end: c.end,
            emit: c.emit_watermarks,
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
