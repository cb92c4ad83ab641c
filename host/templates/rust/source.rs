//! {{name}}: a weir source. Emits `count` records (config, default 10), then ends; its state is
//! the index of the next record, so a restored job continues where it left off.

use weir_sdk::{Config, Context, Poll, Record, Result, Source, source};

#[derive(serde::Serialize, serde::Deserialize)]
struct Plugin {
    next: u64,
    count: u64,
}

#[source]
impl Source for Plugin {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(Plugin { next: 0, count: config.parse_or("count", 10)? })
    }

    fn poll(&mut self, max: usize) -> Result<Poll> {
        if self.next >= self.count {
            return Ok(Poll::End);
        }
        let mut batch = Vec::new();
        while batch.len() < max && self.next < self.count {
            batch.push(Record::new(format!("record-{}", self.next)));
            self.next += 1;
        }
        Ok(Poll::Batch(batch))
    }
}
