//! What a plugin says, made safe to show: its log lines, its stderr, its error and panic
//! messages. Plugin text is data, never terminal control or a forged host line.
//!
//! Invariants: every line from a plugin reaches the host's log escaped (no newline, carriage
//! return, escape sequence or bidirectional override survives), capped in length, attributed to
//! its node (`node[subtask]: ...`), and within the node's line budget; what the budget drops is
//! counted and the count is logged.

use super::bindings::host_log::Level;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use weir_core::text::{MAX_TEXT, escape};

/// How many lines a node's plugins may log: a bucket of `burst` lines refilled at `per_second`.
#[derive(Clone, Copy, Debug)]
pub struct LogRate {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for LogRate {
    fn default() -> Self {
        LogRate {
            per_second: 100,
            burst: 1000,
        }
    }
}

/// The line budget of one node, shared by its subtasks (and their recycled instances).
#[derive(Clone, Debug)]
pub struct LogBudget(Arc<Mutex<Bucket>>);

#[derive(Debug)]
struct Bucket {
    rate: LogRate,
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

impl LogBudget {
    pub fn new(rate: LogRate) -> Self {
        LogBudget(Arc::new(Mutex::new(Bucket {
            rate,
            tokens: rate.burst as f64,
            refilled: Instant::now(),
            dropped: 0,
        })))
    }

    /// Whether one more line may be shown; `Some(n)` first when `n` lines were dropped since the
    /// last one shown.
    fn take(&self) -> (bool, u64) {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.refilled).as_secs_f64() * b.rate.per_second as f64;
        b.tokens = (b.tokens + refill).min(b.rate.burst as f64);
        b.refilled = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            (true, std::mem::take(&mut b.dropped))
        } else {
            b.dropped += 1;
            (false, 0)
        }
    }

    /// Lines dropped and not yet reported; resets the count.
    pub fn take_dropped(&self) -> u64 {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()).dropped)
    }

    fn rate(&self) -> LogRate {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).rate
    }
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget::new(LogRate::default())
    }
}

/// Show one line a plugin of `who` (`node[subtask]`) logged, if the node's budget allows.
pub fn log_line(who: &str, budget: &LogBudget, level: Level, line: &str) {
    // Lines below the shown level cost nothing and use no budget.
    let enabled = match level {
        Level::Trace => tracing::enabled!(target: "weir::plugin", tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(target: "weir::plugin", tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(target: "weir::plugin", tracing::Level::INFO),
        Level::Warn => tracing::enabled!(target: "weir::plugin", tracing::Level::WARN),
        Level::Error => tracing::enabled!(target: "weir::plugin", tracing::Level::ERROR),
    };
    if !enabled {
        return;
    }
    let (show, dropped) = budget.take();
    if dropped > 0 {
        report_dropped(who, budget, dropped);
    }
    if !show {
        return;
    }
    let msg = escape(line, MAX_TEXT);
    match level {
        Level::Trace => tracing::trace!(target: "weir::plugin", "{who}: {msg}"),
        Level::Debug => tracing::debug!(target: "weir::plugin", "{who}: {msg}"),
        Level::Info => tracing::info!(target: "weir::plugin", "{who}: {msg}"),
        Level::Warn => tracing::warn!(target: "weir::plugin", "{who}: {msg}"),
        Level::Error => tracing::error!(target: "weir::plugin", "{who}: {msg}"),
    }
}

/// Say how many lines of `who`'s node the budget dropped.
pub fn report_dropped(who: &str, budget: &LogBudget, dropped: u64) {
    let rate = budget.rate();
    tracing::warn!(
        target: "weir::plugin",
        "{who}: {dropped} log line(s) dropped: the node logged more than {} lines/s (burst {})",
        rate.per_second,
        rate.burst
    );
}

/// Rust's panic note ("run with `RUST_BACKTRACE=1` ..."), which a Wasm guest prints but which
/// the host's environment cannot act on: the host reports the guest's panic and its WebAssembly
/// backtrace itself, so the note would only send the user the wrong way.
fn advice_for_the_host(line: &str) -> bool {
    line.starts_with("note: run with `RUST_BACKTRACE=1`")
}

/// A plugin's standard error as lines in the host's log: bytes are buffered up to a newline (or
/// [`MAX_TEXT`]), then shown as a warning under the node's name.
#[derive(Clone)]
pub struct StderrLines {
    who: Arc<str>,
    budget: LogBudget,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl StderrLines {
    pub fn new(who: &str, budget: LogBudget) -> Self {
        StderrLines {
            who: who.into(),
            budget,
            partial: Arc::default(),
        }
    }

    /// Take `bytes` the plugin wrote.
    pub fn write(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            partial.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") || partial.len() >= MAX_TEXT {
                let line = String::from_utf8_lossy(&partial);
                let line = line.strip_suffix('\n').unwrap_or(&line);
                if !advice_for_the_host(line) {
                    log_line(&self.who, &self.budget, Level::Warn, line);
                }
                partial.clear();
            }
        }
    }

    /// Show what is left without a final newline.
    pub fn flush(&self) {
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        if !partial.is_empty() {
            log_line(
                &self.who,
                &self.budget,
                Level::Warn,
                &String::from_utf8_lossy(&partial),
            );
            partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_panic_note_about_rust_backtrace_is_not_passed_on() {
        assert!(advice_for_the_host(
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
        ));
        assert!(!advice_for_the_host(
            "memory allocation of 134217728 bytes failed"
        ));
        assert!(!advice_for_the_host(
            "note: something the plugin itself says"
        ));
    }

    #[test]
    fn the_budget_drops_and_counts_lines_past_the_burst() {
        let budget = LogBudget::new(LogRate {
            per_second: 0,
            burst: 3,
        });
        let shown: Vec<bool> = (0..10).map(|_| budget.take().0).collect();
        assert_eq!(shown.iter().filter(|s| **s).count(), 3);
        assert_eq!(budget.take_dropped(), 7);
        assert_eq!(budget.take_dropped(), 0);
    }
}
