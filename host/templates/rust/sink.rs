//! {{name}}: a weir sink. Prints every value to stdout (grant it: grants.stdout = true); counts
//! what it wrote (checkpointed state). At-least-once: a replay after a crash prints again.

use std::io::Write;
use weir_sdk::{Config, Context, Record, Result, Sink, sink};

#[derive(serde::Serialize, serde::Deserialize)]
struct Plugin {
    written: u64,
}

#[sink]
impl Sink for Plugin {
    fn open(_config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(Plugin { written: 0 })
    }

    fn write(&mut self, batch: Vec<Record>) -> Result<()> {
        let mut out = std::io::stdout().lock();
        for r in &batch {
            out.write_all(&r.value)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        self.written += batch.len() as u64;
        Ok(())
    }
}
