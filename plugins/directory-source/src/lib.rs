//! Built-in `directory` source: watches a granted directory for files and emits each file's
//! lines once, files in name order, only names matching `pattern` (`*` and `?` wildcards,
//! default `*`). Dot-files are skipped: write a file elsewhere (or as `.name`) and rename it into
//! place, so the source never reads a half-written file.
//!
//! Delivery: exactly-once. Its state is the set of finished files plus the current file and the
//! byte offset just past the last line it emitted, so a restored source rewinds to exactly the
//! first line no checkpoint covers. With `end_when_empty = true` it ends once every file present
//! is read (for batch jobs); otherwise it keeps watching, every `scan_ms` (default 200).
//! `rate` caps it at that many lines per second. With `with_metadata = true` each record names
//! its origin in headers `file.path` and `file.offset` (where its line starts). A line longer
//! than `max_line` (default 8 MiB) fails the job with its file and offset.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weir_sdk::lines::{DEFAULT_MAX_LINE, Lines, add_coordinates, read_lines};
use weir_sdk::throttle::Throttle;
use weir_sdk::{Config, Context, Poll, Result, Source, anyhow, source};

#[derive(Serialize, Deserialize)]
struct DirectorySource {
    dir: PathBuf,
    pattern: String,
    end_when_empty: bool,
    scan_ms: u64,
    reader: bool,
    finished: BTreeSet<String>,
    /// The file being read and the offset past its last emitted line.
    current: Option<(String, u64)>,
    #[serde(skip)]
    input: Option<BufReader<File>>,
    #[serde(skip)]
    next_scan: Option<Instant>,
    /// Config `rate`: at most this many lines per second.
    #[serde(skip)]
    throttle: Throttle,
    /// Config `with_metadata`: add `file.path` and `file.offset` headers.
    #[serde(skip)]
    with_metadata: bool,
    /// Config `max_line`: the longest line accepted, in bytes.
    #[serde(skip)]
    max_line: u64,
}

/// `*` matches any run of characters, `?` any one character.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

impl DirectorySource {
    /// The first file in name order that is neither finished nor hidden and matches the pattern.
    fn next_file(&self) -> Result<Option<String>> {
        let entries = weir_sdk::dir::list(&self.dir).map_err(|e| {
            anyhow!(
                "cannot list {}: {e} (is it granted to this node with grants.dirs?)",
                self.dir.display()
            )
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let name = entry.name;
            if entry.is_file
                && !name.starts_with('.')
                && matches(self.pattern.as_bytes(), name.as_bytes())
                && !self.finished.contains(&name)
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names.into_iter().next())
    }

    fn open_current(&mut self) -> Result<()> {
        if let (None, Some((name, offset))) = (&self.input, &self.current) {
            let path = self.dir.join(name);
            let mut f =
                File::open(&path).map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?;
            f.seek(SeekFrom::Start(*offset))?;
            self.input = Some(BufReader::with_capacity(256 * 1024, f));
        }
        Ok(())
    }
}

#[source]
impl Source for DirectorySource {
    fn open(config: &Config, ctx: &Context) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            path: PathBuf,
            pattern: Option<String>,
            #[serde(default)]
            end_when_empty: bool,
            rate: Option<u64>,
            scan_ms: Option<u64>,
            #[serde(default)]
            with_metadata: bool,
            max_line: Option<weir_sdk::config::Size>,
        }
        let c: Settings = config.read()?;
        let s = DirectorySource {
            dir: c.path,
            pattern: c.pattern.unwrap_or_else(|| "*".into()),
            end_when_empty: c.end_when_empty,
            scan_ms: c.scan_ms.unwrap_or(200),
            reader: ctx.subtask == 0,
            finished: BTreeSet::new(),
            current: None,
            input: None,
            next_scan: None,
            throttle: Throttle::new(c.rate),
            with_metadata: c.with_metadata,
            max_line: c.max_line.map_or(DEFAULT_MAX_LINE, |m| m.0),
        };
        if s.reader {
            s.next_file()?; // fail at open when the directory is not there or not granted
        }
        Ok(s)
    }

    fn poll(&mut self, max: usize) -> Result<Poll> {
        if !self.reader {
            return Ok(Poll::End);
        }
        if self.current.is_none() {
            if self.next_scan.is_some_and(|t| Instant::now() < t) {
                return Ok(Poll::Idle);
            }
            match self.next_file()? {
                Some(name) => self.current = Some((name, 0)),
                None if self.end_when_empty => return Ok(Poll::End),
                None => {
                    self.next_scan = Some(Instant::now() + Duration::from_millis(self.scan_ms));
                    return Ok(Poll::Idle);
                }
            }
        }
        let max = self.throttle.allowance(max);
        if max == 0 {
            return Ok(Poll::Idle);
        }
        self.open_current()?;
        let input = self.input.as_mut().expect("opened above");
        let (name, offset) = self.current.as_mut().expect("set above");
        let mut lines = read_lines(input, max, self.max_line)
            .map_err(|e| e.explain(&self.dir.join(&*name).to_string_lossy(), *offset))?;
        if self.with_metadata {
            let path = self.dir.join(&*name);
            add_coordinates(&mut lines, &path.to_string_lossy(), *offset);
        }
        let Lines {
            records: batch,
            consumed,
            at_end,
            ..
        } = lines;
        *offset += consumed;
        self.throttle.emitted(batch.len());
        if at_end {
            self.finished.insert(std::mem::take(name));
            self.current = None;
            self.input = None;
        }
        Ok(if batch.is_empty() {
            Poll::Idle
        } else {
            Poll::Batch(batch)
        })
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let saved: DirectorySource = weir_sdk::state::decode(state)?;
        self.finished = saved.finished;
        self.current = saved.current;
        self.input = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match() {
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"*.txt", b"a.txt"));
        assert!(!matches(b"*.txt", b"a.csv"));
        assert!(matches(b"part-?.log", b"part-1.log"));
        assert!(!matches(b"part-?.log", b"part-12.log"));
    }
}
