//! Test guest: a sink whose first `prepare` stalls for `stall_ms` (config), to prove that a
//! checkpoint that cannot complete in time fails on its own while the job goes on.
//! With `fail_commit_marker` (a guest path) its first `commit` fails (and creates the marker);
//! with `commit_log` (a guest path) it appends `commit <id>` for every commit that succeeds.
//! It counts what it is given and publishes nothing else.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Record, Result, Sink, sink};

#[derive(Serialize, Deserialize)]
struct StallSink {
    seen: u64,
    stall_ms: u64,
    fail_commit_marker: Option<String>,
    commit_log: Option<String>,
    #[serde(skip)]
    stalled: bool,
}

#[sink]
impl Sink for StallSink {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(StallSink {
            seen: 0,
            stall_ms: config.parse_or("stall_ms", 2000u64)?,
            fail_commit_marker: config.get("fail_commit_marker").map(str::to_owned),
            commit_log: config.get("commit_log").map(str::to_owned),
            stalled: false,
        })
    }

    fn write(&mut self, batch: Vec<Record>) -> Result<()> {
        self.seen += batch.len() as u64;
        Ok(())
    }

    fn prepare(&mut self, checkpoint: u64) -> Result<()> {
        if !self.stalled {
            self.stalled = true;
            weir_sdk::info!("stalling prepare({checkpoint}) for {} ms", self.stall_ms);
            std::thread::sleep(std::time::Duration::from_millis(self.stall_ms));
        }
        Ok(())
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        if let Some(marker) = &self.fail_commit_marker
            && std::fs::metadata(marker).is_err()
        {
            std::fs::write(marker, b"failed once")?;
            weir_sdk::bail!("deliberate failure committing checkpoint {checkpoint}");
        }
        if let Some(log) = &self.commit_log {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            writeln!(f, "commit {checkpoint}")?;
        }
        Ok(())
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let saved: StallSink = weir_sdk::state::decode(state)?;
        self.seen = saved.seen;
        Ok(())
    }
}
