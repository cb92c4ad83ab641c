//! Watermark strategies: where a node's output gets its event time (the record's own
//! timestamp, or a field of its JSON value), and the generator that turns the timestamps seen
//! into watermarks (bounded out-of-orderness, periodic emission, idleness), as Flink's
//! `assignTimestampsAndWatermarks` does.
//!
//! Invariants: a generator's watermark never goes back (also across a restore: its state is in
//! every checkpoint); it is always below every timestamp it will still accept without lateness
//! (`max seen - out_of_orderness - 1`); a record whose timestamp cannot be read is an error that
//! names the node and the record, never a record silently given no time.

use crate::batch::{Batch, BatchBuilder, RecordRef};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Where a record's event time comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimestampFrom {
    /// `record.timestamp` as the producer set it (the Kafka record timestamp, or a plugin's).
    Record,
    /// A field of the record's JSON value (dotted path for nested objects): a number of
    /// milliseconds since the Unix epoch, or an RFC 3339 string.
    Json(Vec<String>),
}

impl TimestampFrom {
    /// Parse `record` or `json:<field>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "record" {
            return Ok(TimestampFrom::Record);
        }
        match text.strip_prefix("json:") {
            Some(path) if !path.is_empty() && path.split('.').all(|p| !p.is_empty()) => Ok(
                TimestampFrom::Json(path.split('.').map(str::to_owned).collect()),
            ),
            _ => Err(format!(
                "{text:?} is not a timestamp source: use \"record\" (the record's own timestamp) or \"json:<field>\" (a field of its JSON value, ms since the epoch or RFC 3339)"
            )),
        }
    }
}

/// A node's watermark strategy (`[node.<uid>.watermarks]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strategy {
    pub timestamp: TimestampFrom,
    /// How far behind the newest timestamp seen a record may still come.
    pub out_of_orderness: Duration,
    /// After this long without records the subtask declares itself idle, so it no longer
    /// holds back the watermark downstream.
    pub idle_timeout: Option<Duration>,
    /// How often the watermark is sent; zero: after every batch.
    pub interval: Duration,
}

/// Default emission interval (Flink's `autoWatermarkInterval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);

/// A record's event time could not be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "node `{node}`: a record has no usable event time: {why} (the value begins: {start}); fix the input or the node's `watermarks.timestamp`"
)]
pub struct TimestampError {
    pub node: String,
    pub why: String,
    pub start: String,
}

/// What the generator asks its subtask to send.
#[derive(Debug, PartialEq, Eq)]
pub enum Emit {
    Watermark(i64),
    Idle,
}

/// What a generator keeps in checkpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorState {
    /// Newest timestamp seen (`i64::MIN`: none yet).
    pub max_seen: i64,
    /// Newest watermark sent.
    pub emitted: i64,
}

/// Turns the timestamps of one subtask's output into watermarks. Without a strategy it only
/// passes on the watermarks its node emits itself ([`Generator::offer`]).
pub struct Generator {
    node: String,
    strategy: Option<Strategy>,
    state: GeneratorState,
    last_emit: Instant,
    last_record: Instant,
    idle: bool,
}

impl Generator {
    pub fn new(node: &str, strategy: Option<Strategy>) -> Self {
        let now = Instant::now();
        Generator {
            node: node.to_owned(),
            strategy,
            state: GeneratorState {
                max_seen: i64::MIN,
                emitted: i64::MIN,
            },
            last_emit: now,
            last_record: now,
            idle: false,
        }
    }

    pub fn state(&self) -> GeneratorState {
        self.state
    }

    /// Its state, if it has seen or sent any time (what a checkpoint needs to keep).
    pub fn checkpoint(&self) -> Option<GeneratorState> {
        (self.state.max_seen > i64::MIN || self.state.emitted > i64::MIN).then_some(self.state)
    }

    /// Resume from a checkpoint: the watermark continues where it was.
    pub fn restore(&mut self, state: GeneratorState) {
        self.state = state;
    }

    /// Give every record of `batch` its event time and note the newest. The batch comes back
    /// as it was when the records carry their time; rewritten when it comes from their values.
    pub fn observe(&mut self, batch: Batch) -> Result<Batch, TimestampError> {
        let Some(strategy) = &self.strategy else {
            return Ok(batch);
        };
        if batch.is_empty() {
            return Ok(batch);
        }
        let mut max = self.state.max_seen;
        let out = match &strategy.timestamp {
            TimestampFrom::Record => {
                for r in &batch {
                    let ts = r.timestamp.ok_or_else(|| {
                        self.error(
                            &r,
                            "it carries no timestamp (timestamp = \"record\")".into(),
                        )
                    })?;
                    max = max.max(ts);
                }
                batch
            }
            TimestampFrom::Json(path) => {
                let mut out = BatchBuilder::with_capacity(batch.body_len() + 10 * batch.len());
                for r in &batch {
                    let ts = json_timestamp(r.value, path).map_err(|why| self.error(&r, why))?;
                    max = max.max(ts);
                    out.push(r.key, r.value, Some(ts), r.headers.iter());
                }
                out.finish()
            }
        };
        self.state.max_seen = max;
        self.last_record = Instant::now();
        self.idle = false;
        Ok(out)
    }

    fn error(&self, r: &RecordRef, why: String) -> TimestampError {
        let end = r.value.len().min(80);
        TimestampError {
            node: self.node.clone(),
            why,
            // Input text is data: control characters escaped, as a plugin's text is.
            start: crate::text::escape(&String::from_utf8_lossy(&r.value[..end]), 120),
        }
    }

    /// The watermark the timestamps seen so far allow.
    pub fn current(&self) -> i64 {
        let Some(strategy) = &self.strategy else {
            return self.state.emitted;
        };
        if self.state.max_seen == i64::MIN {
            return i64::MIN;
        }
        let ooo = i64::try_from(strategy.out_of_orderness.as_millis()).unwrap_or(i64::MAX);
        self.state.max_seen.saturating_sub(ooo).saturating_sub(1)
    }

    /// What to send now, if anything: a watermark once per interval when it advanced, or the
    /// news that the subtask went idle.
    pub fn poll(&mut self, now: Instant) -> Option<Emit> {
        let strategy = self.strategy.as_ref()?;
        if !self.idle
            && let Some(timeout) = strategy.idle_timeout
            && now.duration_since(self.last_record) >= timeout
        {
            // What was seen is out first, so downstream does not wait for it.
            let wm = self.current();
            if wm > self.state.emitted {
                self.state.emitted = wm;
                self.last_emit = now;
                return Some(Emit::Watermark(wm));
            }
            self.idle = true;
            return Some(Emit::Idle);
        }
        if now.duration_since(self.last_emit) < strategy.interval {
            return None;
        }
        let wm = self.current();
        if wm <= self.state.emitted {
            return None;
        }
        self.state.emitted = wm;
        self.last_emit = now;
        Some(Emit::Watermark(wm))
    }

    /// A watermark the node emitted itself (a source that knows its event time): sent when it
    /// is newer than any sent before.
    pub fn offer(&mut self, ts: i64) -> Option<i64> {
        (ts > self.state.emitted).then(|| {
            self.state.emitted = ts;
            ts
        })
    }

    /// The next instant [`Generator::poll`] may have something to send.
    pub fn deadline(&self) -> Option<Instant> {
        let strategy = self.strategy.as_ref()?;
        let emit =
            (self.current() > self.state.emitted).then(|| self.last_emit + strategy.interval);
        let idle = match (self.idle, strategy.idle_timeout) {
            (false, Some(t)) => Some(self.last_record + t),
            _ => None,
        };
        match (emit, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the node has a strategy: its output watermarks are its own, not its input's.
    pub fn assigns(&self) -> bool {
        self.strategy.is_some()
    }
}

/// The event time in the JSON `value` at `path`: an integer of ms since the epoch, or an
/// RFC 3339 string.
fn json_timestamp(value: &[u8], path: &[String]) -> Result<i64, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| format!("the value is not JSON ({e})"))?;
    let mut at = &doc;
    for part in path {
        at = at
            .get(part)
            .ok_or_else(|| format!("it has no field `{}`", path.join(".")))?;
    }
    match at {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or_else(|| format!("`{}` = {n} is out of range", path.join("."))),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| format!("`{}` = {s:?} is not RFC 3339 ({e})", path.join("."))),
        other => Err(format!(
            "`{}` = {other} is neither ms since the epoch nor an RFC 3339 string",
            path.join(".")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: &str, ts: Option<i64>) -> Batch {
        batch(&[(value, ts)])
    }

    fn batch(records: &[(&str, Option<i64>)]) -> Batch {
        let mut b = BatchBuilder::new();
        for (v, ts) in records {
            b.push(None, v.as_bytes(), *ts, []);
        }
        b.finish()
    }

    fn strategy(from: &str, ooo_ms: u64) -> Strategy {
        Strategy {
            timestamp: TimestampFrom::parse(from).unwrap(),
            out_of_orderness: Duration::from_millis(ooo_ms),
            idle_timeout: None,
            interval: Duration::ZERO,
        }
    }

    #[test]
    fn json_fields_give_ms_or_rfc3339() {
        let path = vec!["ts".to_string()];
        assert_eq!(json_timestamp(br#"{"ts": 1500}"#, &path), Ok(1500));
        assert_eq!(
            json_timestamp(br#"{"ts": "1970-01-01T00:00:01.5Z"}"#, &path),
            Ok(1500)
        );
        let nested = vec!["a".to_string(), "t".to_string()];
        assert_eq!(json_timestamp(br#"{"a": {"t": 7}}"#, &nested), Ok(7));
        assert!(
            json_timestamp(br#"{"x": 1}"#, &path)
                .unwrap_err()
                .contains("no field `ts`")
        );
        assert!(
            json_timestamp(b"nope", &path)
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(json_timestamp(br#"{"ts": true}"#, &path).is_err());
    }

    #[test]
    fn the_watermark_trails_the_newest_timestamp_and_never_goes_back() {
        let mut g = Generator::new("n", Some(strategy("json:ts", 5)));
        let input = batch(&[(r#"{"ts": 100}"#, None), (r#"{"ts": 90}"#, None)]);
        let timed = g.observe(input).unwrap();
        assert_eq!(timed.iter().nth(1).unwrap().timestamp, Some(90));
        assert_eq!(timed.iter().nth(1).unwrap().value, br#"{"ts": 90}"#);
        let now = Instant::now();
        assert_eq!(g.poll(now), Some(Emit::Watermark(94)));
        assert_eq!(g.poll(now), None);
        g.observe(rec(r#"{"ts": 50}"#, None)).unwrap();
        assert_eq!(g.poll(now), None, "an older record does not move it back");
        assert_eq!(g.offer(80), None);
        assert_eq!(g.offer(200), Some(200));
        let state = g.state();
        let mut again = Generator::new("n", Some(strategy("json:ts", 5)));
        again.restore(state);
        again.observe(rec(r#"{"ts": 101}"#, None)).unwrap();
        assert_eq!(again.poll(now), None, "restored, it continues from 200");
    }

    #[test]
    fn an_input_without_records_goes_idle_once() {
        let mut s = strategy("record", 0);
        s.idle_timeout = Some(Duration::from_millis(10));
        s.interval = Duration::from_secs(3600);
        let mut g = Generator::new("n", Some(s));
        g.observe(rec("x", Some(5))).unwrap();
        let later = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            g.poll(later),
            Some(Emit::Watermark(4)),
            "first what was seen"
        );
        assert_eq!(g.poll(later), Some(Emit::Idle));
        assert_eq!(g.poll(later), None);
        assert_eq!(g.deadline(), None);
    }

    #[test]
    fn a_record_without_time_is_an_error_naming_the_node() {
        let mut g = Generator::new("events", Some(strategy("record", 0)));
        let e = g.observe(rec("x", None)).unwrap_err().to_string();
        assert!(
            e.contains("node `events`") && e.contains("no timestamp"),
            "{e}"
        );
        assert!(TimestampFrom::parse("json:").is_err());
    }
}
