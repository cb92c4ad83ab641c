//! The operator `weir bench` measures checkpoint cost with: it passes records through and holds
//! config `bytes` bytes of state, snapshotted whole at every checkpoint. Embedded in the binary
//! for the bench only; pipelines cannot name it (see `builtin::BENCH_STATE`).
//!
//! Invariant: its state is exactly the configured size plus a few bytes of encoding, so the
//! bench's "checkpoint duration by operator state" table means what it says.

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Operator, Record, Result, operator};

#[derive(Serialize, Deserialize)]
struct BenchState {
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
}

#[operator]
impl Operator for BenchState {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            #[serde(default)]
            bytes: usize,
        }
        let Settings { bytes: n } = config.read()?;
        Ok(BenchState {
            state: (0..n).map(|i| i as u8).collect(),
        })
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        Ok(batch)
    }
}
