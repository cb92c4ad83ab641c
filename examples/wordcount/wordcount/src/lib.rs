//! Word count: a stateful operator written with the Rust SDK, its counts in keyed state.
//!
//! Words are maximal runs of alphanumeric characters, lowercased. For every word it sees, it
//! emits `word<TAB>count` with the running count, keyed by the word. The counts live in the
//! host as keyed state (one value per word): they are checkpointed incrementally, survive a
//! restore, may outgrow the plugin's memory, and move between subtasks when the parallelism
//! changes. At parallelism > 1 put `tokenize` before it on a `hash` edge, so each word reaches
//! the subtask that holds its count.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Operator, Record, Result, ValueState, operator};

#[derive(Serialize, Deserialize)]
struct WordCount {
    counts: ValueState<u64>,
}

#[operator]
impl Operator for WordCount {
    fn open(_config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(WordCount {
            counts: ValueState::new("counts"),
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
                let count = self.counts.get(word.as_bytes())?.unwrap_or(0) + 1;
                self.counts.set(word.as_bytes(), count);
                let value = format!("{word}\t{count}");
                out.push(Record::keyed(word, value));
            }
        }
        Ok(out)
    }
}
