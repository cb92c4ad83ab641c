//! The benchmark workload and its native twins: a memory source, the filter+map logic of the
//! built-in `filter-map` plugin written natively, a source of keyed, timestamped records and the
//! SDK's window count run natively, and a discarding sink.
//!
//! Invariant: `filter_map_native` does byte for byte what plugins/filter-map does, and
//! `NativeWindowCount` runs the very `weir_sdk::window` code plugins/bench-window runs in Wasm,
//! so the Wasm and native throughputs compare the same work.

use crate::runtime::{OperatorNode, SinkNode, SourceNode};
use weir_core::NodeError;
use weir_core::batch::{Batch, BatchBuilder};
use weir_core::node::Polled;

/// `n` records: an 8-byte key (or none), a `value_size`-byte value whose first byte is spread
/// uniformly.
pub fn make_records(n: usize, value_size: usize, keys: bool) -> Batch {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut b = BatchBuilder::with_capacity(n * (value_size + 12));
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut value = vec![b'a' + (x % 26) as u8; value_size];
        if let Some(first) = value.first_mut() {
            *first = (x >> 8) as u8;
        }
        let key = (i as u64).to_be_bytes();
        b.push(keys.then_some(&key[..]), &value, None, []);
    }
    b.finish()
}

/// The workload, natively: drop records whose first value byte is a multiple of 4, upper-case
/// the rest, into one output buffer.
pub fn filter_map_native(batch: &Batch) -> Batch {
    let mut out = BatchBuilder::with_capacity(batch.body_len());
    for r in batch {
        if r.value.first().is_some_and(|b| b % 4 != 0) {
            out.push_mapped(&r, |v| v.extend(r.value.iter().map(u8::to_ascii_uppercase)));
        }
    }
    out.finish()
}

/// Emits `total` records, copies of a template batch, a batch at a time.
pub struct MemorySource {
    template: Batch,
    remaining: u64,
}

impl MemorySource {
    pub fn new(template: Batch, total: u64) -> Self {
        MemorySource {
            template,
            remaining: total,
        }
    }
}

impl SourceNode for MemorySource {
    fn poll(&mut self, _max: u32) -> Result<Polled, NodeError> {
        if self.remaining == 0 {
            return Ok(Polled::End);
        }
        let n = (self.template.len() as u64).min(self.remaining) as usize;
        self.remaining -= n as u64;
        if n == self.template.len() {
            return Ok(Polled::Batch(self.template.clone()));
        }
        Ok(Polled::Batch(weir_core::batch::split(&self.template, n).0))
    }
    fn snapshot(&mut self, _checkpoint: u64) -> Result<Vec<u8>, NodeError> {
        Ok(self.remaining.to_le_bytes().to_vec())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        if let Ok(b) = <[u8; 8]>::try_from(state) {
            self.remaining = u64::from_le_bytes(b);
        }
        Ok(())
    }
}

/// [`filter_map_native`] as a runtime operator.
pub struct NativeFilterMap;

impl OperatorNode for NativeFilterMap {
    fn process(&mut self, batch: Batch) -> Result<Batch, NodeError> {
        Ok(filter_map_native(&batch))
    }
    fn on_watermark(&mut self, _ts: i64) -> Result<Batch, NodeError> {
        Ok(Batch::empty())
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
        Ok(Vec::new())
    }
    fn restore(&mut self, _state: &[u8]) -> Result<(), NodeError> {
        Ok(())
    }
}

/// Drops everything; counts nothing (the runtime's metrics count records in).
pub struct DiscardSink;

impl SinkNode for DiscardSink {
    fn write(&mut self, batch: Batch) -> Result<(), NodeError> {
        drop(std::hint::black_box(batch));
        Ok(())
    }
    fn finish(&mut self) -> Result<(), NodeError> {
        Ok(())
    }
    fn prepare(&mut self, _checkpoint: u64) -> Result<(), NodeError> {
        Ok(())
    }
    fn commit(&mut self, _checkpoint: u64) -> Result<(), NodeError> {
        Ok(())
    }
    fn abort(&mut self, _checkpoint: u64) -> Result<(), NodeError> {
        Ok(())
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
        Ok(Vec::new())
    }
    fn restore(&mut self, _state: &[u8]) -> Result<(), NodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_filter_map_drops_a_quarter_and_upper_cases() {
        let records = make_records(10_000, 100, true);
        let out = filter_map_native(&records);
        let kept = out.len() as f64 / records.len() as f64;
        assert!((0.70..0.80).contains(&kept), "kept {kept}");
        assert!(out.iter().all(|r| r.value[0] % 4 != 0));
        assert!(out.iter().all(|r| r.key.is_some_and(|k| k.len() == 8)));
        assert!(
            out.iter()
                .all(|r| r.value[1..].iter().all(|b| b.is_ascii_uppercase()))
        );
    }
}

/// `n` text lines of 8 words each, from a small vocabulary: input for the word-count comparison.
pub fn make_lines(n: usize) -> Batch {
    const WORDS: &[&str] = &[
        "river",
        "weir",
        "stream",
        "water",
        "bends",
        "records",
        "count",
        "barrier",
        "state",
        "sled",
        "wasm",
        "component",
        "host",
        "sink",
        "source",
        "operator",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut b = BatchBuilder::new();
    for _ in 0..n {
        let words: Vec<&str> = (0..8)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                WORDS[(x % WORDS.len() as u64) as usize]
            })
            .collect();
        b.push(None, words.join(" ").as_bytes(), None, []);
    }
    b.finish()
}

/// The word count of examples/wordcount, natively: the baseline for the language comparison.
#[derive(Default)]
pub struct NativeWordCount {
    counts: std::collections::HashMap<String, u64>,
}

impl OperatorNode for NativeWordCount {
    fn process(&mut self, batch: Batch) -> Result<Batch, NodeError> {
        let mut out = BatchBuilder::new();
        for r in &batch {
            let text = String::from_utf8_lossy(r.value);
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let word = word.to_lowercase();
                let count = self.counts.entry(word.clone()).or_insert(0);
                *count += 1;
                let value = format!("{word}\t{count}");
                out.push(Some(word.as_bytes()), value.as_bytes(), None, []);
            }
        }
        Ok(out.finish())
    }
    fn on_watermark(&mut self, _ts: i64) -> Result<Batch, NodeError> {
        Ok(Batch::empty())
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
        Ok(Vec::new())
    }
    fn restore(&mut self, _state: &[u8]) -> Result<(), NodeError> {
        Ok(())
    }
}

/// `total` records over `keys` keys (8-byte big-endian key, 8-byte value), `per_ms` of them per
/// millisecond of event time, in timestamp order.
pub struct KeyedEventSource {
    next: u64,
    total: u64,
    keys: u64,
    per_ms: u64,
    batch: usize,
}

impl KeyedEventSource {
    pub fn new(total: u64, keys: u64, per_ms: u64, batch: usize) -> Self {
        KeyedEventSource {
            next: 0,
            total,
            keys,
            per_ms: per_ms.max(1),
            batch,
        }
    }
}

impl SourceNode for KeyedEventSource {
    fn poll(&mut self, _max: u32) -> Result<Polled, NodeError> {
        if self.next >= self.total {
            return Ok(Polled::End);
        }
        let end = (self.next + self.batch as u64).min(self.total);
        let mut batch = BatchBuilder::with_capacity(self.batch * 24);
        for i in self.next..end {
            let key = (i % self.keys).to_be_bytes();
            let ts = (i / self.per_ms) as i64;
            batch.push(Some(&key), &i.to_le_bytes(), Some(ts), []);
        }
        self.next = end;
        Ok(Polled::Batch(batch.finish()))
    }
    fn snapshot(&mut self, _checkpoint: u64) -> Result<Vec<u8>, NodeError> {
        Ok(self.next.to_le_bytes().to_vec())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        if let Ok(b) = <[u8; 8]>::try_from(state) {
            self.next = u64::from_le_bytes(b);
        }
        Ok(())
    }
}

/// The native window count failed (as a Wasm call's error would be reported).
fn window_failed(e: weir_sdk::Error) -> NodeError {
    NodeError::External {
        node: "window".into(),
        subtask: 0,
        connector: "bench window",
        message: e.to_string(),
    }
}

type NativeWindows = weir_sdk::window::Windows<weir_sdk::window::Count>;

thread_local! {
    /// The native window count of the subtask on this thread: its panes are keyed state,
    /// whose local store (outside a host) is the thread's, as the SDK's clock is.
    static NATIVE_WINDOWS: std::cell::RefCell<Option<NativeWindows>> =
        const { std::cell::RefCell::new(None) };
}

/// plugins/bench-window natively: the same `weir_sdk::window` tumbling count, its timers on the
/// SDK's local clock (which the host's timer service stands in for in Wasm) and its panes in
/// the SDK's local keyed store, both of the subtask's thread.
pub struct NativeWindowCount {
    window_ms: i64,
}

impl NativeWindowCount {
    pub fn new(window_ms: i64) -> Self {
        NativeWindowCount { window_ms }
    }

    /// `f` on this thread's windows, made (on a fresh clock and store) on first use.
    fn with<R>(&self, f: impl FnOnce(&mut NativeWindows) -> R) -> R {
        NATIVE_WINDOWS.with(|w| {
            let mut w = w.borrow_mut();
            let windows = w.get_or_insert_with(|| {
                weir_sdk::time::testing::reset();
                weir_sdk::keyed::testing::reset();
                weir_sdk::window::Windows::tumbling(self.window_ms, weir_sdk::window::Count)
            });
            f(windows)
        })
    }
}

impl OperatorNode for NativeWindowCount {
    fn process(&mut self, batch: Batch) -> Result<Batch, NodeError> {
        let batch = batch
            .iter()
            .map(|r| weir_sdk::Record {
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.to_vec(),
                timestamp: r.timestamp,
                headers: Vec::new(),
            })
            .collect();
        self.with(|w| w.add(batch, |_| ())).map_err(window_failed)?;
        weir_sdk::keyed::testing::end_call();
        Ok(Batch::empty())
    }
    fn on_watermark(&mut self, ts: i64) -> Result<Batch, NodeError> {
        let fired = weir_sdk::time::testing::advance_watermark(ts);
        let mut out = BatchBuilder::new();
        let fired = self.with(|w| w.fire(&fired)).map_err(window_failed)?;
        weir_sdk::keyed::testing::end_call();
        for f in fired {
            out.push(Some(&f.key), &f.value.to_le_bytes(), None, []);
        }
        Ok(out.finish())
    }
    /// The cached keyed writes go to the local store, as the Wasm glue sends them to the host.
    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
        weir_sdk::keyed::testing::flush();
        Ok(Vec::new())
    }
    fn restore(&mut self, _state: &[u8]) -> Result<(), NodeError> {
        Ok(())
    }
}
