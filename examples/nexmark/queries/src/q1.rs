//! q1, currency conversion: every bid with its price in euro cents (0.908 per dollar, rounded
//! down), the rest of it unchanged.

use std::io::Write;
use weir_sdk::{BatchBuilder, RecordRef, Result};

pub fn run(r: &RecordRef, out: &mut BatchBuilder) -> Result<()> {
    let Some(b) = crate::bid::parse(r.value)? else {
        return Ok(());
    };
    let euro = b.price * 908 / 1000;
    out.push_value_with(None, r.timestamp, |v| {
        let _ = write!(
            v,
            r#"{{"auction":{},"bidder":{},"price":{euro},"date_time":{},"extra":"{}"}}"#,
            b.auction, b.bidder, b.date_time, b.extra
        );
    });
    Ok(())
}
