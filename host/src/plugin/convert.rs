//! Records across the plugin boundary: the runtime's records and batches (`weir_core`) to and
//! from the types the component bindings lower and lift (`bindings::Record`), for list-form
//! plugins and late records.
//!
//! Invariant: every field (key, value, timestamp, headers, in order) survives both ways; this is
//! the only place that converts.

use super::bindings;
use weir_core::batch::{Batch, BatchBuilder};
use weir_core::{Header, Record};

/// Every record of `batch`, as the list form lowers it.
pub fn to_wit(batch: &Batch) -> Vec<bindings::Record> {
    batch
        .iter()
        .map(|r| bindings::Record {
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.to_vec(),
            timestamp: r.timestamp,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| bindings::Header {
                    key: k.to_owned(),
                    value: v.to_vec(),
                })
                .collect(),
        })
        .collect()
}

/// Records a list-form plugin returned, packed.
pub fn pack_wit(records: &[bindings::Record]) -> Batch {
    let bytes: usize = records.iter().map(|r| r.value.len() + 16).sum();
    let mut b = BatchBuilder::with_capacity(bytes);
    for r in records {
        b.push(
            r.key.as_deref(),
            &r.value,
            r.timestamp,
            r.headers
                .iter()
                .map(|h| (h.key.as_str(), h.value.as_slice())),
        );
    }
    b.finish()
}

/// A record a plugin handed over (a late one), as the runtime keeps it.
pub fn from_wit(r: bindings::Record) -> Record {
    Record {
        key: r.key,
        value: r.value,
        timestamp: r.timestamp,
        headers: r
            .headers
            .into_iter()
            .map(|h| Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_cross_both_ways_whole() {
        let mut b = BatchBuilder::new();
        b.push(Some(b"k"), b"v1", Some(-7), [("h", &b"x"[..])]);
        b.push(None, b"v2", None, []);
        let batch = b.finish();
        let wit = to_wit(&batch);
        assert_eq!(pack_wit(&wit).as_bytes(), batch.as_bytes());
        let first = from_wit(wit[0].clone());
        assert_eq!(first.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(first.timestamp, Some(-7));
        assert_eq!(first.headers[0].key, "h");
        assert_eq!(from_wit(wit[1].clone()).key, None);
    }
}
