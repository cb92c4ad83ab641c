//! A Nexmark bid as the `nexmark` source writes it, read in place.

use serde::Deserialize;

/// The start of every bid's JSON (the source writes `"type"` first).
const BID: &[u8] = br#"{"type":"bid""#;

#[derive(Deserialize)]
pub struct Bid<'a> {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    #[serde(borrow)]
    pub channel: &'a str,
    #[serde(borrow)]
    pub url: &'a str,
    pub date_time: i64,
    #[serde(borrow)]
    pub extra: &'a str,
}

/// Whether the event is a bid (persons and auctions are not).
pub fn is_bid(value: &[u8]) -> bool {
    value.starts_with(BID)
}

/// The bid in `value`, or `None` for a person or an auction.
pub fn parse(value: &[u8]) -> weir_sdk::Result<Option<Bid<'_>>> {
    if !is_bid(value) {
        return Ok(None);
    }
    Ok(Some(serde_json::from_slice(value)?))
}
