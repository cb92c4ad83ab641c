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
    /// Where each line starts, in bytes from where this read began.
    pub starts: Vec<u64>,
    /// Bytes of input those lines took.
    pub consumed: u64,
    /// The input ended (no more bytes right now).
    pub at_end: bool,
}

/// Read up to `max` lines from `input`.
pub fn read_lines(input: &mut impl BufRead, max: usize) -> std::io::Result<Lines> {
    let mut records = Vec::with_capacity(max.min(4096));
    let mut starts = Vec::with_capacity(max.min(4096));
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
        starts.push(consumed);
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
        starts,
        consumed,
        at_end,
    })
}

/// Name each record's origin in headers `file.path` and `file.offset` (the byte offset where its
/// line starts): what a source's `with_metadata = true` adds, so a record that later fails an
/// operator can be found in its input. `base` is the file offset the read began at.
pub fn add_coordinates(lines: &mut Lines, path: &str, base: u64) {
    for (record, start) in lines.records.iter_mut().zip(&lines.starts) {
        record
            .headers
            .push(("file.path".into(), path.as_bytes().to_vec()));
        record.headers.push((
            "file.offset".into(),
            (base + start).to_string().into_bytes(),
        ));
    }
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
        assert_eq!(first.starts, vec![0, 5]);
        assert!(!first.at_end);
        let rest = read_lines(&mut input, 10).unwrap();
        assert_eq!(rest.records[0].value, b"three");
        assert_eq!(rest.consumed, 5);
        assert!(rest.at_end);
    }

    #[test]
    fn coordinates_name_the_file_and_each_line_start() {
        let mut input = std::io::Cursor::new(b"one\ntwo\n".to_vec());
        let mut lines = read_lines(&mut input, 2).unwrap();
        add_coordinates(&mut lines, "/in/a.txt", 100);
        let offset = |r: &Record| {
            r.headers
                .iter()
                .find(|(k, _)| k == "file.offset")
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(offset(&lines.records[1]).as_deref(), Some("104"));
        assert_eq!(lines.records[0].headers[0].1, b"/in/a.txt");
    }
}
