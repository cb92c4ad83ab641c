//! Test guest: a sink whose first `prepare` stalls for `stall_ms` (config), to prove that a
//! checkpoint that cannot complete in time fails on its own while the job goes on.
//! It counts what it is given and publishes nothing.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Record, Result, Sink, sink};

#[derive(Serialize, Deserialize)]
struct StallSink {
    seen: u64,
    stall_ms: u64,
    #[serde(skip)]
    stalled: bool,
}

#[sink]
impl Sink for StallSink {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(StallSink {
            seen: 0,
            stall_ms: config.parse_or("stall_ms", 2000u64)?,
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

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let saved: StallSink = weir_sdk::state::decode(state)?;
        self.seen = saved.seen;
        Ok(())
    }
}
