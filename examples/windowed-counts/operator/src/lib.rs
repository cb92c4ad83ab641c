//! Events per user per minute of event time: a keyed, tumbling event-time window count. Each
//! closed window gives one line `<window start ms>\t<user>\t<count>`. The records come keyed by
//! user (`key-by` before a `hash` edge); the windows are keyed state, so the node rescales.
//!
//! Config: `window_ms`, and `allowed_lateness_ms` (default 0); records later than that go to
//! `<node>.late`.

use weir_sdk::window::{Count, Fired, Windows};
use weir_sdk::{Config, Context, Operator, Record, Result, Timer, operator};

#[derive(serde::Serialize, serde::Deserialize)]
struct PerUser {
    counts: Windows<Count>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    window_ms: i64,
    #[serde(default)]
    allowed_lateness_ms: i64,
}

#[operator]
impl Operator for PerUser {
    // Every open window is keyed state: the struct is config, read anew on every start.
    const STATE_IN_STRUCT: bool = false;

    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        let s: Settings = config.read()?;
        let counts = Windows::tumbling(s.window_ms, Count).allowed_lateness(s.allowed_lateness_ms);
        Ok(PerUser { counts })
    }

    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
        Ok(self.counts.add(batch, |_| ())?.iter().map(line).collect())
    }

    fn on_timers(&mut self, fired: Vec<Timer>) -> Result<Vec<Record>> {
        Ok(self.counts.fire(&fired)?.iter().map(line).collect())
    }
}

fn line(w: &Fired<u64>) -> Record {
    Record::new(format!("{}\t{}\t{}", w.window.start, w.key_str(), w.value))
}
