//! q2, selection: the auction and price of the bids on every 123rd auction.

use crate::bid::Json;
use weir_sdk::{BatchBuilder, RecordRef, Result};

pub fn run(r: &RecordRef, out: &mut BatchBuilder) -> Result<()> {
    let Some(b) = crate::bid::parse(r.value)? else {
        return Ok(());
    };
    if b.auction % 123 == 0 {
        out.push_value_with(None, r.timestamp, |v| {
            Json::object(v)
                .int("auction", b.auction)
                .int("price", b.price)
                .end()
        });
    }
    Ok(())
}
