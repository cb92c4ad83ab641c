//! q5, hot items: per sliding window of 10 s every 2 s (event time), the auctions with the most
//! bids. A window closes when the watermark passes its end; its hottest auctions come out in
//! auction order, `{"auction","num","window_end"}`.

use crate::bid::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use weir_sdk::{BatchBuilder, RecordRef, Result};

const SIZE: i64 = 10_000;
const SLIDE: i64 = 2_000;

#[derive(Default, Serialize, Deserialize)]
pub struct HotItems {
    /// Window start → bids per auction.
    windows: BTreeMap<i64, HashMap<u64, u64>>,
}

impl HotItems {
    pub fn add(&mut self, r: &RecordRef) -> Result<()> {
        let Some(b) = crate::bid::parse(r.value)? else {
            return Ok(());
        };
        let ts = b.date_time;
        let mut start = ts.div_euclid(SLIDE) * SLIDE;
        while start > ts - SIZE {
            *self
                .windows
                .entry(start)
                .or_default()
                .entry(b.auction)
                .or_insert(0) += 1;
            start -= SLIDE;
        }
        Ok(())
    }

    /// Close the windows that end at or before `watermark + 1`.
    pub fn close(&mut self, watermark: i64, out: &mut BatchBuilder) {
        while let Some(entry) = self.windows.first_entry() {
            let end = *entry.key() + SIZE;
            if end - 1 > watermark {
                return;
            }
            let counts = entry.remove();
            let max = counts.values().copied().max().unwrap_or(0);
            let mut hot: Vec<u64> = counts
                .iter()
                .filter(|(_, n)| **n == max)
                .map(|(a, _)| *a)
                .collect();
            hot.sort_unstable();
            for auction in hot {
                out.push_value_with(None, Some(end - 1), |v| {
                    Json::object(v)
                        .int("auction", auction)
                        .int("num", max)
                        .int("window_end", end)
                        .end()
                });
            }
        }
    }
}
