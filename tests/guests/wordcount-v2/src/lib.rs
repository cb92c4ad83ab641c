//! Test guest: a second build of the word count, to prove a savepoint carries state across a
//! plugin swap. Same keyed state as examples/wordcount (value state `counts`, so it restores
//! v1's counts); its updates end in `\tv2`, so a test can tell which build wrote each line. Its
//! own state is version 1 and it migrates version 0 (examples/wordcount's), field for field.

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

    const STATE_VERSION: u32 = 1;

    fn migrate(&mut self, from: u32, state: &[u8]) -> Result<()> {
        weir_sdk::ensure!(from == 0, "no migration from state version {from}");
        // Version 0 is the same struct in the plain encoding.
        *self = weir_sdk::state::decode(state)?;
        Ok(())
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
                let count = self.counts.get(word.as_bytes())?.unwrap_or(0) + 1;
                self.counts.set(word.as_bytes(), count);
                out.push(Record::keyed(word.clone(), format!("{word}\t{count}\tv2")));
            }
        }
        Ok(out)
    }
}
