//! Writing packed records into one growing buffer.
//!
//! Invariant: the buffer always starts with a 5-byte count slot and holds only whole,
//! well-formed records after it, so [`BatchBuilder::finish`] is a [`Batch`] without a check.
//! Lengths are written shortest but for a value of 16 KiB or more written in place (padded).

use crate::{Batch, RecordRef};

/// Width of a padded varint: enough for any `u32`.
const SLOT: usize = 5;

/// Builds a batch record by record.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    bytes: Vec<u8>,
    len: usize,
}

impl Default for BatchBuilder {
    #[inline]
    fn default() -> Self {
        BatchBuilder::new()
    }
}

impl BatchBuilder {
    #[inline]
    pub fn new() -> Self {
        BatchBuilder::with_capacity(0)
    }

    /// A builder whose buffer holds `bytes` of records before it grows.
    #[inline]
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(SLOT + bytes);
        buf.extend_from_slice(&[0; SLOT]);
        BatchBuilder { bytes: buf, len: 0 }
    }

    /// Continue a finished batch (its buffer reused; a short count re-laid once).
    #[inline]
    pub(crate) fn from_batch(batch: Batch) -> Self {
        let len = batch.len;
        if batch.body == SLOT {
            return BatchBuilder {
                bytes: batch.bytes,
                len,
            };
        }
        let mut b = BatchBuilder::with_capacity(batch.body_len());
        b.bytes.extend_from_slice(&batch.bytes[batch.body..]);
        b.len = len;
        b
    }

    /// Records so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes so far, count included.
    #[inline]
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Drop the records, keep the buffer.
    #[inline]
    pub fn clear(&mut self) {
        self.bytes.truncate(SLOT);
        self.len = 0;
    }

    /// Append a record.
    #[inline]
    pub fn push<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: Option<i64>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        self.head(key);
        self.put_bytes(value);
        self.tail(timestamp);
        self.put_headers(headers);
        self.len += 1;
    }

    /// Append a copy of a record read from another batch, as it is.
    #[inline]
    pub fn push_ref(&mut self, r: &RecordRef) {
        self.bytes.extend_from_slice(r.raw());
        self.len += 1;
    }

    /// Append a record of the same key, timestamp and headers as `r` and a new value, written
    /// in place by `value` (no buffer of its own).
    #[inline]
    pub fn push_mapped(&mut self, r: &RecordRef, value: impl FnOnce(&mut ValueWriter)) {
        self.push_with(r.key, r.timestamp, r.value.len(), value);
        self.put_varint(r.headers.len() as u64);
        self.bytes.extend_from_slice(r.headers.raw());
    }

    /// Append a record without headers whose value is written in place by `value`.
    #[inline]
    pub fn push_value_with(
        &mut self,
        key: Option<&[u8]>,
        timestamp: Option<i64>,
        value: impl FnOnce(&mut ValueWriter),
    ) {
        self.push_with(key, timestamp, 0, value);
        self.bytes.push(0);
    }

    /// Key, value in place, timestamp; the caller writes the headers and counts the record.
    /// The value's length goes in a slot as wide as `hint` (the expected length) needs, so a
    /// value of about that size is written once and never moved.
    #[inline]
    fn push_with(
        &mut self,
        key: Option<&[u8]>,
        timestamp: Option<i64>,
        hint: usize,
        value: impl FnOnce(&mut ValueWriter),
    ) {
        self.head(key);
        let slot = self.bytes.len();
        let guess = width(hint);
        self.bytes.resize(slot + guess, 0);
        let start = self.bytes.len();
        value(&mut ValueWriter {
            bytes: &mut self.bytes,
            start,
        });
        let n = self.bytes.len() - start;
        let fit = width(n);
        if fit != guess {
            // Shortest length for short values, so readers take it in one byte; the value
            // moves once.
            if fit < guess {
                self.bytes.copy_within(start.., slot + fit);
                self.bytes.truncate(slot + fit + n);
            } else {
                self.bytes.resize(slot + fit + n, 0);
                self.bytes.copy_within(start..start + n, slot + fit);
            }
        }
        match fit {
            1 => self.bytes[slot] = n as u8,
            2 => {
                self.bytes[slot] = (n as u8) | 0x80;
                self.bytes[slot + 1] = (n >> 7) as u8;
            }
            _ => padded(
                &mut self.bytes[slot..slot + SLOT],
                u32::try_from(n).expect("a value over 4 GiB"),
            ),
        }
        self.tail(timestamp);
        self.len += 1;
    }

    /// Append every record of `batch`.
    #[inline]
    pub fn extend(&mut self, batch: &Batch) {
        self.bytes.extend_from_slice(&batch.bytes[batch.body..]);
        self.len += batch.len;
    }

    /// The batch built.
    #[inline]
    pub fn finish(mut self) -> Batch {
        let n = u32::try_from(self.len).expect("more than 4 G records in one batch");
        padded(&mut self.bytes[..SLOT], n);
        Batch {
            bytes: self.bytes,
            len: self.len,
            body: SLOT,
        }
    }

    /// The batch built so far; the builder starts again, empty, with a buffer of the same size.
    #[inline]
    pub fn take(&mut self) -> Batch {
        let cap = self.bytes.capacity().saturating_sub(SLOT);
        std::mem::replace(self, BatchBuilder::with_capacity(cap)).finish()
    }

    #[inline]
    fn head(&mut self, key: Option<&[u8]>) {
        match key {
            Some(k) => {
                self.bytes.push(1);
                self.put_bytes(k);
            }
            None => self.bytes.push(0),
        }
    }

    #[inline]
    fn tail(&mut self, timestamp: Option<i64>) {
        match timestamp {
            Some(t) => {
                self.bytes.push(1);
                self.put_varint(((t << 1) ^ (t >> 63)) as u64);
            }
            None => self.bytes.push(0),
        }
    }

    #[inline]
    fn put_headers<'h>(&mut self, headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) {
        let slot = self.bytes.len();
        self.bytes.extend_from_slice(&[0; SLOT]);
        let mut n: u32 = 0;
        for (k, v) in headers {
            self.put_bytes(k.as_bytes());
            self.put_bytes(v);
            n += 1;
        }
        if n < 0x80 {
            // The common case, no headers or a few: one byte, not five.
            self.bytes[slot] = n as u8;
            self.bytes.drain(slot + 1..slot + SLOT);
        } else {
            padded(&mut self.bytes[slot..slot + SLOT], n);
        }
    }

    #[inline]
    fn put_bytes(&mut self, b: &[u8]) {
        self.put_varint(b.len() as u64);
        self.bytes.extend_from_slice(b);
    }

    #[inline]
    fn put_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.bytes.push(v as u8);
    }
}

/// Bytes of the length slot of a value of `n` bytes: its varint up to 16 KiB, padded beyond.
#[inline]
fn width(n: usize) -> usize {
    match n {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        _ => SLOT,
    }
}

/// `n` as a varint of exactly 5 bytes.
#[inline]
fn padded(slot: &mut [u8], n: u32) {
    for (i, b) in slot.iter_mut().enumerate() {
        let bits = ((n >> (7 * i)) & 0x7f) as u8;
        *b = if i < SLOT - 1 { bits | 0x80 } else { bits };
    }
}

/// A value being written in place at the end of a batch's buffer.
pub struct ValueWriter<'b> {
    bytes: &'b mut Vec<u8>,
    start: usize,
}

impl ValueWriter<'_> {
    /// Append bytes to the value.
    #[inline]
    pub fn extend_from_slice(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }

    #[inline]
    pub fn push(&mut self, b: u8) {
        self.bytes.push(b);
    }

    /// The value written so far, to change in place.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Extend<u8> for ValueWriter<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        self.bytes.extend(bytes);
    }
}

impl std::fmt::Write for ValueWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl std::io::Write for ValueWriter<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.extend_from_slice(buf);
        Ok(buf.len())
    }
    #[inline]
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
