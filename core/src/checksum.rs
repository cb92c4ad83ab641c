//! The length and CRC-32 that every stored blob (checkpoint state, savepoint file, piece of
//! keyed state) is written with and checked against when read back.
//!
//! Invariant: bytes are used only when both their length and their CRC-32 match what was
//! recorded when they were written.

/// What a blob was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub len: u64,
    pub crc32: u32,
}

/// Bytes that are not what was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("fails its checksum ({found} bytes, expected {expected})")]
pub struct Mismatch {
    pub found: u64,
    pub expected: u64,
}

impl Checksum {
    /// The checksum of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Checksum {
            len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        }
    }

    /// Whether `bytes` are what this checksum was made of.
    pub fn check(self, bytes: &[u8]) -> Result<(), Mismatch> {
        if Checksum::of(bytes) == self {
            Ok(())
        } else {
            Err(Mismatch {
                found: bytes.len() as u64,
                expected: self.len,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_or_length_fails() {
        let sum = Checksum::of(b"weir state");
        assert!(sum.check(b"weir state").is_ok());
        assert!(sum.check(b"weir statE").is_err());
        let cut = sum.check(b"weir").unwrap_err();
        assert_eq!((cut.found, cut.expected), (4, 10));
        assert_eq!(cut.to_string(), "fails its checksum (4 bytes, expected 10)");
    }
}
