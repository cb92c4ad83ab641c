//! Batches as the runtime carries them: packed ([`Batch`], from `weir-batch`), from the source
//! through every channel to the sink, decoded in place only where the host needs a field (a
//! key to route by, a timestamp, a native sink's record). The owned [`Record`] of the list form
//! appears only at the edges that need it: list-form plugins, dead letters, late records.
//!
//! Invariant: converting between the two forms keeps every field (key, value, timestamp,
//! headers, in order).

use crate::record::{Header, Record};
pub use weir_batch::{Batch, BatchBuilder, Limits, RecordRef};

/// The packed batch of owned records.
pub fn from_records(records: &[Record]) -> Batch {
    let bytes: usize = records.iter().map(|r| r.value.len() + 16).sum();
    let mut b = BatchBuilder::with_capacity(bytes);
    for r in records {
        push(&mut b, r);
    }
    b.finish()
}

/// Append an owned record.
pub fn push(b: &mut BatchBuilder, r: &Record) {
    b.push(
        r.key.as_deref(),
        &r.value,
        r.timestamp,
        r.headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_slice())),
    );
}

/// A record as the list form holds it.
pub fn owned(r: &RecordRef) -> Record {
    Record {
        key: r.key.map(<[u8]>::to_vec),
        value: r.value.to_vec(),
        timestamp: r.timestamp,
        headers: r
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k.to_owned(),
                value: v.to_vec(),
            })
            .collect(),
    }
}

/// `batch` cut in two before record `at`.
pub fn split(batch: &Batch, at: usize) -> (Batch, Batch) {
    let mut left = BatchBuilder::with_capacity(batch.body_len());
    let mut right = BatchBuilder::with_capacity(batch.body_len());
    for (i, r) in batch.iter().enumerate() {
        if i < at { &mut left } else { &mut right }.push_ref(&r);
    }
    (left.finish(), right.finish())
}

/// Two batches as one, in order.
pub fn concat(a: Batch, b: &Batch) -> Batch {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b.clone();
    }
    let mut out = a.into_builder();
    out.extend(b);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str) -> Record {
        Record {
            key: Some(b"k".to_vec()),
            value: v.as_bytes().to_vec(),
            timestamp: Some(7),
            headers: vec![Header {
                key: "h".into(),
                value: vec![1],
            }],
        }
    }

    fn values(b: &Batch) -> Vec<String> {
        b.iter()
            .map(|r| r.value_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn records_survive_both_ways_and_batches_split_and_join() {
        let records: Vec<Record> = ["a", "b", "c"].map(rec).into();
        let batch = from_records(&records);
        let back: Vec<Record> = batch.iter().map(|r| owned(&r)).collect();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].value, b"c");
        assert_eq!(back[1].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(back[0].timestamp, Some(7));
        assert_eq!(back[0].headers[0].value, vec![1]);
        let (l, r) = split(&batch, 1);
        assert_eq!(
            (values(&l), values(&r)),
            (vec!["a".into()], vec!["b".into(), "c".into()])
        );
        assert_eq!(values(&concat(r, &l)), ["b", "c", "a"]);
    }
}
