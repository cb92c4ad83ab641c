//! `weir bench`'s window operator (embedded in the binary, not a built-in pipelines can name):
//! a keyed tumbling event-time count, 1 s windows by default (`window_ms`), one record
//! `key → count (8 bytes LE)` per closed window and key.
//!
//! Invariant: the same `weir_sdk::window` code as the bench's native twin
//! (`weir_host::bench::NativeWindowCount`), so the two throughputs compare the same work.

use serde::{Deserialize, Serialize};
use weir_sdk::window::{Count, Windows};
use weir_sdk::{Config, Context, Operator, Record, Result, Timer, operator};

#[derive(Serialize, Deserialize)]
struct BenchWindow {
    counts: Windows<Count>,
}

#[operator]
impl Operator for BenchWindow {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            window_ms: Option<i64>,
        }
        let Settings { window_ms } = config.read()?;
        Ok(BenchWindow {
            counts: Windows::tumbling(window_ms.unwrap_or(1000), Count),
        })
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        self.counts.add(batch, |_| ())?;
        Ok(Vec::new())
    }

    fn on_timers(&mut self, fired: Vec<Timer>) -> Result<Vec<Record>> {
        Ok(self
            .counts
            .fire(&fired)?
            .into_iter()
            .map(|f| Record::keyed(f.key, f.value.to_le_bytes().to_vec()))
            .collect())
    }
}
