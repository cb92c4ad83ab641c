//! The record type plugins read and write.

/// One record: optional key, value bytes, optional event time (ms), headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Routing key for `hash` edges.
    pub key: Option<Vec<u8>>,
    /// The payload.
    pub value: Vec<u8>,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Extra metadata, name and bytes.
    pub headers: Vec<(String, Vec<u8>)>,
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

    /// The value as UTF-8, with invalid sequences replaced.
    pub fn value_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}
