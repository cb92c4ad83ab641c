//! Test guest: an operator that misbehaves on purpose, to prove the host contains it.
//!
//! Config `mode`: `panic` (panics), `spin` (loops forever), `hog` (allocates without bound),
//! `fail` (returns an error), `on-value` (a record whose value is `fail` or `hog` does that, as
//! the C, Python and JavaScript guests in tests/lang-guests do), `read` (reads the file at config `path` into one record), `write`
//! (writes the file at config `path`), or `pass`.
//! It passes `after` records through first. With `once_marker = <guest path>` it misbehaves only
//! if that file does not exist yet, and creates it first: a fault that happens once, mid-stream.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Operator, Record, Result, bail, operator};

#[derive(Serialize, Deserialize)]
struct Misbehave {
    mode: String,
    after: u64,
    seen: u64,
    path: Option<String>,
    once_marker: Option<String>,
}

impl Misbehave {
    fn misbehave(&mut self) -> Result<Vec<Record>> {
        if let Some(marker) = &self.once_marker {
            if std::fs::metadata(marker).is_ok() {
                return Ok(Vec::new());
            }
            std::fs::write(marker, b"tripped")?;
        }
        match self.mode.as_str() {
            "panic" => panic!("misbehave: deliberate panic after {} records", self.seen),
            "spin" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "fail" => bail!("misbehave: deliberate error after {} records", self.seen),
            "write" => {
                let path = self.path.as_deref().unwrap_or("/tmp/weir-misbehave");
                std::fs::write(path, b"scribble")
                    .map_err(|e| weir_sdk::anyhow!("writing {path} was refused: {e}"))?;
                Ok(Vec::new())
            }
            "read" => {
                let path = self.path.as_deref().unwrap_or("/etc/passwd");
                let text = std::fs::read(path)
                    .map_err(|e| weir_sdk::anyhow!("reading {path} was refused: {e}"))?;
                Ok(vec![Record::new(text)])
            }
            _ => Ok(Vec::new()),
        }
    }
}

#[operator]
impl Operator for Misbehave {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(Misbehave {
            mode: config.get("mode").unwrap_or("pass").to_owned(),
            after: config.parse_or("after", 0u64)?,
            seen: 0,
            path: config.get("path").map(str::to_owned),
            once_marker: config.get("once_marker").map(str::to_owned),
        })
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(batch.len());
        for record in batch {
            if self.mode == "on-value" {
                match record.value.as_slice() {
                    b"fail" => bail!("asked to fail by the input"),
                    b"hog" => {
                        self.mode = "hog".into();
                        self.misbehave()?;
                    }
                    _ => {}
                }
            } else if self.seen == self.after {
                out.extend(self.misbehave()?);
            }
            self.seen += 1;
            out.push(record);
        }
        Ok(out)
    }
}
