//! Word count: a stateful operator written with the Rust SDK.
//!
//! Words are maximal runs of alphanumeric characters, lowercased. For every word it sees, it
//! emits `word<TAB>count` with the running count, keyed by the word. The counts are its state:
//! they survive a snapshot and restore, so a resumed job counts on from the checkpoint.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use weir_sdk::{Config, Context, Operator, Record, Result, operator};

#[derive(Serialize, Deserialize)]
struct WordCount {
    counts: HashMap<String, u64>,
}

#[operator]
impl Operator for WordCount {
    fn open(_config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(WordCount {
            counts: HashMap::new(),
        })
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for record in &batch {
            let text = record.value_str();
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let word = word.to_lowercase();
                let count = self.counts.entry(word.clone()).or_insert(0);
                *count += 1;
                let value = format!("{word}\t{count}");
                out.push(Record::keyed(word, value));
            }
        }
        Ok(out)
    }
}
