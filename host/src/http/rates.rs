//! Rates over the last second, per node and per subtask: records in and out per second, and the
//! share of the second a subtask was busy in its node's code or waiting on a full channel.
//!
//! Invariant: one task samples the job's counters once a second and every reader sees that
//! sample, however many clients ask how often; a new attempt (new counters) starts from zero.

use crate::live::Live;
use crate::metrics::{NodeMetrics, SubtaskMetrics};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the counters are sampled.
const PERIOD: Duration = Duration::from_secs(1);

/// What one subtask (or a whole node) did over the last sample period.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Rate {
    /// Records per second.
    pub rate_in: f64,
    pub rate_out: f64,
    /// Share of the period, 0 to 1 (a node's: the mean over its subtasks).
    pub busy: f64,
    pub backpressure: f64,
}

/// A node's rates and its subtasks'.
#[derive(Clone, Debug, Default)]
pub struct NodeRates {
    pub node: Rate,
    pub subtasks: Vec<Rate>,
}

/// The latest sample, by node uid.
#[derive(Default)]
pub struct Rates {
    table: Mutex<HashMap<String, NodeRates>>,
}

impl Rates {
    pub fn of(&self, uid: &str) -> NodeRates {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .cloned()
            .unwrap_or_default()
    }
}

/// The counters a rate is computed from.
#[derive(Clone, Copy)]
struct Sample {
    records_in: u64,
    records_out: u64,
    busy: Duration,
    backpressured: Duration,
}

impl Sample {
    fn of(m: &SubtaskMetrics) -> Self {
        Sample {
            records_in: m.records_in(),
            records_out: m.records_out(),
            busy: m.busy(),
            backpressured: m.backpressured(),
        }
    }
}

/// One sample: when, of which attempt's counters, and what they held (by node, by subtask).
type Taken = (Instant, Vec<Arc<NodeMetrics>>, Vec<Vec<Sample>>);

/// Sample `live`'s counters every second into `rates`, until aborted.
pub async fn sample(live: Arc<Live>, rates: Arc<Rates>) {
    let mut ticks = tokio::time::interval(PERIOD);
    let mut previous: Option<Taken> = None;
    loop {
        ticks.tick().await;
        let metrics = live.metrics();
        let now = Instant::now();
        let samples: Vec<Vec<Sample>> = metrics
            .iter()
            .map(|m| m.subtasks().iter().map(Sample::of).collect())
            .collect();
        let mut table = HashMap::new();
        if let Some((then, before, old)) = &previous
            && same_attempt(before, &metrics)
        {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            for ((m, new), old) in metrics.iter().zip(&samples).zip(old) {
                let subtasks: Vec<Rate> = new
                    .iter()
                    .zip(old)
                    .map(|(n, o)| Rate {
                        rate_in: n.records_in.saturating_sub(o.records_in) as f64 / secs,
                        rate_out: n.records_out.saturating_sub(o.records_out) as f64 / secs,
                        busy: share(n.busy.saturating_sub(o.busy), secs),
                        backpressure: share(n.backpressured.saturating_sub(o.backpressured), secs),
                    })
                    .collect();
                let count = subtasks.len().max(1) as f64;
                let node = Rate {
                    rate_in: subtasks.iter().map(|r| r.rate_in).sum(),
                    rate_out: subtasks.iter().map(|r| r.rate_out).sum(),
                    busy: subtasks.iter().map(|r| r.busy).sum::<f64>() / count,
                    backpressure: subtasks.iter().map(|r| r.backpressure).sum::<f64>() / count,
                };
                table.insert(m.uid.clone(), NodeRates { node, subtasks });
            }
        }
        *rates.table.lock().unwrap_or_else(|p| p.into_inner()) = table;
        previous = Some((now, metrics, samples));
    }
}

/// Whether two lists of counters are the same attempt's.
fn same_attempt(a: &[Arc<NodeMetrics>], b: &[Arc<NodeMetrics>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

fn share(d: Duration, secs: f64) -> f64 {
    (d.as_secs_f64() / secs).clamp(0.0, 1.0)
}
