//! Built-in `file` source: the lines of one file in a directory the pipeline grants
//! (`path`), optionally at most `rate` lines per second. With `with_metadata = true` each record
//! names its origin in headers `file.path` and `file.offset` (where its line starts). A line
//! longer than `max_line` (default 8 MiB) fails the job with its offset, never the plugin's
//! memory.
//!
//! Invariant: its state is the byte offset just past the last line it emitted, so a restored
//! source rewinds to exactly the first line that is not covered by the checkpoint. A final line
//! without a trailing newline is emitted once the end of the file is reached.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use weir_sdk::lines::{DEFAULT_MAX_LINE, add_coordinates, read_lines};
use weir_sdk::throttle::Throttle;
use weir_sdk::{Config, Context, Poll, Result, Source, anyhow, source};

#[derive(Serialize, Deserialize)]
struct FileSource {
    /// Path inside the guest (under a granted directory).
    path: String,
    /// Bytes consumed so far.
    offset: u64,
    /// Only subtask 0 reads; the others end at once.
    reader: bool,
    #[serde(skip)]
    input: Option<BufReader<File>>,
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

impl FileSource {
    fn input(&mut self) -> Result<&mut BufReader<File>> {
        if self.input.is_none() {
            let mut file = File::open(&self.path).map_err(|e| {
                anyhow!(
                    "cannot open {}: {e} (is its directory granted to this node with grants.dirs?)",
                    self.path
                )
            })?;
            let len = file.metadata()?.len();
            if len < self.offset {
                weir_sdk::bail!(
                    "{} has {len} bytes, fewer than the {} this job already read from it: the file was truncated or replaced since the checkpoint, so resuming would skip or repeat lines. Restore the file, or start over with --fresh",
                    self.path,
                    self.offset
                );
            }
            file.seek(SeekFrom::Start(self.offset))?;
            self.input = Some(BufReader::with_capacity(256 * 1024, file));
        }
        Ok(self.input.as_mut().expect("opened above"))
    }
}

#[source]
impl Source for FileSource {
    fn open(config: &Config, ctx: &Context) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            path: String,
            rate: Option<u64>,
            #[serde(default)]
            with_metadata: bool,
            max_line: Option<weir_sdk::config::Size>,
        }
        let s: Settings = config.read()?;
        let mut source = FileSource {
            path: s.path,
            offset: 0,
            reader: ctx.subtask == 0,
            input: None,
            throttle: Throttle::new(s.rate),
            with_metadata: s.with_metadata,
            max_line: s.max_line.map_or(DEFAULT_MAX_LINE, |m| m.0),
        };
        if source.reader {
            source.input()?; // fail at open, not at the first poll, when the file is missing
        }
        Ok(source)
    }

    fn poll(&mut self, max: usize) -> Result<Poll> {
        if !self.reader {
            return Ok(Poll::End);
        }
        let max = self.throttle.allowance(max);
        if max == 0 {
            return Ok(Poll::Idle);
        }
        let max_line = self.max_line;
        let mut lines = read_lines(self.input()?, max, max_line)
            .map_err(|e| e.explain(&self.path, self.offset))?;
        if self.with_metadata {
            add_coordinates(&mut lines, &self.path, self.offset);
        }
        let (batch, consumed) = (lines.records, lines.consumed);
        self.offset += consumed;
        self.throttle.emitted(batch.len());
        if batch.is_empty() {
            return Ok(Poll::End);
        }
        Ok(Poll::Batch(batch))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let saved: FileSource = weir_sdk::state::decode(state)?;
        self.offset = saved.offset;
        self.input = None; // reopened and sought on the next poll
        Ok(())
    }
}
