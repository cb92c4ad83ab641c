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

/// The longest line the built-in line sources accept unless `max_line` says otherwise.
pub const DEFAULT_MAX_LINE: u64 = 8 << 20;

/// A read stops taking lines once it holds this many bytes (one longer line still comes
/// whole), so a batch of long lines cannot outgrow the plugin's memory.
pub const BATCH_BYTES: u64 = 4 << 20;

/// Why a read of lines failed.
#[derive(Debug)]
pub enum LineError {
    Io(std::io::Error),
    /// A line runs past `limit` bytes without a newline; it starts `start` bytes after
    /// where this read began.
    TooLong {
        start: u64,
        limit: u64,
    },
}

impl From<std::io::Error> for LineError {
    fn from(e: std::io::Error) -> Self {
        LineError::Io(e)
    }
}

impl LineError {
    /// The error a source reports: for a long line, naming `path`, the line's byte offset
    /// (`base`: where this read began in the file) and the `max_line` option.
    pub fn explain(self, path: &str, base: u64) -> anyhow::Error {
        match self {
            LineError::Io(e) => anyhow::anyhow!("cannot read {path}: {e}"),
            LineError::TooLong { start, limit } => anyhow::anyhow!(
                "{path}: the line at byte offset {} is longer than max_line ({limit} bytes) and has no newline within it. Raise `max_line` in the node's config (and `memory` on the node if the lines are really that long), or fix the file",
                base + start
            ),
        }
    }
}

/// Read up to `max` lines from `input`, none longer than `max_line` bytes (without its
/// terminator), stopping early once the lines hold [`BATCH_BYTES`].
pub fn read_lines(input: &mut impl BufRead, max: usize, max_line: u64) -> Result<Lines, LineError> {
    let mut records = Vec::with_capacity(max.min(4096));
    let mut starts = Vec::with_capacity(max.min(4096));
    let mut consumed = 0u64;
    let mut at_end = false;
    while records.len() < max && consumed < BATCH_BYTES {
        let Some((mut line, n)) = read_line(input, max_line, consumed)? else {
            at_end = true;
            break;
        };
        starts.push(consumed);
        consumed += n;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        records.push(Record::new(line));
    }
    Ok(Lines {
        records,
        starts,
        consumed,
        at_end,
    })
}

/// One line with its terminator and the bytes it took, or `None` at the end of the input. A
/// line is never held past `max_line` bytes: reading stops there with an error. `start`: where
/// the line begins, counted from where the read began.
fn read_line(
    input: &mut impl BufRead,
    max_line: u64,
    start: u64,
) -> Result<Option<(Vec<u8>, u64)>, LineError> {
    let mut line = Vec::new();
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if available.is_empty() {
            let n = line.len() as u64;
            return Ok((n > 0).then_some((line, n)));
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        // The line's length so far without its terminator: a `\r` that ends what is here
        // may be the start of one.
        let through = &available[..take - usize::from(done)];
        let last = through.last().or(line.last()).copied();
        let content = (line.len() + through.len()) as u64 - u64::from(last == Some(b'\r'));
        if content > max_line {
            return Err(LineError::TooLong {
                start,
                limit: max_line,
            });
        }
        line.extend_from_slice(&available[..take]);
        input.consume(take);
        if done {
            let n = line.len() as u64;
            return Ok(Some((line, n)));
        }
    }
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
        let first = read_lines(&mut input, 2, DEFAULT_MAX_LINE).unwrap();
        assert_eq!(first.records.len(), 2);
        assert_eq!(first.records[0].value, b"one");
        assert_eq!(first.consumed, 9);
        assert_eq!(first.starts, vec![0, 5]);
        assert!(!first.at_end);
        let rest = read_lines(&mut input, 10, DEFAULT_MAX_LINE).unwrap();
        assert_eq!(rest.records[0].value, b"three");
        assert_eq!(rest.consumed, 5);
        assert!(rest.at_end);
    }

    #[test]
    fn coordinates_name_the_file_and_each_line_start() {
        let mut input = std::io::Cursor::new(b"one\ntwo\n".to_vec());
        let mut lines = read_lines(&mut input, 2, DEFAULT_MAX_LINE).unwrap();
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

    #[test]
    fn a_line_past_max_line_is_refused_where_it_starts() {
        // Read through a small buffer, so the long line spans several fills.
        let text = b"ok\r\n12345\r\n123456\nlast".to_vec();
        let mut input = std::io::BufReader::with_capacity(2, std::io::Cursor::new(text));
        let lines = read_lines(&mut input, 2, 5).unwrap();
        assert_eq!(lines.records[1].value, b"12345", "exactly max_line is fine");
        assert_eq!(lines.consumed, 11);
        match read_lines(&mut input, 10, 5) {
            Err(LineError::TooLong { start: 0, limit: 5 }) => {}
            other => panic!("expected TooLong at 0, got {:?}", other.map(|l| l.consumed)),
        }
        let message = LineError::TooLong { start: 3, limit: 5 }
            .explain("/in/a.txt", 11)
            .to_string();
        assert!(message.contains("/in/a.txt") && message.contains("byte offset 14"));
        assert!(message.contains("max_line"));
    }

    #[test]
    fn a_read_stops_after_its_byte_budget() {
        let line = vec![b'x'; 1 << 20];
        let mut text = Vec::new();
        for _ in 0..6 {
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
        let mut input = std::io::Cursor::new(text);
        let lines = read_lines(&mut input, 100, DEFAULT_MAX_LINE).unwrap();
        assert_eq!(lines.records.len(), 4);
        assert!(!lines.at_end);
    }
}
