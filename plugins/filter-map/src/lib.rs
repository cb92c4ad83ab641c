//! Built-in `filter-map` operator, the benchmark workload: drops the records whose first value
//! byte is a multiple of 4 (a quarter of uniformly spread bytes) and upper-cases the rest.
//!
//! Invariant: the same logic as `weir bench`'s native baseline, byte for byte, so the two
//! throughputs compare like for like.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Operator, Record, Result, operator};

#[derive(Serialize, Deserialize)]
struct FilterMap;

#[operator]
impl Operator for FilterMap {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        config.only(&[])?;
        Ok(FilterMap)
    }

    fn process(&mut self, mut batch: Vec<Record>) -> Result<Vec<Record>> {
        batch.retain(|r| r.value.first().is_some_and(|b| b % 4 != 0));
        for r in &mut batch {
            r.value.make_ascii_uppercase();
        }
        Ok(batch)
    }
}
