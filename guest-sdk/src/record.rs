//! The record type plugins read and write.
//!
//! Invariant: the serde form of `Vec<Record>` under postcard is the packed batch encoding of
//! `weir:plugin/packed-types` (weir-batch tests the two against each other), so a record kept
//! in state reads back as it was sent.

use serde::{Deserialize, Serialize};

/// One record: optional key, value bytes, optional event time (ms), headers.
///
/// Serialisable, so operators can keep records in their state (windows, joins).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Routing key for `hash` edges.
    #[serde(with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Extra metadata, name and bytes.
    #[serde(with = "headers")]
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Header values as byte strings, not sequences of numbers.
mod headers {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(h: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(h.len()))?;
        for (k, v) in h {
            seq.serialize_element(&(k.as_str(), serde_bytes::Bytes::new(v)))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        let pairs: Vec<(String, serde_bytes::ByteBuf)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().map(|(k, v)| (k, v.into_vec())).collect())
    }
}

impl Record {
    /// A keyless record with this value.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Record {
            value: value.into(),
            ..Record::default()
        }
    }

    /// A record with a key and a value.
    pub fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Record {
            key: Some(key.into()),
            value: value.into(),
            ..Record::default()
        }
    }

    /// An owned copy of a record borrowed from a batch.
    pub fn from_ref(r: &crate::RecordRef) -> Self {
        Record {
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.to_vec(),
            timestamp: r.timestamp,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_vec()))
                .collect(),
        }
    }

    /// Append this record to a batch being built.
    pub fn write_to(&self, out: &mut crate::BatchBuilder) {
        out.push(
            self.key.as_deref(),
            &self.value,
            self.timestamp,
            self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        );
    }

    /// The value as UTF-8, with invalid sequences replaced.
    pub fn value_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }

    /// The bytes a `hash` edge routes this record by, and so the key its keyed state is
    /// scoped to: its key, or its value when it has none.
    pub fn routing_key(&self) -> &[u8] {
        self.key.as_deref().unwrap_or(&self.value)
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}
