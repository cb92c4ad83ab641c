//! Reading packed records in place: one pass that checks a whole batch ([`validate`]), and the
//! borrowed view of a checked one ([`Iter`], [`RecordRef`]).
//!
//! Invariant: [`Iter`] walks bytes [`validate`] accepted, where its reads cannot fail, or
//! bytes the host sent a guest, where a failed read is a panic, never a wrong record.

use crate::{Error, Limits};

/// Why reading a batch panics: only bytes taken unchecked by [`crate::Batch::from_host`] can.
const UNDECODABLE: &str =
    "the host sent a batch that does not decode (a weir bug: please report it)";

/// One record, borrowed from its batch's buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    /// Event time, ms since the Unix epoch.
    pub timestamp: Option<i64>,
    pub headers: Headers<'a>,
    /// The record's whole encoding, to copy it on unchanged.
    raw: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// The record's encoding, as [`crate::BatchBuilder::push_ref`] copies it.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The bytes a `hash` edge routes this record by (and keyed state is scoped to): its key,
    /// or its value when it has none.
    #[inline]
    pub fn routing_key(&self) -> &'a [u8] {
        self.key.unwrap_or(self.value)
    }

    /// The value as UTF-8, if it is.
    #[inline]
    pub fn value_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }

    /// The first header called `name`.
    #[inline]
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

impl std::fmt::Debug for RecordRef<'_> {
    #[inline]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        f.debug_struct("Record")
            .field("key", &self.key.map(text))
            .field("value", &text(self.value))
            .field("timestamp", &self.timestamp)
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// A record's headers, borrowed: (name, value) pairs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    count: usize,
    bytes: &'a [u8],
}

impl<'a> Headers<'a> {
    #[inline]
    pub fn len(&self) -> usize {
        self.count
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + use<'a> {
        let mut r = Reader {
            bytes: self.bytes,
            pos: 0,
        };
        (0..self.count).map(move |_| {
            let name = r.bytes().expect(UNDECODABLE);
            let value = r.bytes().expect(UNDECODABLE);
            (std::str::from_utf8(name).expect(UNDECODABLE), value)
        })
    }

    /// The headers' encoding (without their count).
    #[inline]
    pub(crate) fn raw(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The records of a checked batch, in order.
pub struct Iter<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iter<'a> {
    #[inline]
    pub(crate) fn new(body: &'a [u8], len: usize) -> Self {
        Iter {
            reader: Reader {
                bytes: body,
                pos: 0,
            },
            left: len,
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = RecordRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(self.reader.record(None).expect(UNDECODABLE))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The record count of `bytes` and where the first record starts, checked only against their
/// length.
pub(crate) fn count(bytes: &[u8]) -> Result<(usize, usize), Error> {
    let mut r = Reader { bytes, pos: 0 };
    let n = r.varint().map_err(|f| Error::Malformed(f.to_string()))?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > (bytes.len() - r.pos) / 4 {
        return Err(Error::Malformed(format!(
            "it claims {n} records in {} bytes",
            bytes.len() - r.pos
        )));
    }
    Ok((n, r.pos))
}

/// Check `bytes` as a whole batch within `limits`; the record count and where the first
/// record starts.
pub(crate) fn validate(bytes: &[u8], limits: &Limits) -> Result<(usize, usize), Error> {
    if bytes.len() > limits.bytes {
        return Err(Error::TooLarge(format!(
            "a batch of {} bytes (limit {})",
            bytes.len(),
            limits.bytes
        )));
    }
    let mut r = Reader { bytes, pos: 0 };
    let n = r.varint().map_err(|f| Error::Malformed(f.to_string()))?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let body = r.pos;
    // Every record takes at least 4 bytes: a count these bytes cannot hold is not a batch
    // (and refused before any record is read); a count they can hold may still be too many.
    if n > (bytes.len() - body) / 4 {
        return Err(Error::Malformed(format!(
            "it claims {n} records in {} bytes",
            bytes.len() - body
        )));
    }
    if n > limits.records {
        return Err(Error::TooLarge(format!(
            "{n} records (limit {})",
            limits.records
        )));
    }
    let mut headers = HeaderBudget {
        left: limits.headers,
        limit: limits.headers,
    };
    for i in 0..n {
        r.record(Some(&mut headers)).map_err(|f| match f {
            Fault::Headers { .. } => Error::TooLarge(f.to_string()),
            _ => Error::Malformed(format!("record {i}: {f}")),
        })?;
    }
    if r.pos != bytes.len() {
        return Err(Error::Malformed(format!(
            "{} bytes after the last record",
            bytes.len() - r.pos
        )));
    }
    Ok((n, body))
}

struct HeaderBudget {
    left: usize,
    limit: usize,
}

/// What is wrong with the bytes: small and `Copy`, so reading returns it cheaply; rendered
/// only when a batch is refused.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Ends,
    Overflow,
    TooLong,
    Length { n: u64, left: usize },
    Tag { what: &'static str, tag: u8 },
    NotUtf8,
    Headers { limit: usize },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Ends => f.write_str("it ends early"),
            Fault::Overflow => f.write_str("a varint overflows 64 bits"),
            Fault::TooLong => f.write_str("a varint runs past 10 bytes"),
            Fault::Length { n, left } => write!(f, "a length of {n} with {left} bytes left"),
            Fault::Tag { what, tag } => write!(f, "{what} has option tag {tag} (0 or 1)"),
            Fault::NotUtf8 => f.write_str("a header name is not UTF-8"),
            Fault::Headers { limit } => write!(f, "more than {limit} headers (limit {limit})"),
        }
    }
}

/// A cursor over encoded bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn byte(&mut self) -> Result<u8, Fault> {
        let b = *self.bytes.get(self.pos).ok_or(Fault::Ends)?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 varint of at most 10 bytes (padding allowed). One byte, the
    /// common case, is read inline.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Fault> {
        match self.bytes.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }

    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, Fault> {
        let mut out: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(Fault::Overflow);
            }
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(Fault::TooLong)
    }

    #[inline(always)]
    fn bytes(&mut self) -> Result<&'a [u8], Fault> {
        let n = self.varint()?;
        let left = self.bytes.len() - self.pos;
        if n > left as u64 {
            return Err(Fault::Length { n, left });
        }
        let n = n as usize;
        let b = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    #[inline(always)]
    fn tag(&mut self, what: &'static str) -> Result<bool, Fault> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(Fault::Tag { what, tag }),
        }
    }

    /// One record; with a budget, header names are checked as UTF-8 and counted against it.
    #[inline(always)]
    fn record(&mut self, budget: Option<&mut HeaderBudget>) -> Result<RecordRef<'a>, Fault> {
        let start = self.pos;
        let key = if self.tag("the key")? {
            Some(self.bytes()?)
        } else {
            None
        };
        let value = self.bytes()?;
        let timestamp = if self.tag("the timestamp")? {
            let z = self.varint()?;
            Some(((z >> 1) as i64) ^ -((z & 1) as i64))
        } else {
            None
        };
        let count = self.varint()?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if let Some(budget) = budget {
            if count > budget.left {
                return Err(Fault::Headers {
                    limit: budget.limit,
                });
            }
            budget.left -= count;
        }
        let at = self.pos;
        for _ in 0..count {
            let name = self.bytes()?;
            if std::str::from_utf8(name).is_err() {
                return Err(Fault::NotUtf8);
            }
            self.bytes()?;
        }
        let headers = Headers {
            count,
            bytes: &self.bytes[at..self.pos],
        };
        Ok(RecordRef {
            key,
            value,
            timestamp,
            headers,
            raw: &self.bytes[start..self.pos],
        })
    }
}
