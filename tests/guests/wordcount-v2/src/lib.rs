//! Test guest: a second build of the word count, to prove a savepoint carries state across a
//! plugin swap. Same state layout as examples/wordcount (so it restores v1's counts); its
//! updates end in `\tv2`, so a test can tell which build wrote each line.

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
            for word in record
                .value_str()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let word = word.to_lowercase();
                let count = self.counts.entry(word.clone()).or_insert(0);
                *count += 1;
                out.push(Record::keyed(word.clone(), format!("{word}\t{count}\tv2")));
            }
        }
        Ok(out)
    }
}
