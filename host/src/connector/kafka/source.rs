//! The Kafka source: reads its share of the partitions with `assign()` (no group rebalancing),
//! keeps the next offset of each in its checkpointed state, and commits those offsets to the
//! group when a checkpoint completes, only so monitoring sees progress.
//!
//! Invariants: the offsets in a snapshot are exactly one past the last record handed to the
//! runtime (or dead-lettered, or skipped) before it, so a restore neither repeats nor skips a
//! record; a restored offset always wins over the configured start position; no record is
//! dropped silently: a corrupt one fails the job, is counted and logged, or is dead-lettered.

use super::{Format, OnCorrupt, REQUEST_TIMEOUT, SourceConfig, StartAt, Topics, error};
use crate::runtime::SourceNode;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::node::Polled;
use weir_core::{Header, NodeError, Record};

const CONNECTOR: &str = "kafka source";

/// (topic, partition)
type Tp = (String, i32);

/// What a snapshot holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The next offset to read, per partition read so far.
    offsets: Vec<(String, i32, i64)>,
    /// Bounded reads: where each partition ends, fixed at the first start.
    ends: Option<Vec<(String, i32, i64)>>,
    /// Partitions started by timestamp still passing over earlier records.
    #[serde(default)]
    seeking: Vec<(String, i32, i64)>,
}

/// The union of source subtasks' snapshots (union state): every partition any of them read,
/// with its offset. Each partition is read by one subtask at a time, so no two disagree.
pub fn merge_source_states(states: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut all = State::default();
    let mut ends: Option<Vec<(String, i32, i64)>> = None;
    for bytes in states {
        let s: State = serde_json::from_slice(bytes)
            .map_err(|e| format!("the checkpointed Kafka offsets are unreadable: {e}"))?;
        all.offsets.extend(s.offsets);
        all.seeking.extend(s.seeking);
        if let Some(e) = s.ends {
            ends.get_or_insert_with(Vec::new).extend(e);
        }
    }
    all.ends = ends;
    Ok(serde_json::to_vec(&all).expect("offsets serialise"))
}

/// A running Kafka source subtask.
pub struct KafkaSource {
    cfg: Arc<SourceConfig>,
    uid: String,
    subtask: u32,
    consumer: BaseConsumer,
    /// This subtask's partitions, in (topic, partition) order.
    partitions: Vec<Tp>,
    p: Progress,
    assigned: bool,
    /// Offsets as of each snapshot, to commit to the group once its checkpoint completes.
    snapshots: BTreeMap<u64, BTreeMap<Tp, i64>>,
    throttle: Option<(Instant, u64)>,
}

/// How far a subtask got: apart from the consumer, which the messages being read borrow.
#[derive(Default)]
struct Progress {
    /// Next offset to read, for every partition a record was read from (or restored).
    offsets: BTreeMap<Tp, i64>,
    /// Bounded reads: the end of every partition (exclusive).
    ends: Option<BTreeMap<Tp, i64>>,
    /// Partitions of a bounded read that reached their end.
    done: BTreeMap<Tp, bool>,
    /// Partitions started by timestamp that have not yet met a record at or after it.
    seeking: BTreeMap<Tp, i64>,
    /// Partitions to pause after this poll: a bounded read reached their end.
    to_pause: Vec<Tp>,
    dead_letters: Vec<Record>,
    skipped: u64,
}

impl KafkaSource {
    /// Connect and find this subtask's partitions: every partition of the configured topics,
    /// sorted, and every `parallelism`-th one from index `subtask`.
    pub fn start(
        cfg: Arc<SourceConfig>,
        uid: &str,
        subtask: u32,
        parallelism: u32,
    ) -> Result<Self, NodeError> {
        let err = |m: String| error(uid, subtask, CONNECTOR, m);
        let consumer: BaseConsumer = super::client_config(
            &cfg.bootstrap_servers,
            &[
                ("group.id", &cfg.group_id),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("isolation.level", "read_committed"),
            ],
            &cfg.properties,
        )
        .create()
        .map_err(|e| err(format!("cannot create the Kafka consumer: {e}")))?;
        let all = list_partitions(&consumer, &cfg.topics).map_err(|m| {
            err(format!(
                "{m} (bootstrap_servers = {:?}; is the broker up?)",
                cfg.bootstrap_servers
            ))
        })?;
        let partitions: Vec<Tp> = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % parallelism == subtask)
            .map(|(_, tp)| tp)
            .collect();
        tracing::debug!("{uid}[{subtask}] reads {partitions:?}");
        Ok(KafkaSource {
            cfg,
            uid: uid.to_owned(),
            subtask,
            consumer,
            partitions,
            p: Progress::default(),
            assigned: false,
            snapshots: BTreeMap::new(),
            throttle: None,
        })
    }

    fn err(&self, message: String) -> NodeError {
        error(&self.uid, self.subtask, CONNECTOR, message)
    }

    /// Assign this subtask's partitions, each at its restored offset or the configured start.
    fn assign(&mut self) -> Result<(), NodeError> {
        if self.cfg.bounded && self.p.ends.is_none() {
            let ends = self
                .partitions
                .iter()
                .map(|tp| Ok((tp.clone(), self.watermark(tp, true)?)))
                .collect::<Result<_, NodeError>>()?;
            self.p.ends = Some(ends);
        }
        // Resolve every start position to an offset now, so the state always holds exact
        // offsets and a bounded read knows where each partition stands.
        let fresh: Vec<Tp> = self
            .partitions
            .iter()
            .filter(|tp| !self.p.offsets.contains_key(*tp))
            .cloned()
            .collect();
        let committed = match &self.cfg.start {
            StartAt::GroupOffsets | StartAt::SpecificOffsets(_) if !fresh.is_empty() => {
                let mut l = TopicPartitionList::new();
                for (t, p) in &fresh {
                    let _ = l.add_partition(t, *p);
                }
                let got = self
                    .consumer
                    .committed_offsets(l, REQUEST_TIMEOUT)
                    .map_err(|e| {
                        self.err(format!(
                            "cannot read the committed offsets of group {:?}: {e}",
                            self.cfg.group_id
                        ))
                    })?;
                Some(got)
            }
            _ => None,
        };
        let by_time = match &self.cfg.start {
            StartAt::Timestamp(ts) if !fresh.is_empty() => {
                let mut l = TopicPartitionList::new();
                for (t, p) in &fresh {
                    let _ = l.add_partition_offset(t, *p, Offset::Offset(*ts));
                }
                let got = self
                    .consumer
                    .offsets_for_times(l, REQUEST_TIMEOUT)
                    .map_err(|e| self.err(format!("cannot look up offsets by timestamp: {e}")))?;
                Some(got)
            }
            _ => None,
        };
        let found = |l: &Option<TopicPartitionList>, (t, p): &Tp| match l
            .as_ref()
            .and_then(|l| l.find_partition(t, *p))
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) if o >= 0 => Some(o),
            _ => None,
        };
        for tp in fresh {
            let offset = match &self.cfg.start {
                StartAt::Earliest => self.watermark(&tp, false)?,
                StartAt::Latest => self.watermark(&tp, true)?,
                StartAt::SpecificOffsets(m) if m.contains_key(&tp) => m[&tp],
                StartAt::GroupOffsets | StartAt::SpecificOffsets(_) => match found(&committed, &tp)
                {
                    Some(o) => o,
                    None => self.reset_offset(&tp)?,
                },
                StartAt::Timestamp(ts) => {
                    // Some brokers answer the lookup loosely (Tansu 0.6 returns the first
                    // offset); records before the timestamp are passed over until the first
                    // at or after it, which on Apache Kafka is the very first one read.
                    self.p.seeking.insert(tp.clone(), *ts);
                    match found(&by_time, &tp) {
                        Some(o) => o,
                        None => self.watermark(&tp, true)?,
                    }
                }
            };
            self.p.offsets.insert(tp, offset);
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &self.partitions {
            let o = self.p.offsets[&(t.clone(), *p)];
            tpl.add_partition_offset(t, *p, Offset::Offset(o))
                .map_err(|e| self.err(e.to_string()))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| self.err(format!("cannot assign partitions: {e}")))?;
        self.assigned = true;
        Ok(())
    }

    /// The low (first) or high (next to be written) offset of `tp`.
    fn watermark(&self, (t, p): &Tp, high: bool) -> Result<i64, NodeError> {
        let (low, hi) = self
            .consumer
            .fetch_watermarks(t, *p, REQUEST_TIMEOUT)
            .map_err(|e| self.err(format!("cannot read the offsets of {t}[{p}]: {e}")))?;
        Ok(if high { hi } else { low })
    }

    /// No committed offset for `tp`: where `auto.offset.reset` says to start.
    fn reset_offset(&self, tp: &Tp) -> Result<i64, NodeError> {
        let reset = self
            .cfg
            .properties
            .get("auto.offset.reset")
            .map_or("latest", String::as_str);
        match reset {
            "earliest" | "smallest" | "beginning" => self.watermark(tp, false),
            "latest" | "largest" | "end" => self.watermark(tp, true),
            other => Err(self.err(format!(
                "group {:?} has no committed offset for {}[{}] and auto.offset.reset = {other:?}: commit one, set auto.offset.reset to \"earliest\" or \"latest\", or choose another `start`",
                self.cfg.group_id, tp.0, tp.1
            ))),
        }
    }

    /// Bounded reads: mark partitions whose position reached their end.
    fn check_ends(&mut self) -> Result<bool, NodeError> {
        let Some(ends) = &self.p.ends else {
            return Ok(false);
        };
        let positions = self.consumer.position().ok();
        let mut pause = TopicPartitionList::new();
        for (tp, end) in ends {
            if self.p.done.contains_key(tp) {
                continue;
            }
            // The position also moves past records a read never sees (transaction markers).
            let position = positions.as_ref().and_then(|l| {
                match l.find_partition(&tp.0, tp.1).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                }
            });
            let at = self.p.offsets.get(tp).copied().max(position);
            if *end == 0 || at.is_some_and(|o| o >= *end) {
                self.p.done.insert(tp.clone(), true);
                let _ = pause.add_partition(&tp.0, tp.1);
            }
        }
        if pause.count() > 0 {
            let _ = self.consumer.pause(&pause);
        }
        Ok(self.p.done.len() == ends.len())
    }

    /// How many records the rate limit allows now.
    fn allowance(&mut self, max: u32) -> u32 {
        let Some(rate) = self.cfg.rate else {
            return max;
        };
        let (since, sent) = self.throttle.get_or_insert((Instant::now(), 0));
        let due = (since.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        due.saturating_sub(*sent).min(u64::from(max)) as u32
    }
}

impl Progress {
    /// One consumed message → a record, a dead letter, a skip or an error.
    fn take(
        &mut self,
        src: (&SourceConfig, &str, u32),
        m: &rdkafka::message::BorrowedMessage<'_>,
        out: &mut weir_core::batch::BatchBuilder,
    ) -> Result<(), NodeError> {
        let (cfg, uid, subtask) = src;
        let tp = (m.topic().to_owned(), m.partition());
        if let Some(end) = self.ends.as_ref().and_then(|e| e.get(&tp))
            && m.offset() >= *end
        {
            // Past the end of a bounded read: not ours to read.
            self.done.insert(tp.clone(), true);
            self.to_pause.push(tp);
            return Ok(());
        }
        let mut headers: Vec<Header> = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| Header {
                        key: h.key.to_owned(),
                        value: h.value.unwrap_or_default().to_vec(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let timestamp = m.timestamp().to_millis();
        let coordinates = || {
            vec![
                header("kafka.topic", m.topic()),
                header("kafka.partition", &m.partition().to_string()),
                header("kafka.offset", &m.offset().to_string()),
            ]
        };
        if cfg.with_metadata {
            headers.extend(coordinates());
            if let Some(ts) = timestamp {
                headers.push(header("kafka.timestamp", &ts.to_string()));
            }
        }
        if let Some(start) = self.seeking.get(&tp) {
            if timestamp.is_some_and(|ts| ts < *start) {
                self.offsets.insert(tp, m.offset() + 1);
                return Ok(());
            }
            self.seeking.remove(&tp);
        }
        let value = m.payload();
        let corrupt = match (cfg.format, value) {
            (Format::Raw, _) => None,
            (Format::Json, None) => Some("the value is null (a tombstone), not JSON".to_owned()),
            (Format::Json, Some(v)) => serde_json::from_slice::<serde::de::IgnoredAny>(v)
                .err()
                .map(|e| format!("the value is not JSON: {e}")),
        };
        match (corrupt, cfg.on_corrupt) {
            // Straight from librdkafka's buffer into the batch's.
            (None, _) => out.push(
                m.key(),
                value.unwrap_or_default(),
                timestamp,
                headers.iter().map(|h| (h.key.as_str(), h.value.as_slice())),
            ),
            (Some(why), OnCorrupt::Fail) => {
                return Err(error(
                    uid,
                    subtask,
                    CONNECTOR,
                    format!(
                        "corrupt record at {}[{}] offset {}: {why}. on_corrupt = \"fail\" fails the job; a restart reads the same record again and fails again, so fix the topic or set on_corrupt = \"skip\" or \"dead-letter\"",
                        m.topic(),
                        m.partition(),
                        m.offset()
                    ),
                ));
            }
            (Some(why), OnCorrupt::Skip) => {
                self.skipped += 1;
                tracing::warn!(
                    "{}[{}]: skipped corrupt record at {}[{}] offset {} ({} skipped so far): {why}",
                    uid,
                    subtask,
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    self.skipped
                );
            }
            (Some(why), OnCorrupt::DeadLetter) => {
                let mut dead = Record {
                    key: m.key().map(<[u8]>::to_vec),
                    value: value.unwrap_or_default().to_vec(),
                    timestamp,
                    headers,
                };
                if !cfg.with_metadata {
                    dead.headers.extend(coordinates());
                }
                dead.headers.push(header("error", &why));
                self.dead_letters.push(dead);
            }
        }
        self.offsets.insert(tp, m.offset() + 1);
        Ok(())
    }
}

fn header(key: &str, value: &str) -> Header {
    Header {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
    }
}

/// Every (topic, partition) of `topics`, sorted.
fn list_partitions(consumer: &BaseConsumer, topics: &Topics) -> Result<Vec<Tp>, String> {
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| format!("cannot read the cluster's metadata: {e}"))?;
    let mut found: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for t in metadata.topics() {
        if t.error().is_none() {
            found.insert(t.name(), t.partitions().iter().map(|p| p.id()).collect());
        }
    }
    let mut out = Vec::new();
    match topics {
        Topics::List(names) => {
            for name in names {
                let ps = found.get(name.as_str()).ok_or_else(|| {
                    format!("topic {name:?} does not exist: create it, or fix `topics`")
                })?;
                out.extend(ps.iter().map(|p| (name.clone(), *p)));
            }
        }
        Topics::Pattern(re) => {
            for (name, ps) in &found {
                if re.is_match(name) && !name.starts_with("__") {
                    out.extend(ps.iter().map(|p| (name.to_string(), *p)));
                }
            }
            if out.is_empty() {
                return Err(format!("no topic matches topic_pattern {:?}", re.as_str()));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

impl SourceNode for KafkaSource {
    fn poll(&mut self, max: u32) -> Result<Polled, NodeError> {
        if !self.assigned {
            self.assign()?;
        }
        if self.p.ends.is_some() && self.check_ends()? {
            return Ok(Polled::End);
        }
        let allowed = self.allowance(max);
        if allowed == 0 {
            return Ok(Polled::Idle);
        }
        let mut out = weir_core::batch::BatchBuilder::with_capacity(allowed as usize * 64);
        let mut handled = 0u32;
        let mut wait = Duration::from_millis(50);
        while handled < allowed {
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    // librdkafka retries transport errors itself; a fatal one ends the run.
                    if let Some(code) = e.rdkafka_error_code()
                        && self.consumer.client().fatal_error().is_some()
                    {
                        return Err(self.err(format!("fatal consumer error ({code:?}): {e}")));
                    }
                    tracing::warn!("{}[{}]: {e} (retrying)", self.uid, self.subtask);
                    break;
                }
                Some(Ok(m)) => {
                    self.p
                        .take((&self.cfg, &self.uid, self.subtask), &m, &mut out)?;
                    handled += 1;
                }
            }
            wait = Duration::ZERO;
        }
        if !self.p.to_pause.is_empty() {
            let mut l = TopicPartitionList::new();
            for (t, p) in self.p.to_pause.drain(..) {
                let _ = l.add_partition(&t, p);
            }
            let _ = self.consumer.pause(&l);
        }
        if let Some((_, sent)) = &mut self.throttle {
            *sent += u64::from(handled);
        }
        if out.is_empty() {
            Ok(Polled::Idle)
        } else {
            Ok(Polled::Batch(out.finish()))
        }
    }

    fn take_dead_letters(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.p.dead_letters)
    }

    fn snapshot(&mut self, checkpoint: u64) -> Result<Vec<u8>, NodeError> {
        // Keep the offsets for the group commit once this checkpoint completes; older
        // snapshots that never completed are dropped then.
        self.snapshots.insert(checkpoint, self.p.offsets.clone());
        let flat = |m: &BTreeMap<Tp, i64>| {
            m.iter()
                .map(|((t, p), o)| (t.clone(), *p, *o))
                .collect::<Vec<_>>()
        };
        let state = State {
            offsets: flat(&self.p.offsets),
            ends: self.p.ends.as_ref().map(flat),
            seeking: flat(&self.p.seeking),
        };
        serde_json::to_vec(&state).map_err(|e| self.err(format!("cannot encode offsets: {e}")))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        let s: State = serde_json::from_slice(state)
            .map_err(|e| self.err(format!("the checkpointed offsets are unreadable: {e}")))?;
        let nested = |v: Vec<(String, i32, i64)>| -> BTreeMap<Tp, i64> {
            v.into_iter().map(|(t, p, o)| ((t, p), o)).collect()
        };
        // Union state: the offsets of every subtask; this one keeps its partitions'.
        let mine = |m: BTreeMap<Tp, i64>| -> BTreeMap<Tp, i64> {
            m.into_iter()
                .filter(|(tp, _)| self.partitions.contains(tp))
                .collect()
        };
        self.p.offsets = mine(nested(s.offsets));
        self.p.seeking = mine(nested(s.seeking));
        let Some(mut ends) = s.ends.map(nested).map(mine) else {
            return Ok(());
        };
        // Partitions added since the first start: read up to where they are now.
        for tp in &self.partitions {
            if !ends.contains_key(tp) {
                ends.insert(tp.clone(), self.watermark(tp, true)?);
            }
        }
        self.p.ends = Some(ends);
        Ok(())
    }

    fn checkpoint_complete(&mut self, id: u64) -> Result<(), NodeError> {
        let Some(offsets) = self.snapshots.remove(&id) else {
            return Ok(());
        };
        self.snapshots = self.snapshots.split_off(&id);
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &offsets {
            let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
        }
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            // Only monitoring reads these; the checkpoint holds the offsets that count.
            tracing::warn!(
                "{}[{}]: could not commit offsets of checkpoint {id} to group {:?}: {e}",
                self.uid,
                self.subtask,
                self.cfg.group_id
            );
        }
        Ok(())
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        if self.p.skipped > 0 {
            tracing::warn!(
                "{}[{}]: skipped {} corrupt record(s) in all",
                self.uid,
                self.subtask,
                self.p.skipped
            );
        }
    }
}
