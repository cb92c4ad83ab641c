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
use weir_sdk::{Batch, BatchBuilder, Config, Context, Operator, Record, Result, bail, operator};

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
        config.only(&["query"])?;
        Ok(match config.get("query").unwrap_or("q0") {
            "q0" => Query::Q0,
            "q1" => Query::Q1,
            "q2" => Query::Q2,
            "q5" => Query::Q5(Default::default()),
            "q7" => Query::Q7(Default::default()),
            other => bail!("query {other:?} is not one of q0, q1, q2, q5, q7"),
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
