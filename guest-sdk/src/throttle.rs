//! A records-per-second throttle for sources (config `rate`), so demos and tests run at a
//! predictable pace whatever the machine.
//!
//! Invariant: over any run, a throttled source emits at most `rate × elapsed + one batch`;
//! it never blocks the host: when ahead of its rate it asks for fewer records (possibly none).

use std::time::Instant;

/// Limits how many records a source may emit so far.
#[derive(Debug, Default)]
pub struct Throttle {
    rate: Option<u64>,
    started: Option<Instant>,
    emitted: u64,
}

impl Throttle {
    /// `rate` records per second; `None` or 0: unlimited.
    pub fn new(rate: Option<u64>) -> Self {
        Throttle {
            rate: rate.filter(|r| *r > 0),
            started: None,
            emitted: 0,
        }
    }

    /// How many records may be emitted now, at most `max`.
    pub fn allowance(&mut self, max: usize) -> usize {
        let Some(rate) = self.rate else { return max };
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        let slice = (rate / 100).max(1) as usize; // about 10 ms worth at a time
        (due.saturating_sub(self.emitted) as usize)
            .min(max)
            .min(slice)
    }

    /// Record that `n` records were emitted.
    pub fn emitted(&mut self, n: usize) {
        self.emitted += n as u64;
    }
}
