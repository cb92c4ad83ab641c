//! Test guest: keeps `value_bytes` bytes of keyed state per record it sees (keyed by the
//! record's routing key), far more in total than its memory ceiling, and emits one line per
//! record: `key<TAB>bytes held for it`. Proves keyed state lives outside the guest's memory.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Operator, Record, Result, ValueState, operator};

#[derive(Serialize, Deserialize)]
struct KeyedFill {
    blobs: ValueState<String>,
    value_bytes: usize,
}

/// The node's config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    value_bytes: Option<usize>,
}

#[operator]
impl Operator for KeyedFill {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        let c: Settings = config.read()?;
        Ok(KeyedFill {
            blobs: ValueState::new("blobs"),
            value_bytes: c.value_bytes.unwrap_or(1000),
        })
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(batch.len());
        for r in &batch {
            let key = r.routing_key();
            let held = self.blobs.get(key)?.map_or(0, |b| b.len());
            let blob: String = std::iter::repeat_n('x', self.value_bytes).collect();
            self.blobs.set(key, blob);
            out.push(Record::new(format!(
                "{}\t{}",
                String::from_utf8_lossy(key),
                held + self.value_bytes
            )));
        }
        Ok(out)
    }
}
