//! One record owned field by field: the form of dead letters, late records and list-form
//! plugins' batches, where the packed [`crate::batch::Batch`] is not at hand.
//!
//! Invariant: the same fields, in the same order, as the WIT contract's `record` and the packed
//! encoding's, so converting between the three keeps everything.

/// One record header: a name and opaque bytes (as in Kafka).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Vec<u8>,
}

/// One record flowing through a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Optional key: `hash` edges route by it; keyless records are routed by value.
    pub key: Option<Vec<u8>>,
    /// The payload, opaque to the host.
    pub value: Vec<u8>,
    /// Event time in ms since the Unix epoch, if the record has one.
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}
