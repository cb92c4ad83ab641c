//! A Nexmark bid as the `nexmark` source writes it, read in place.

use serde::Deserialize;

/// The start of every bid's JSON (the source writes `"type"` first).
const BID: &[u8] = br#"{"type":"bid""#;

/// The fields the queries read (the rest are skipped).
#[derive(Deserialize)]
pub struct Bid<'a> {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
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

/// Writes JSON objects of integer fields (and a string one) into a value, without core::fmt.
pub struct Json<'v, 'b> {
    out: &'v mut weir_sdk::ValueWriter<'b>,
    first: bool,
}

impl<'v, 'b> Json<'v, 'b> {
    pub fn object(out: &'v mut weir_sdk::ValueWriter<'b>) -> Self {
        out.push(b'{');
        Json { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    pub fn int(mut self, k: &str, v: impl itoa::Integer) -> Self {
        self.key(k);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self
    }

    /// A string field whose text needs no escaping (it came from a JSON string as it was).
    pub fn raw_str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
        self
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}
