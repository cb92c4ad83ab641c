//! Built-in `stdout` sink: prints each record's value as one line.
//!
//! Delivery: at-least-once. Lines are printed when written; after a crash the records since the
//! last checkpoint are replayed and printed again.

use serde::{Deserialize, Serialize};
use std::io::Write;
use weir_sdk::{Config, Context, Record, Result, Sink, sink};

#[derive(Serialize, Deserialize)]
struct Stdout {
    /// Prefix each line with the record's key and a tab (config `with_key = true`).
    with_key: bool,
}

#[sink]
impl Sink for Stdout {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            #[serde(default)]
            with_key: bool,
        }
        let Settings { with_key } = config.read()?;
        Ok(Stdout { with_key })
    }

    fn write(&mut self, batch: Vec<Record>) -> Result<()> {
        let mut out = Vec::with_capacity(batch.len() * 32);
        for r in &batch {
            if self.with_key {
                out.extend_from_slice(r.key.as_deref().unwrap_or_default());
                out.push(b'\t');
            }
            out.extend_from_slice(&r.value);
            out.push(b'\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&out)?;
        stdout.flush()?;
        Ok(())
    }
}
