//! Per node and per subtask: records in and out, busy and backpressured time, input queue,
//! watermark, plugin memory; live progress on a terminal, and the end-of-run summary.
//!
//! Invariant: each subtask counts on its own thread with relaxed atomics, once per batch (never
//! per record), so metrics cost nothing measurable on the data path.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters of one node: per subtask, and summed over them.
pub struct NodeMetrics {
    pub uid: String,
    pub parallelism: u32,
    subtasks: Box<[SubtaskMetrics]>,
    /// Poison records skipped or dead-lettered (`on_error`).
    isolated: AtomicU64,
    /// Records that came too late for the node's event-time logic (`<node>.late`).
    late: AtomicU64,
    /// Of those, the ones no node reads `<node>.late` for.
    late_dropped: AtomicU64,
}

/// What one subtask did, as its own thread counts it (relaxed atomics, once per batch).
#[derive(Default)]
pub struct SubtaskMetrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    /// Nanoseconds in the node's own code: plugin calls (for a Wasm node, its Wasm time with
    /// the host calls it makes) or the native connector's work.
    busy_ns: AtomicU64,
    /// Nanoseconds waiting for room in a full downstream channel.
    backpressure_ns: AtomicU64,
    /// Messages waiting in its input channels when it last took one.
    queued: AtomicU64,
    /// The event time its input has reached (sources: that they emitted), ms; `i64::MIN`: none yet.
    watermark: AtomicI64,
    /// The most memory its plugin instance has held, bytes (Wasm nodes).
    memory: AtomicU64,
}

impl SubtaskMetrics {
    pub fn add_in(&self, n: usize) {
        self.records_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_out(&self, n: usize) {
        self.records_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_busy(&self, d: Duration) {
        self.busy_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn add_backpressure(&self, d: Duration) {
        self.backpressure_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn set_queued(&self, n: usize) {
        self.queued.store(n as u64, Ordering::Relaxed);
    }

    pub fn set_watermark(&self, ts: i64) {
        self.watermark.store(ts, Ordering::Relaxed);
    }

    pub fn set_memory(&self, bytes: u64) {
        self.memory.store(bytes, Ordering::Relaxed);
    }

    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    pub fn records_out(&self) -> u64 {
        self.records_out.load(Ordering::Relaxed)
    }

    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    pub fn backpressured(&self) -> Duration {
        Duration::from_nanos(self.backpressure_ns.load(Ordering::Relaxed))
    }

    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// `None` before the first watermark.
    pub fn watermark(&self) -> Option<i64> {
        Some(self.watermark.load(Ordering::Relaxed)).filter(|&t| t > i64::MIN)
    }

    pub fn memory(&self) -> u64 {
        self.memory.load(Ordering::Relaxed)
    }
}

impl NodeMetrics {
    pub fn new(uid: &str, parallelism: u32) -> Self {
        NodeMetrics {
            uid: uid.to_owned(),
            parallelism,
            subtasks: (0..parallelism)
                .map(|_| SubtaskMetrics {
                    watermark: AtomicI64::new(i64::MIN),
                    ..Default::default()
                })
                .collect(),
            isolated: AtomicU64::new(0),
            late: AtomicU64::new(0),
            late_dropped: AtomicU64::new(0),
        }
    }

    /// The counters of subtask `i`.
    pub fn subtask(&self, i: u32) -> &SubtaskMetrics {
        &self.subtasks[i as usize]
    }

    pub fn subtasks(&self) -> &[SubtaskMetrics] {
        &self.subtasks
    }

    pub fn add_isolated(&self, n: u64) {
        if n > 0 {
            self.isolated.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// `n` late records, sent to `<node>.late` or (`dropped`) to no node.
    pub fn add_late(&self, n: usize, dropped: bool) {
        if n > 0 {
            self.late.fetch_add(n as u64, Ordering::Relaxed);
            if dropped {
                self.late_dropped.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    pub fn late_dropped(&self) -> u64 {
        self.late_dropped.load(Ordering::Relaxed)
    }

    pub fn isolated(&self) -> u64 {
        self.isolated.load(Ordering::Relaxed)
    }

    pub fn records_in(&self) -> u64 {
        self.subtasks.iter().map(SubtaskMetrics::records_in).sum()
    }

    pub fn records_out(&self) -> u64 {
        self.subtasks.iter().map(SubtaskMetrics::records_out).sum()
    }

    /// The node's watermark: the least of its subtasks' (`None` until every subtask has one).
    pub fn watermark(&self) -> Option<i64> {
        self.subtasks
            .iter()
            .map(SubtaskMetrics::watermark)
            .collect::<Option<Vec<_>>>()
            .and_then(|w| w.into_iter().min())
    }
}

/// Print records/s per node on stderr once a second until `done` is set.
pub fn spawn_progress(
    metrics: Vec<Arc<NodeMetrics>>,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Vec<u64> = metrics.iter().map(|m| throughput_count(m)).collect();
        let mut at = Instant::now();
        let mut printed = false;
        while !done.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if at.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let secs = at.elapsed().as_secs_f64();
            let parts: Vec<String> = metrics
                .iter()
                .zip(last.iter_mut())
                .map(|(m, prev)| {
                    let now = throughput_count(m);
                    let rate = (now - *prev) as f64 / secs;
                    *prev = now;
                    format!("{} {}/s", m.uid, human(rate))
                })
                .collect();
            at = Instant::now();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", parts.join(" | "));
            let _ = err.flush();
            printed = true;
        }
        if printed {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    })
}

/// The count a node's rate is shown for: records out for sources and operators, in for sinks.
fn throughput_count(m: &NodeMetrics) -> u64 {
    m.records_out().max(m.records_in())
}

/// 1234567.0 → "1.23M"
pub fn human(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// What earlier attempts of one run counted when they handed over at a savepoint (a live
/// swap): nothing of theirs is replayed, so the run's summary adds it to the last attempt's.
#[derive(Default)]
pub struct Carried {
    /// Per node uid: (records in, records out).
    by_node: std::collections::BTreeMap<String, (u64, u64)>,
    elapsed: Duration,
}

impl Carried {
    /// Keep an attempt's counts and time.
    pub fn add(&mut self, metrics: &[Arc<NodeMetrics>], elapsed: Duration) {
        for m in metrics {
            let e = self.by_node.entry(m.uid.clone()).or_default();
            e.0 += m.records_in();
            e.1 += m.records_out();
        }
        self.elapsed += elapsed;
    }

    fn of(&self, uid: &str) -> (u64, u64) {
        self.by_node.get(uid).copied().unwrap_or_default()
    }
}

/// The end-of-run summary: records in/out per node and wall time, with what earlier attempts
/// of the run carried over.
pub fn summary(metrics: &[Arc<NodeMetrics>], elapsed: Duration, carried: &Carried) -> String {
    let elapsed = elapsed + carried.elapsed;
    let width = metrics
        .iter()
        .map(|m| m.uid.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = format!(
        "{:<width$}  {:>12}  {:>12}\n",
        "node", "records in", "records out"
    );
    for m in metrics {
        s.push_str(&format!(
            "{:<width$}  {:>12}  {:>12}\n",
            format!(
                "{}{}",
                m.uid,
                if m.parallelism > 1 {
                    format!(" (x{})", m.parallelism)
                } else {
                    String::new()
                }
            ),
            m.records_in() + carried.of(&m.uid).0,
            m.records_out() + carried.of(&m.uid).1
        ));
    }
    for m in metrics.iter().filter(|m| m.isolated() > 0) {
        s.push_str(&format!(
            "{}: {} poison record(s) skipped or dead-lettered (on_error)\n",
            m.uid,
            m.isolated()
        ));
    }
    for m in metrics.iter().filter(|m| m.late() > 0) {
        let dropped = m.late_dropped();
        s.push_str(&format!(
            "{}: {} late record(s){}\n",
            m.uid,
            m.late(),
            if dropped == 0 {
                format!(" sent to {}.late", m.uid)
            } else {
                format!(
                    ", {dropped} of them dropped: no node reads {}.late (add one with input = \"{}.late\")",
                    m.uid, m.uid
                )
            }
        ));
    }
    s.push_str(&format!("wall time {:.3}s", elapsed.as_secs_f64()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_scales() {
        assert_eq!(human(999.0), "999");
        assert_eq!(human(1500.0), "1.5k");
        assert_eq!(human(5_120_000.0), "5.12M");
    }

    #[test]
    fn summary_lists_every_node() {
        let a = Arc::new(NodeMetrics::new("lines", 1));
        a.subtask(0).add_out(10);
        let b = Arc::new(NodeMetrics::new("count", 2));
        b.subtask(0).add_in(4);
        b.subtask(1).add_in(6);
        b.subtask(1).add_out(7);
        assert_eq!(b.records_in(), 10);
        assert_eq!(b.watermark(), None);
        b.subtask(0).set_watermark(5);
        assert_eq!(b.watermark(), None, "one subtask has no watermark yet");
        b.subtask(1).set_watermark(3);
        assert_eq!(b.watermark(), Some(3));
        let s = summary(
            &[a.clone(), b],
            Duration::from_millis(1500),
            &Carried::default(),
        );
        assert!(s.contains("lines"), "{s}");
        assert!(s.contains("count (x2)"), "{s}");
        assert!(s.contains("wall time 1.500s"), "{s}");
        // An attempt before a swap: its counts and time add up with the last one's.
        let mut carried = Carried::default();
        carried.add(std::slice::from_ref(&a), Duration::from_millis(500));
        let s = summary(&[a], Duration::from_millis(1500), &carried);
        assert!(
            s.lines()
                .any(|l| l.split_whitespace().eq(["lines", "0", "20"])),
            "{s}"
        );
        assert!(s.contains("wall time 2.000s"), "{s}");
    }
}
