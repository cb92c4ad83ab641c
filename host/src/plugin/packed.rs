//! The packed batch encoding of `weir:plugin/packed-types`: a batch of records as one buffer,
//! postcard of a sequence of (key, value, timestamp, headers).
//!
//! Invariant: this encoding is byte for byte the serde encoding of `Vec<weir_sdk::Record>` (a
//! test below holds the two together); bytes that do not decode are an error, never a partial
//! batch; and a reply over the node's [`ReplyLimits`] is refused before the host allocates for
//! it (a few bytes can claim millions of empty records).

use super::bindings::{Header, Record};
use super::instance::ReplyLimits;
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};

/// Append the packed encoding of `batch` to `out` (cleared first) and return it.
pub fn encode(batch: &[Record], mut out: Vec<u8>) -> Vec<u8> {
    out.clear();
    postcard::to_extend(&Batch(batch), out).expect("encoding into a Vec cannot fail")
}

/// Why a reply was refused.
#[derive(Debug)]
pub enum ReplyError {
    /// Not the packed encoding.
    Malformed(String),
    /// Over the node's reply limits.
    TooLarge(String),
}

/// Decode a packed batch within `limits`: the record and header counts are checked as their
/// length prefixes are read, before anything is allocated for them.
pub fn decode(bytes: &[u8], limits: &ReplyLimits) -> Result<Vec<Record>, ReplyError> {
    if bytes.len() > limits.bytes {
        return Err(ReplyError::TooLarge(format!(
            "a reply of {} bytes (limit {})",
            bytes.len(),
            limits.bytes
        )));
    }
    let over = std::cell::Cell::new(None);
    let seed = BatchSeed {
        limits,
        headers: std::cell::Cell::new(0),
        over: &over,
    };
    let mut de = postcard::Deserializer::from_bytes(bytes);
    let batch = match seed.deserialize(&mut de) {
        Ok(b) => b,
        Err(e) => {
            return Err(match over.take() {
                Some(m) => ReplyError::TooLarge(m),
                None => ReplyError::Malformed(e.to_string()),
            });
        }
    };
    let rest = de
        .finalize()
        .map_err(|e| ReplyError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ReplyError::Malformed(format!(
            "{} bytes after the last record",
            rest.len()
        )));
    }
    Ok(batch)
}

/// Check a batch lifted in the list form against `limits`.
pub fn check(batch: &[Record], limits: &ReplyLimits) -> Result<(), String> {
    if batch.len() > limits.records {
        return Err(too_many("records", batch.len(), limits.records));
    }
    let headers: usize = batch.iter().map(|r| r.headers.len()).sum();
    if headers > limits.headers {
        return Err(too_many("headers", headers, limits.headers));
    }
    let bytes: usize = batch
        .iter()
        .map(|r| {
            r.key.as_ref().map_or(0, Vec::len)
                + r.value.len()
                + r.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.len())
                    .sum::<usize>()
        })
        .sum();
    if bytes > limits.bytes {
        return Err(format!(
            "{bytes} bytes of keys, values and headers (limit {})",
            limits.bytes
        ));
    }
    Ok(())
}

fn too_many(what: &str, n: usize, limit: usize) -> String {
    format!("{n} {what} (limit {limit})")
}

/// Deserializes a batch, refusing counts over the limits before allocating for them.
struct BatchSeed<'a> {
    limits: &'a ReplyLimits,
    headers: std::cell::Cell<usize>,
    /// Set when a limit (not the format) refused the batch.
    over: &'a std::cell::Cell<Option<String>>,
}

impl BatchSeed<'_> {
    fn refuse<E: serde::de::Error>(&self, message: String) -> E {
        let e = E::custom(&message);
        self.over.set(Some(message));
        e
    }
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Vec<Record>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = Vec<Record>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let n = seq.size_hint().unwrap_or(0);
        if n > self.limits.records {
            return Err(self.refuse(too_many("records", n, self.limits.records)));
        }
        // Every record takes at least 4 bytes, so `n` is also bounded by the reply's length.
        let mut out = Vec::with_capacity(n);
        while let Some(r) = seq.next_element_seed(RecordSeed(&self))? {
            out.push(r);
        }
        Ok(out)
    }
}

struct RecordSeed<'s, 'a>(&'s BatchSeed<'a>);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = Record;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(4, self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = Record;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a record (key, value, timestamp, headers)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let missing = || serde::de::Error::custom("a record ends early");
        let key: Option<serde_bytes::ByteBuf> = seq.next_element()?.ok_or_else(missing)?;
        let value: serde_bytes::ByteBuf = seq.next_element()?.ok_or_else(missing)?;
        let timestamp: Option<i64> = seq.next_element()?.ok_or_else(missing)?;
        let headers = seq
            .next_element_seed(HeadersSeed(self.0))?
            .ok_or_else(missing)?;
        Ok(Record {
            key: key.map(serde_bytes::ByteBuf::into_vec),
            value: value.into_vec(),
            timestamp,
            headers,
        })
    }
}

struct HeadersSeed<'s, 'a>(&'s BatchSeed<'a>);

impl<'de> DeserializeSeed<'de> for HeadersSeed<'_, '_> {
    type Value = Vec<Header>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for HeadersSeed<'_, '_> {
    type Value = Vec<Header>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence of headers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let n = seq.size_hint().unwrap_or(0);
        let total = self.0.headers.get().saturating_add(n);
        if total > self.0.limits.headers {
            return Err(self.0.refuse(format!(
                "more than {} headers (limit {})",
                self.0.limits.headers, self.0.limits.headers
            )));
        }
        self.0.headers.set(total);
        let mut out = Vec::with_capacity(n);
        while let Some((key, value)) = seq.next_element::<(String, serde_bytes::ByteBuf)>()? {
            out.push(Header {
                key,
                value: value.into_vec(),
            });
        }
        Ok(out)
    }
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
        assert_eq!(
            plain(&decode(&bytes, &ReplyLimits::default()).unwrap()),
            plain(&batch)
        );
        assert!(
            decode(&encode(&[], Vec::new()), &ReplyLimits::default())
                .unwrap()
                .is_empty()
        );
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

    fn malformed(bytes: &[u8]) -> String {
        match decode(bytes, &ReplyLimits::default()) {
            Err(ReplyError::Malformed(m)) => m,
            other => panic!(
                "expected a malformed batch, got {:?}",
                other.map(|b| b.len())
            ),
        }
    }

    fn too_large(bytes: &[u8], limits: ReplyLimits) -> String {
        match decode(bytes, &limits) {
            Err(ReplyError::TooLarge(m)) => m,
            other => panic!("expected a refused batch, got {:?}", other.map(|b| b.len())),
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let bytes = encode(&sample(), Vec::new());
        malformed(&bytes[..bytes.len() - 1]);
        // A length far beyond the input must fail, not allocate it.
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0x0f], &ReplyLimits::default()).is_err());
        malformed(&[1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(malformed(&trailing).contains("after the last record"));
    }

    #[test]
    fn replies_over_the_limits_are_refused_before_allocating() {
        let empty = Record {
            key: None,
            value: Vec::new(),
            timestamp: None,
            headers: Vec::new(),
        };
        let many: Vec<Record> = (0..1000).map(|_| empty.clone()).collect();
        let bytes = encode(&many, Vec::new());
        let limits = ReplyLimits {
            records: 999,
            ..ReplyLimits::default()
        };
        assert_eq!(too_large(&bytes, limits), "1000 records (limit 999)");
        assert_eq!(decode(&bytes, &ReplyLimits::default()).unwrap().len(), 1000);
        // 12.5 M empty records fit in 50 MB; they are refused by their count prefix alone.
        let mut claim = Vec::new();
        let mut n: u32 = 12_500_000;
        while n >= 0x80 {
            claim.push((n as u8) | 0x80);
            n >>= 7;
        }
        claim.push(n as u8);
        claim.resize(claim.len() + 4 * 12_500_000, 0);
        assert!(too_large(&claim, ReplyLimits::default()).contains("12500000 records"));
        let headers = vec![Record {
            headers: (0..10)
                .map(|i| Header {
                    key: format!("h{i}"),
                    value: Vec::new(),
                })
                .collect(),
            ..empty.clone()
        }];
        let limits = ReplyLimits {
            headers: 9,
            ..ReplyLimits::default()
        };
        too_large(&encode(&headers, Vec::new()), limits);
        assert!(check(&headers, &limits).is_err());
        let limits = ReplyLimits {
            bytes: 3,
            ..ReplyLimits::default()
        };
        too_large(&encode(&headers, Vec::new()), limits);
    }
}
