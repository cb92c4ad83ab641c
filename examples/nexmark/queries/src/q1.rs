//! q1, currency conversion: every bid with its price in euro cents (0.908 per dollar, rounded
//! down), `{"auction","bidder","price","date_time","extra"}`.

use crate::bid::Json;
use weir_sdk::{BatchBuilder, RecordRef, Result};

pub fn run(r: &RecordRef, out: &mut BatchBuilder) -> Result<()> {
    let Some(b) = crate::bid::parse(r.value)? else {
        return Ok(());
    };
    out.push_value_with(None, r.timestamp, |v| {
        Json::object(v)
            .int("auction", b.auction)
            .int("bidder", b.bidder)
            .int("price", b.price * 908 / 1000)
            .int("date_time", b.date_time)
            .raw_str("extra", b.extra)
            .end()
    });
    Ok(())
}
