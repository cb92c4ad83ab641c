//! Reading newline-delimited records, for line-oriented sources.
//!
//! Invariant: `consumed` counts exactly the bytes of the lines returned (terminators
//! included), so a source that adds it to its offset can seek back to the first line it has
//! not emitted. A last line without a newline is returned once the input ends.

use crate::Record;
use std::io::BufRead;

/// What one [`read_lines`] call got.
pub struct Lines {
    /// One record per line, without its `\n` or `\r\n`.
    pub records: Vec<Record>,
    /// Bytes of input those lines took.
    pub consumed: u64,
    /// The input ended (no more bytes right now).
    pub at_end: bool,
}

/// Read up to `max` lines from `input`.
pub fn read_lines(input: &mut impl BufRead, max: usize) -> std::io::Result<Lines> {
    let mut records = Vec::with_capacity(max.min(4096));
    let mut consumed = 0u64;
    let mut line = Vec::new();
    let mut at_end = false;
    while records.len() < max {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            at_end = true;
            break;
        }
        consumed += n as u64;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        records.push(Record::new(line.clone()));
    }
    Ok(Lines {
        records,
        consumed,
        at_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_offsets_and_the_unterminated_tail() {
        let mut input = std::io::Cursor::new(b"one\r\ntwo\nthree".to_vec());
        let first = read_lines(&mut input, 2).unwrap();
        assert_eq!(first.records.len(), 2);
        assert_eq!(first.records[0].value, b"one");
        assert_eq!(first.consumed, 9);
        assert!(!first.at_end);
        let rest = read_lines(&mut input, 10).unwrap();
        assert_eq!(rest.records[0].value, b"three");
        assert_eq!(rest.consumed, 5);
        assert!(rest.at_end);
    }
}
