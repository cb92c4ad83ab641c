//! q7, highest bid: per tumbling window of 10 s (event time), the bids with the highest price,
//! as they came. A window closes when the watermark passes its end.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_sdk::{BatchBuilder, RecordRef, Result};

const SIZE: i64 = 10_000;

#[derive(Default, Serialize, Deserialize)]
pub struct HighestBid {
    /// Window start → (highest price, the bids at it).
    windows: BTreeMap<i64, (u64, Vec<Vec<u8>>)>,
}

impl HighestBid {
    pub fn add(&mut self, r: &RecordRef) -> Result<()> {
        let Some(b) = crate::bid::parse(r.value)? else {
            return Ok(());
        };
        let start = b.date_time.div_euclid(SIZE) * SIZE;
        let (max, bids) = self.windows.entry(start).or_default();
        if b.price > *max {
            *max = b.price;
            bids.clear();
        }
        if b.price == *max {
            bids.push(r.value.to_vec());
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
            let (_, bids) = entry.remove();
            for bid in bids {
                out.push(None, &bid, Some(end - 1), []);
            }
        }
    }
}
