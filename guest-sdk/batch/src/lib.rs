//! The packed batch of `weir:plugin/packed-types`, shared by the host and the Rust SDK: records
//! read borrowed from one buffer ([`Batch`], [`RecordRef`]) and written into one buffer
//! ([`BatchBuilder`]), with no allocation per record on either side.
//!
//! Format: postcard (<https://postcard.jamesmunns.com/wire-format>) of a sequence of records,
//! each `key` (option of bytes), `value` (bytes), `timestamp` (option of a zigzag varint `s64`),
//! `headers` (sequence of (string, bytes)). A varint may be padded with continuation bytes, as
//! postcard's decoder accepts: the builder writes the record count, and a value it writes in
//! place, as 5-byte varints it fills in afterwards.
//!
//! Invariants: the host makes a [`Batch`] only from bytes checked whole (every record, every
//! length, every header name's UTF-8) against [`Limits`] before anything was allocated for
//! them, so reading it cannot fail; a guest takes what the host sent with
//! [`Batch::from_host`], unchecked (the host checked it), where reading panics rather than
//! misread; a [`BatchBuilder`] only writes well-formed records.

mod builder;
mod read;

pub use builder::{BatchBuilder, ValueWriter};
pub use read::{Headers, Iter, RecordRef};

/// The most one batch may hold: checked while the bytes are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub records: usize,
    /// Bytes of the whole encoded batch.
    pub bytes: usize,
    /// Headers of all records together.
    pub headers: usize,
}

impl Limits {
    /// No limit but what the bytes themselves hold.
    pub const NONE: Limits = Limits {
        records: usize::MAX,
        bytes: usize::MAX,
        headers: usize::MAX,
    };
}

/// Why bytes are not a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not the packed encoding.
    Malformed(String),
    /// Well formed so far, but over the [`Limits`].
    TooLarge(String),
}

impl std::fmt::Display for Error {
    #[inline]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Malformed(m) | Error::TooLarge(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// A checked batch of records in the packed encoding, owning its buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct Batch {
    bytes: Vec<u8>,
    /// Records in it.
    len: usize,
    /// Where the first record starts (after the count).
    body: usize,
}

impl Batch {
    /// Check `bytes` whole against `limits` and keep them as a batch.
    #[inline]
    pub fn decode(bytes: Vec<u8>, limits: &Limits) -> Result<Batch, Error> {
        let (len, body) = read::validate(&bytes, limits)?;
        Ok(Batch { bytes, len, body })
    }

    /// Take bytes the host built or checked as a batch, reading only its count: the guest side
    /// of the boundary, where the host is the party that checked them. Bytes that are not a
    /// batch after all end the plugin with a panic at the record that is not, never in a wrong
    /// read. Refuses a count the bytes cannot hold.
    pub fn from_host(bytes: Vec<u8>) -> Result<Batch, Error> {
        let (len, body) = read::count(&bytes)?;
        Ok(Batch { bytes, len, body })
    }

    /// The batch of no records.
    #[inline]
    pub fn empty() -> Batch {
        BatchBuilder::new().finish()
    }

    /// How many records it holds.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded batch, as it crosses the boundary.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded batch as its buffer (what generated bindings take for a `list<u8>`).
    #[inline]
    pub fn as_vec(&self) -> &Vec<u8> {
        &self.bytes
    }

    /// The encoded batch, giving up the buffer.
    #[inline]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Bytes of the records alone (without the count).
    #[inline]
    pub fn body_len(&self) -> usize {
        self.bytes.len() - self.body
    }

    /// The records, borrowed from the buffer.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter::new(&self.bytes[self.body..], self.len)
    }

    /// A builder that appends to this batch's records (its buffer reused).
    #[inline]
    pub fn into_builder(self) -> BatchBuilder {
        BatchBuilder::from_batch(self)
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = RecordRef<'a>;
    type IntoIter = Iter<'a>;
    #[inline]
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::fmt::Debug for Batch {
    #[inline]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for Batch {
    #[inline]
    fn default() -> Self {
        Batch::empty()
    }
}

#[cfg(test)]
mod tests;
