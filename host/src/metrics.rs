//! Records in and out per node, live progress on a terminal, and the end-of-run summary.
//!
//! Invariant: counting is a relaxed atomic add per batch (never per record), so metrics cost
//! nothing measurable on the data path.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters of one node, summed over its subtasks.
pub struct NodeMetrics {
    pub uid: String,
    pub parallelism: u32,
    records_in: AtomicU64,
    records_out: AtomicU64,
    /// Poison records skipped or dead-lettered (`on_error`).
    isolated: AtomicU64,
    /// Records that came too late for the node's event-time logic (`<node>.late`).
    late: AtomicU64,
    /// Of those, the ones no node reads `<node>.late` for.
    late_dropped: AtomicU64,
}

impl NodeMetrics {
    pub fn new(uid: &str, parallelism: u32) -> Self {
        NodeMetrics {
            uid: uid.to_owned(),
            parallelism,
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            isolated: AtomicU64::new(0),
            late: AtomicU64::new(0),
            late_dropped: AtomicU64::new(0),
        }
    }

    pub fn add_in(&self, n: usize) {
        self.records_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_out(&self, n: usize) {
        self.records_out.fetch_add(n as u64, Ordering::Relaxed);
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
        self.records_in.load(Ordering::Relaxed)
    }

    pub fn records_out(&self) -> u64 {
        self.records_out.load(Ordering::Relaxed)
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

/// The end-of-run summary: records in/out per node and wall time.
pub fn summary(metrics: &[Arc<NodeMetrics>], elapsed: Duration) -> String {
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
            m.records_in(),
            m.records_out()
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
        a.add_out(10);
        let b = Arc::new(NodeMetrics::new("count", 2));
        b.add_in(10);
        b.add_out(7);
        let s = summary(&[a, b], Duration::from_millis(1500));
        assert!(s.contains("lines"), "{s}");
        assert!(s.contains("count (x2)"), "{s}");
        assert!(s.contains("wall time 1.500s"), "{s}");
    }
}
