//! The word count `weir bench` compares keyed state with: the same counting, its counts in a
//! `HashMap` in the plugin struct (config `mode = "hashmap"`, the way plugins kept state before
//! keyed state) or in keyed state (`mode = "keyed"`). Embedded for the bench only
//! (`builtin::BENCH_COUNT`).
//!
//! Invariant: both modes run the same code but for where a count lives, and emit the same
//! `word<TAB>count` records, so the bench's ratio is the cost of keyed state alone.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use weir_sdk::{Config, Context, Operator, Record, Result, ValueState, operator};

#[derive(Serialize, Deserialize)]
struct BenchCount {
    keyed: bool,
    map: HashMap<String, u64>,
    counts: ValueState<u64>,
}

#[operator]
impl Operator for BenchCount {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        #[derive(serde::Deserialize, Default, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Mode {
            #[default]
            Keyed,
            Hashmap,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            #[serde(default)]
            mode: Mode,
        }
        let keyed = config.read::<Settings>()?.mode == Mode::Keyed;
        Ok(BenchCount {
            keyed,
            map: HashMap::new(),
            counts: ValueState::new("counts"),
        })
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(batch.len() * 8);
        for record in &batch {
            for word in record.value_str().split_ascii_whitespace() {
                let count = if self.keyed {
                    let n = self.counts.get(word.as_bytes())?.unwrap_or(0) + 1;
                    self.counts.set(word.as_bytes(), n);
                    n
                } else {
                    let n = self.map.entry(word.to_owned()).or_insert(0);
                    *n += 1;
                    *n
                };
                out.push(Record::keyed(word, format!("{word}\t{count}")));
            }
        }
        Ok(out)
    }
}
