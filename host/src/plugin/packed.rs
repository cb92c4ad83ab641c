//! The packed batch encoding of `weir:plugin/packed-types`: a batch of records as one buffer,
//! postcard of a sequence of (key, value, timestamp, headers).
//!
//! Invariant: this encoding is byte for byte the serde encoding of `Vec<weir_sdk::Record>` (a
//! test below holds the two together), and bytes that do not decode are an error, never a
//! partial batch.

use super::bindings::{Header, Record};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// Append the packed encoding of `batch` to `out` (cleared first) and return it.
pub fn encode(batch: &[Record], mut out: Vec<u8>) -> Vec<u8> {
    out.clear();
    postcard::to_extend(&Batch(batch), out).expect("encoding into a Vec cannot fail")
}

/// Decode a packed batch.
pub fn decode(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let (owned, rest): (Vec<OwnedRecord>, _) =
        postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last record", rest.len()));
    }
    Ok(owned.into_iter().map(Record::from).collect())
}

struct Batch<'a>(&'a [Record]);

impl Serialize for Batch<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in self.0 {
            seq.serialize_element(&RecordRef {
                key: r.key.as_deref(),
                value: &r.value,
                timestamp: r.timestamp,
                headers: Headers(&r.headers),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct RecordRef<'a> {
    #[serde(with = "serde_bytes")]
    key: Option<&'a [u8]>,
    #[serde(with = "serde_bytes")]
    value: &'a [u8],
    timestamp: Option<i64>,
    headers: Headers<'a>,
}

struct Headers<'a>(&'a [Header]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for h in self.0 {
            seq.serialize_element(&(h.key.as_str(), serde_bytes::Bytes::new(&h.value)))?;
        }
        seq.end()
    }
}

#[derive(Deserialize)]
struct OwnedRecord {
    #[serde(with = "serde_bytes")]
    key: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    timestamp: Option<i64>,
    headers: Vec<(String, serde_bytes::ByteBuf)>,
}

impl From<OwnedRecord> for Record {
    fn from(r: OwnedRecord) -> Record {
        Record {
            key: r.key,
            value: r.value,
            timestamp: r.timestamp,
            headers: r
                .headers
                .into_iter()
                .map(|(key, value)| Header {
                    key,
                    value: value.into_vec(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record {
                key: Some(b"k1".to_vec()),
                value: b"hello".to_vec(),
                timestamp: Some(-5),
                headers: vec![Header {
                    key: "h".into(),
                    value: vec![0, 255],
                }],
            },
            Record {
                key: None,
                value: Vec::new(),
                timestamp: None,
                headers: Vec::new(),
            },
        ]
    }

    type Plain = (
        Option<Vec<u8>>,
        Vec<u8>,
        Option<i64>,
        Vec<(String, Vec<u8>)>,
    );

    /// The bindgen record has no `PartialEq`; compare its fields.
    fn plain(batch: &[Record]) -> Vec<Plain> {
        batch
            .iter()
            .map(|r| {
                let h = r.headers.iter().map(|h| (h.key.clone(), h.value.clone()));
                (r.key.clone(), r.value.clone(), r.timestamp, h.collect())
            })
            .collect()
    }

    #[test]
    fn round_trips() {
        let batch = sample();
        let bytes = encode(&batch, vec![1, 2, 3]);
        assert_eq!(plain(&decode(&bytes).unwrap()), plain(&batch));
        assert!(decode(&encode(&[], Vec::new())).unwrap().is_empty());
    }

    #[test]
    fn agrees_with_the_guest_sdk() {
        let sdk: Vec<weir_sdk::Record> = sample()
            .into_iter()
            .map(|r| weir_sdk::Record {
                key: r.key,
                value: r.value,
                timestamp: r.timestamp,
                headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            })
            .collect();
        let from_sdk = postcard::to_allocvec(&sdk).unwrap();
        assert_eq!(from_sdk, encode(&sample(), Vec::new()));
        let back: Vec<weir_sdk::Record> = postcard::from_bytes(&from_sdk).unwrap();
        assert_eq!(back, sdk);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let bytes = encode(&sample(), Vec::new());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        // A length far beyond the input must fail, not allocate it.
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode(&[1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(
            decode(&trailing)
                .unwrap_err()
                .contains("after the last record")
        );
    }
}
