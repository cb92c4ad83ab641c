//! Tokenize: splits lines into one record per word, keyed by the word, so a `hash` edge can send
//! every occurrence of a word to the same parallel word-count subtask. Stateless.
//!
//! Words are maximal runs of alphanumeric characters, lowercased (the word count's rule).

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Operator, Record, Result, operator};

#[derive(Serialize, Deserialize)]
struct Tokenize;

#[operator]
impl Operator for Tokenize {
    fn open(_config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(Tokenize)
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(batch.len() * 8);
        for record in &batch {
            let text = record.value_str();
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let word = word.to_lowercase();
                out.push(Record::keyed(word.clone(), word));
            }
        }
        Ok(out)
    }
}
