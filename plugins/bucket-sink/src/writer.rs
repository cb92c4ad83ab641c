//! Writing one part file: line or length-prefixed records, optionally gzip.
//!
//! Invariant: after `checkpoint()` the file ends on a whole record (and, with gzip, on a whole
//! gzip member), so truncating it back to that length on restore leaves a valid file.

use flate2::Compression;
use flate2::write::GzEncoder;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use weir_sdk::Result;

/// How a record is laid out in a part file.
#[derive(Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The value as UTF-8 and a newline.
    #[default]
    Line,
    /// A 4-byte big-endian length, then the value bytes.
    LengthPrefixed,
}

enum Out {
    Plain(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

/// An open in-progress part file.
pub struct PartWriter {
    out: Option<Out>,
    format: Format,
    gzip: bool,
    /// Written to since the last `checkpoint()`.
    dirty: bool,
}

impl PartWriter {
    /// Open `path` for appending (creating it).
    pub fn open(path: &Path, format: Format, gzip: bool) -> Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let buf = BufWriter::with_capacity(128 * 1024, file);
        let out = if gzip {
            Out::Gzip(GzEncoder::new(buf, Compression::default()))
        } else {
            Out::Plain(buf)
        };
        Ok(PartWriter {
            out: Some(out),
            format,
            gzip,
            dirty: false,
        })
    }

    /// Append one record; returns the bytes it added before compression.
    pub fn write(&mut self, value: &[u8]) -> Result<u64> {
        self.dirty = true;
        let w: &mut dyn Write = match self.out.as_mut().expect("open") {
            Out::Plain(w) => w,
            Out::Gzip(w) => w,
        };
        match self.format {
            Format::Line => {
                w.write_all(value)?;
                w.write_all(b"\n")?;
                Ok(value.len() as u64 + 1)
            }
            Format::LengthPrefixed => {
                w.write_all(&(value.len() as u32).to_be_bytes())?;
                w.write_all(value)?;
                Ok(value.len() as u64 + 4)
            }
        }
    }

    /// Make everything written so far durable and self-contained (a gzip member ends here);
    /// returns the file's length, the point a restore truncates back to.
    pub fn checkpoint(&mut self) -> Result<u64> {
        if !self.dirty && self.gzip {
            // An empty gzip member is valid but useless: keep the open (unused) encoder.
            let len = match self.out.as_ref().expect("open") {
                Out::Gzip(w) => w.get_ref().get_ref().metadata()?.len(),
                Out::Plain(w) => w.get_ref().metadata()?.len(),
            };
            return Ok(len);
        }
        self.dirty = false;
        let file = self.close_inner()?;
        let len = file.metadata()?.len();
        let buf = BufWriter::with_capacity(128 * 1024, file);
        self.out = Some(if self.gzip {
            Out::Gzip(GzEncoder::new(buf, Compression::default()))
        } else {
            Out::Plain(buf)
        });
        Ok(len)
    }

    /// Finish and sync the file for good.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()?;
        Ok(())
    }

    fn close_inner(&mut self) -> Result<File> {
        let buf = match self.out.take().expect("open") {
            Out::Plain(w) => w,
            Out::Gzip(w) => w.finish()?,
        };
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file)
    }
}
