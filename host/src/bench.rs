//! The benchmark workload and its native twins: a memory source, the filter+map logic of the
//! built-in `filter-map` plugin written natively, a source of keyed, timestamped records and the
//! SDK's window count run natively, and a discarding sink.
//!
//! Invariant: `filter_map_native` does byte for byte what plugins/filter-map does, and
//! `NativeWindowCount` runs the very `weir_sdk::window` code plugins/bench-window runs in Wasm,
//! so the Wasm and native throughputs compare the same work.

use crate::plugin::{PluginError, Polled, Record};
use crate::runtime::{OperatorNode, SinkNode, SourceNode};

/// `n` records: an 8-byte key (or none), a `value_size`-byte value whose first byte is spread
/// uniformly.
pub fn make_records(n: usize, value_size: usize, keys: bool) -> Vec<Record> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut value = vec![b'a' + (x % 26) as u8; value_size];
            if let Some(first) = value.first_mut() {
                *first = (x >> 8) as u8;
            }
            Record {
                key: keys.then(|| (i as u64).to_be_bytes().to_vec()),
                value,
                timestamp: None,
                headers: Vec::new(),
            }
        })
        .collect()
}

/// The workload, natively: drop records whose first value byte is a multiple of 4, upper-case
/// the rest.
pub fn filter_map_native(mut batch: Vec<Record>) -> Vec<Record> {
    batch.retain(|r| r.value.first().is_some_and(|b| b % 4 != 0));
    for r in &mut batch {
        r.value.make_ascii_uppercase();
    }
    batch
}

/// Emits `total` records, cloned from a template batch, `batch` at a time.
pub struct MemorySource {
    template: Vec<Record>,
    remaining: u64,
    batch: usize,
}

impl MemorySource {
    pub fn new(template: Vec<Record>, total: u64, batch: usize) -> Self {
        MemorySource {
            template,
            remaining: total,
            batch,
        }
    }
}

impl SourceNode for MemorySource {
    fn poll(&mut self, _max: u32) -> Result<Polled, PluginError> {
        if self.remaining == 0 {
            return Ok(Polled::End);
        }
        let n = (self.batch as u64).min(self.remaining) as usize;
        self.remaining -= n as u64;
        Ok(Polled::Batch(self.template[..n].to_vec()))
    }
    fn snapshot(&mut self, _checkpoint: u64) -> Result<Vec<u8>, PluginError> {
        Ok(self.remaining.to_le_bytes().to_vec())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        if let Ok(b) = <[u8; 8]>::try_from(state) {
            self.remaining = u64::from_le_bytes(b);
        }
        Ok(())
    }
}

/// [`filter_map_native`] as a runtime operator.
pub struct NativeFilterMap;

impl OperatorNode for NativeFilterMap {
    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>, PluginError> {
        Ok(filter_map_native(batch))
    }
    fn on_watermark(&mut self, _ts: i64) -> Result<Vec<Record>, PluginError> {
        Ok(Vec::new())
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        Ok(Vec::new())
    }
    fn restore(&mut self, _state: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Drops everything; counts nothing (the runtime's metrics count records in).
pub struct DiscardSink;

impl SinkNode for DiscardSink {
    fn write(&mut self, batch: Vec<Record>) -> Result<(), PluginError> {
        drop(std::hint::black_box(batch));
        Ok(())
    }
    fn finish(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
    fn prepare(&mut self, _checkpoint: u64) -> Result<(), PluginError> {
        Ok(())
    }
    fn commit(&mut self, _checkpoint: u64) -> Result<(), PluginError> {
        Ok(())
    }
    fn abort(&mut self, _checkpoint: u64) -> Result<(), PluginError> {
        Ok(())
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        Ok(Vec::new())
    }
    fn restore(&mut self, _state: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_filter_map_drops_a_quarter_and_upper_cases() {
        let records = make_records(10_000, 100, true);
        let out = filter_map_native(records.clone());
        let kept = out.len() as f64 / records.len() as f64;
        assert!((0.70..0.80).contains(&kept), "kept {kept}");
        assert!(out.iter().all(|r| r.value[0] % 4 != 0));
        assert!(
            out.iter()
                .all(|r| r.value[1..].iter().all(|b| b.is_ascii_uppercase()))
        );
    }
}

/// `n` text lines of 8 words each, from a small vocabulary: input for the word-count comparison.
pub fn make_lines(n: usize) -> Vec<Record> {
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
    (0..n)
        .map(|_| {
            let words: Vec<&str> = (0..8)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    WORDS[(x % WORDS.len() as u64) as usize]
                })
                .collect();
            Record {
                key: None,
                value: words.join(" ").into_bytes(),
                timestamp: None,
                headers: Vec::new(),
            }
        })
        .collect()
}

/// The word count of examples/wordcount, natively: the baseline for the language comparison.
#[derive(Default)]
pub struct NativeWordCount {
    counts: std::collections::HashMap<String, u64>,
}

impl OperatorNode for NativeWordCount {
    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>, PluginError> {
        let mut out = Vec::new();
        for r in &batch {
            let text = String::from_utf8_lossy(&r.value);
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                let word = word.to_lowercase();
                let count = self.counts.entry(word.clone()).or_insert(0);
                *count += 1;
                out.push(Record {
                    value: format!("{word}\t{count}").into_bytes(),
                    key: Some(word.into_bytes()),
                    timestamp: None,
                    headers: Vec::new(),
                });
            }
        }
        Ok(out)
    }
    fn on_watermark(&mut self, _ts: i64) -> Result<Vec<Record>, PluginError> {
        Ok(Vec::new())
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        Ok(Vec::new())
    }
    fn restore(&mut self, _state: &[u8]) -> Result<(), PluginError> {
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
    fn poll(&mut self, _max: u32) -> Result<Polled, PluginError> {
        if self.next >= self.total {
            return Ok(Polled::End);
        }
        let end = (self.next + self.batch as u64).min(self.total);
        let batch = (self.next..end)
            .map(|i| Record {
                key: Some((i % self.keys).to_be_bytes().to_vec()),
                value: i.to_le_bytes().to_vec(),
                timestamp: Some((i / self.per_ms) as i64),
                headers: Vec::new(),
            })
            .collect();
        self.next = end;
        Ok(Polled::Batch(batch))
    }
    fn snapshot(&mut self, _checkpoint: u64) -> Result<Vec<u8>, PluginError> {
        Ok(self.next.to_le_bytes().to_vec())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        if let Ok(b) = <[u8; 8]>::try_from(state) {
            self.next = u64::from_le_bytes(b);
        }
        Ok(())
    }
}

/// plugins/bench-window natively: the same `weir_sdk::window` tumbling count, its timers on the
/// SDK's local clock (which the host's timer service stands in for in Wasm).
pub struct NativeWindowCount {
    counts: weir_sdk::window::Windows<weir_sdk::window::Count>,
}

impl NativeWindowCount {
    pub fn new(window_ms: i64) -> Self {
        weir_sdk::time::testing::reset();
        NativeWindowCount {
            counts: weir_sdk::window::Windows::tumbling(window_ms, weir_sdk::window::Count),
        }
    }
}

impl OperatorNode for NativeWindowCount {
    fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>, PluginError> {
        let batch = batch
            .into_iter()
            .map(|r| weir_sdk::Record {
                key: r.key,
                value: r.value,
                timestamp: r.timestamp,
                headers: Vec::new(),
            })
            .collect();
        self.counts
            .add(batch, |_| ())
            .map_err(|e| PluginError::Native {
                node: "window".into(),
                subtask: 0,
                connector: "bench window",
                message: e.to_string(),
            })?;
        Ok(Vec::new())
    }
    fn on_watermark(&mut self, ts: i64) -> Result<Vec<Record>, PluginError> {
        let fired = weir_sdk::time::testing::advance_watermark(ts);
        Ok(self
            .counts
            .fire(&fired)
            .into_iter()
            .map(|f| Record {
                key: Some(f.key),
                value: f.value.to_le_bytes().to_vec(),
                timestamp: None,
                headers: Vec::new(),
            })
            .collect())
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        Ok(Vec::new())
    }
    fn restore(&mut self, _state: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }
}
