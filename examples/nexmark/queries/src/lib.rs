//! Nexmark queries as one weir operator: `config = { query = "q5" }` picks q0 (pass-through),
//! q1 (currency conversion), q2 (selection), q5 (hot items, sliding windows) or q7 (highest
//! bid, tumbling windows). Input: the `nexmark` source's events; bids are read in place
//! (`RecordRef`), results written straight into the output batch.
//!
//! Invariant: a window's result comes out once, when the watermark passes its end; the open
//! windows are the operator's state, so a restore continues them exactly.

mod bid;
mod q0;
mod q1;
mod q2;
mod q5;
mod q7;

use serde::{Deserialize, Serialize};
use weir_sdk::{Batch, BatchBuilder, Config, Context, Operator, Record, Result, operator};

/// The node's config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    query: Name,
}

/// The queries by name.
#[derive(Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Name {
    #[default]
    Q0,
    Q1,
    Q2,
    Q5,
    Q7,
}

#[derive(Serialize, Deserialize)]
enum Query {
    Q0,
    Q1,
    Q2,
    Q5(q5::HotItems),
    Q7(q7::HighestBid),
}

#[operator]
impl Operator for Query {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        let settings: Settings = config.read()?;
        Ok(match settings.query {
            Name::Q0 => Query::Q0,
            Name::Q1 => Query::Q1,
            Name::Q2 => Query::Q2,
            Name::Q5 => Query::Q5(Default::default()),
            Name::Q7 => Query::Q7(Default::default()),
        })
    }

    fn process_batch(&mut self, batch: &Batch, out: &mut BatchBuilder) -> Result<()> {
        for r in batch {
            match self {
                Query::Q0 => q0::run(&r, out),
                Query::Q1 => q1::run(&r, out)?,
                Query::Q2 => q2::run(&r, out)?,
                Query::Q5(q) => q.add(&r)?,
                Query::Q7(q) => q.add(&r)?,
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, ts: i64) -> Result<Vec<Record>> {
        let mut out = BatchBuilder::new();
        match self {
            Query::Q5(q) => q.close(ts, &mut out),
            Query::Q7(q) => q.close(ts, &mut out),
            _ => {}
        }
        Ok(out.finish().iter().map(|r| Record::from_ref(&r)).collect())
    }
}
