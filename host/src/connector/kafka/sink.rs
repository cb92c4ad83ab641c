//! The Kafka sink, with Flink's three delivery guarantees.
//!
//! - `none`: produce and move on.
//! - `at-least-once`: at every checkpoint barrier, flush and wait for every acknowledgement; a
//!   delivery error fails the checkpoint and the job (unless `log_failures_only`).
//! - `exactly-once`: one Kafka transaction per subtask per checkpoint, committed when the
//!   checkpoint completes.
//!
//! librdkafka cannot resume another process's transaction (Flink's Java connector does, by
//! reflection), so after a crash between "checkpoint complete" and "transaction committed" the
//! open transaction cannot be committed by the new process. Instead the sink keeps the records
//! of every prepared, not yet committed checkpoint in its checkpointed state; each commit also
//! commits a marker offset (`checkpoint << 32 | label`) to the subtask's own consumer group inside
//! the same transaction. On restore the sink reads the marker: checkpoints at or below it were
//! committed; the records of later ones are produced again in a fresh transaction. Starting the
//! producer (`init_transactions` on the same transactional id) fences and aborts whatever the
//! previous process left open; subtask 0 does the same for the ids of subtasks a larger earlier
//! run had and this one has not (`scale_down_factor`).
//!
//! Invariant: a transaction never holds records of a checkpoint that is not complete when it
//! commits: while one checkpoint awaits its commit, newer records wait in memory.

use super::{REQUEST_TIMEOUT, Semantic, SinkConfig, error};
use crate::runtime::SinkNode;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_core::NodeError;
use weir_core::batch::{Batch, RecordRef};

const CONNECTOR: &str = "kafka sink";

/// The header every record of an exactly-once sink carries: the label of its transaction
/// (`<transactional id>:<8 hex digits>`), as logged when that transaction commits.
pub const TXN_HEADER: &str = "weir.txn";

/// One record, resolved to its topic and partition.
#[derive(Debug, Serialize, Deserialize)]
struct Out {
    topic: String,
    partition: i32,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    key: Option<serde_bytes::ByteBuf>,
    timestamp: Option<i64>,
    headers: Vec<(String, serde_bytes::ByteBuf)>,
}

/// The records of one prepared checkpoint that is not known to be committed.
#[derive(Debug, Serialize, Deserialize)]
struct Epoch {
    checkpoint: u64,
    records: Vec<Out>,
    /// Already produced into the open transaction.
    #[serde(skip)]
    sent: bool,
}

/// What an exactly-once snapshot holds (other semantics keep nothing).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    epochs: Vec<Epoch>,
}

/// Delivery reports, counted by the producer's thread.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<String>>,
    log_only: bool,
}

struct Context(Arc<Deliveries>);

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            use rdkafka::Message;
            let what = format!("delivery to {}[{}] failed: {e}", m.topic(), m.partition());
            if self.0.log_only {
                tracing::warn!("{what} (log_failures_only: the record is lost)");
            } else {
                self.0
                    .failed
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert(what);
            }
        }
    }
}

/// An open exactly-once transaction.
struct Txn {
    label: String,
    label_bits: u32,
}

/// A running Kafka sink subtask.
pub struct KafkaSink {
    cfg: Arc<SinkConfig>,
    uid: String,
    subtask: u32,
    producer: ThreadedProducer<Context>,
    deliveries: Arc<Deliveries>,
    /// Per topic: its partition count and this subtask's round-robin counter.
    partitions: HashMap<String, (i32, u32)>,
    /// exactly-once: the transactional id, and a consumer of the marker group.
    transactional_id: String,
    marker: Option<(BaseConsumer, ConsumerGroupMetadata)>,
    txn: Option<Txn>,
    /// exactly-once: prepared checkpoints not yet committed, oldest first.
    epochs: Vec<Epoch>,
    /// exactly-once: records since the last barrier; produced already when `epochs` is empty.
    current: Vec<Out>,
}

impl KafkaSink {
    pub fn start(
        cfg: Arc<SinkConfig>,
        uid: &str,
        subtask: u32,
        parallelism: u32,
    ) -> Result<Self, NodeError> {
        let err = |m: String| error(uid, subtask, CONNECTOR, m);
        let deliveries = Arc::new(Deliveries {
            failed: Mutex::new(None),
            log_only: cfg.log_failures_only,
        });
        let transactional_id = cfg.transactional_id(uid, subtask);
        let timeout_ms = cfg.transaction_timeout.as_millis().to_string();
        let mut ours: Vec<(&str, &str)> = vec![("queue.buffering.max.messages", "1000000")];
        match cfg.semantic {
            Semantic::ExactlyOnce => {
                ours.push(("transactional.id", &transactional_id));
                ours.push(("transaction.timeout.ms", &timeout_ms));
            }
            Semantic::AtLeastOnce => ours.push(("enable.idempotence", "true")),
            Semantic::None => ours.push(("acks", "1")),
        }
        let producer: ThreadedProducer<Context> =
            super::client_config(&cfg.bootstrap_servers, &ours, &cfg.properties)
                .create_with_context(Context(deliveries.clone()))
                .map_err(|e| err(format!("cannot create the Kafka producer: {e}")))?;
        let mut sink = KafkaSink {
            cfg: cfg.clone(),
            uid: uid.to_owned(),
            subtask,
            producer,
            deliveries,
            partitions: HashMap::new(),
            transactional_id,
            marker: None,
            txn: None,
            epochs: Vec::new(),
            current: Vec::new(),
        };
        // Fail early, with the topic named, if it does not exist.
        sink.partition_count(&cfg.topic)?;
        if cfg.semantic == Semantic::ExactlyOnce {
            let group = format!("{}.commits", sink.transactional_id);
            let consumer: BaseConsumer = super::client_config(
                &cfg.bootstrap_servers,
                &[("group.id", &group), ("enable.auto.commit", "false")],
                &cfg.properties,
            )
            .create()
            .map_err(|e| err(format!("cannot create the marker consumer: {e}")))?;
            let metadata = consumer
                .group_metadata()
                .ok_or_else(|| err("the marker consumer has no group metadata".into()))?;
            sink.marker = Some((consumer, metadata));
            // Fences an older producer with this id and aborts its open transaction.
            sink.producer
                .init_transactions(REQUEST_TIMEOUT)
                .map_err(|e| {
                    err(format!(
                        "cannot start transactions as {:?}: {e}",
                        sink.transactional_id
                    ))
                })?;
            if subtask == 0 {
                sink.abort_lingering(parallelism)?;
            }
        }
        Ok(sink)
    }

    /// Start (and drop) a transactional producer with the id of subtask `k`: the broker fences
    /// any older producer with that id and aborts the transaction it left open.
    fn fence(&self, k: u32) -> Result<(), NodeError> {
        let id = self.cfg.transactional_id(&self.uid, k);
        let producer: rdkafka::producer::BaseProducer = super::client_config(
            &self.cfg.bootstrap_servers,
            &[("transactional.id", &id)],
            &self.cfg.properties,
        )
        .create()
        .map_err(|e| self.err(format!("cannot create a producer to fence {id:?}: {e}")))?;
        producer.init_transactions(REQUEST_TIMEOUT).map_err(|e| {
            self.err(format!(
                "cannot fence the transactional id {id:?} of a larger earlier run: {e}"
            ))
        })
    }

    /// Fence the transactional ids a run with up to `scale_down_factor` times more subtasks
    /// used and this one does not: a transaction one of them left open would hold back every
    /// `read_committed` reader of its partitions until the broker times it out.
    fn abort_lingering(&self, parallelism: u32) -> Result<(), NodeError> {
        let above = parallelism..parallelism.saturating_mul(self.cfg.scale_down_factor);
        if above.is_empty() {
            return Ok(());
        }
        let start = std::time::Instant::now();
        above.clone().try_for_each(|k| self.fence(k))?;
        tracing::debug!(
            "{}[0]: fenced transactional ids {} ..= {} in {:?}",
            self.uid,
            self.cfg.transactional_id(&self.uid, above.start),
            self.cfg.transactional_id(&self.uid, above.end - 1),
            start.elapsed()
        );
        Ok(())
    }

    fn err(&self, message: String) -> NodeError {
        error(&self.uid, self.subtask, CONNECTOR, message)
    }

    fn partition_count(&mut self, topic: &str) -> Result<i32, NodeError> {
        if let Some((n, _)) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| {
                self.err(format!(
                    "cannot read metadata of topic {topic:?} from {:?}: {e}",
                    self.cfg.bootstrap_servers
                ))
            })?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0)
            .ok_or_else(|| self.err(format!("topic {topic:?} does not exist: create it first")))?;
        // Subtasks start their round robin at different partitions.
        self.partitions
            .insert(topic.to_owned(), (n, self.subtask.wrapping_sub(1)));
        Ok(n)
    }

    /// Resolve a record's topic (its `topic_header`, else the configured one) and partition.
    fn resolve(&mut self, r: &RecordRef) -> Result<Out, NodeError> {
        let mut topic = None;
        let mut headers = Vec::with_capacity(r.headers.len());
        for (key, value) in r.headers.iter() {
            if key == self.cfg.topic_header {
                topic = Some(String::from_utf8(value.to_vec()).map_err(|_| {
                    self.err(format!(
                        "header {:?} must name a topic in UTF-8",
                        self.cfg.topic_header
                    ))
                })?);
            } else {
                headers.push((key.to_owned(), serde_bytes::ByteBuf::from(value)));
            }
        }
        let topic = topic.unwrap_or_else(|| self.cfg.topic.clone());
        let n = self.partition_count(&topic)?;
        let (_, next) = self.partitions.get_mut(&topic).expect("counted above");
        let partition = self.cfg.partitioner.pick(r.key, n, self.subtask, next);
        Ok(Out {
            topic,
            partition,
            value: r.value.to_vec(),
            key: r.key.map(serde_bytes::ByteBuf::from),
            timestamp: r.timestamp,
            headers,
        })
    }

    /// Hand one record to librdkafka, waiting while its queue is full.
    fn produce(&self, o: &Out, txn: Option<&str>) -> Result<(), NodeError> {
        let mut headers = OwnedHeaders::new_with_capacity(o.headers.len() + 1);
        for (k, v) in &o.headers {
            headers = headers.insert(KafkaHeader {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        if let Some(label) = txn {
            headers = headers.insert(KafkaHeader {
                key: TXN_HEADER,
                value: Some(label.as_bytes()),
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(&o.topic)
            .partition(o.partition)
            .payload(&o.value)
            .headers(headers);
        if let Some(k) = &o.key {
            record = record.key(k.as_slice());
        }
        if let Some(ts) = o.timestamp {
            record = record.timestamp(ts);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    return Err(self.err(format!("cannot produce to {}: {e}", o.topic)));
                }
            }
        }
    }

    /// Hand `records` to librdkafka inside the transaction labelled `label`.
    fn produce_all(&self, records: &[Out], label: &str) -> Result<(), NodeError> {
        records
            .iter()
            .try_for_each(|o| self.produce(o, Some(label)))
    }

    /// Wait for every acknowledgement; fail on the first delivery error.
    fn flush(&self) -> Result<(), NodeError> {
        // Not `Producer::flush`: beside the producer's polling thread it waits in steps of
        // 100 ms, which every checkpoint would pay. The queue empties once every delivery
        // report was served.
        let timeout = self.cfg.transaction_timeout.min(Duration::from_secs(300));
        let start = std::time::Instant::now();
        while self.producer.in_flight_count() > 0 {
            if start.elapsed() > timeout {
                return Err(self.err(format!(
                    "flush failed: {} records still unacknowledged after {timeout:?} (is the broker reachable?)",
                    self.producer.in_flight_count()
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if let Some(e) = self.deliveries.failed.lock().expect("not poisoned").take() {
            return Err(self.err(format!(
                "{e}; at-least-once fails the checkpoint so nothing is lost (set log_failures_only = true to log instead)"
            )));
        }
        Ok(())
    }

    /// The open transaction, begun if there is none.
    fn ensure_txn(&mut self) -> Result<String, NodeError> {
        if let Some(t) = &self.txn {
            return Ok(t.label.clone());
        }
        self.producer
            .begin_transaction()
            .map_err(|e| self.err(format!("cannot begin a transaction: {e}")))?;
        let bits = std::collections::hash_map::RandomState::new()
            .hash_one(std::time::SystemTime::now()) as u32;
        let label = format!("{}:{bits:08x}", self.transactional_id);
        self.txn = Some(Txn {
            label: label.clone(),
            label_bits: bits,
        });
        Ok(label)
    }

    /// Commit the open transaction with the marker for `checkpoint`.
    fn commit_txn(&mut self, checkpoint: u64, records: usize) -> Result<(), NodeError> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        let (_, metadata) = self
            .marker
            .as_ref()
            .expect("exactly-once sinks have a marker");
        let mut marker = TopicPartitionList::new();
        marker
            .add_partition_offset(
                &self.cfg.topic,
                0,
                Offset::Offset(((checkpoint as i64) << 32) | i64::from(txn.label_bits)),
            )
            .map_err(|e| self.err(e.to_string()))?;
        self.producer
            .send_offsets_to_transaction(&marker, metadata, REQUEST_TIMEOUT)
            .map_err(|e| {
                self.err(format!(
                    "cannot add the commit marker to transaction {}: {e}",
                    txn.label
                ))
            })?;
        self.producer
            .commit_transaction(self.cfg.transaction_timeout)
            .map_err(|e| self.err(format!("cannot commit transaction {}: {e}", txn.label)))?;
        if let Some(e) = self.deliveries.failed.lock().expect("not poisoned").take() {
            return Err(self.err(e));
        }
        tracing::info!(
            "{}[{}]: transaction {} committed (checkpoint {checkpoint}, {records} records)",
            self.uid,
            self.subtask,
            txn.label
        );
        Ok(())
    }

    /// The checkpoint and label bits of the last committed marker, if any.
    fn read_marker(&self) -> Result<Option<(u64, u32)>, NodeError> {
        let (consumer, _) = self
            .marker
            .as_ref()
            .expect("exactly-once sinks have a marker");
        let mut tpl = TopicPartitionList::new();
        let _ = tpl.add_partition(&self.cfg.topic, 0);
        let got = consumer
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(|e| self.err(format!("cannot read the commit marker: {e}")))?;
        Ok(got.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(((o >> 32) as u64, o as u32)),
            _ => None,
        }))
    }
}

impl SinkNode for KafkaSink {
    fn write(&mut self, batch: Batch) -> Result<(), NodeError> {
        for r in &batch {
            let o = self.resolve(&r)?;
            match self.cfg.semantic {
                Semantic::None | Semantic::AtLeastOnce => self.produce(&o, None)?,
                Semantic::ExactlyOnce => {
                    if self.epochs.is_empty() {
                        let label = self.ensure_txn()?;
                        self.produce(&o, Some(&label))?;
                    }
                    self.current.push(o);
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        if self.cfg.semantic == Semantic::None {
            // Fire and forget, but do not leave records in the queue when the process ends.
            self.producer
                .flush(Duration::from_secs(60))
                .map_err(|e| self.err(format!("flush failed: {e}")))?;
        }
        Ok(())
    }

    fn prepare(&mut self, checkpoint: u64) -> Result<(), NodeError> {
        match self.cfg.semantic {
            Semantic::None => Ok(()),
            Semantic::AtLeastOnce => self.flush(),
            Semantic::ExactlyOnce => {
                let sent = self.epochs.is_empty() && self.txn.is_some();
                if sent {
                    let t = std::time::Instant::now();
                    self.flush()?;
                    tracing::debug!(
                        "{}[{}]: flushed for checkpoint {checkpoint} in {:?}",
                        self.uid,
                        self.subtask,
                        t.elapsed()
                    );
                }
                self.epochs.push(Epoch {
                    checkpoint,
                    records: std::mem::take(&mut self.current),
                    sent,
                });
                Ok(())
            }
        }
    }

    fn commit(&mut self, checkpoint: u64) -> Result<(), NodeError> {
        if self.cfg.semantic != Semantic::ExactlyOnce {
            return Ok(());
        }
        let due = self
            .epochs
            .iter()
            .take_while(|e| e.checkpoint <= checkpoint)
            .count();
        if due == 0 {
            return Ok(());
        }
        let records: usize = self.epochs[..due].iter().map(|e| e.records.len()).sum();
        if records > 0 {
            let label = self.ensure_txn()?;
            for e in self.epochs[..due].iter().filter(|e| !e.sent) {
                self.produce_all(&e.records, &label)?;
            }
            self.flush()?;
            self.commit_txn(checkpoint, records)?;
        } else if self.txn.is_some() {
            // Nothing was produced into it (an empty checkpoint): nothing to commit.
            self.commit_txn(checkpoint, 0)?;
        }
        self.epochs.drain(..due);
        // Start the next transaction: the oldest prepared checkpoint alone if one waits,
        // else the records that arrived meanwhile.
        if let Some(next) = self.epochs.first() {
            if !next.records.is_empty() {
                let label = self.ensure_txn()?;
                self.produce_all(&self.epochs[0].records, &label)?;
            }
            self.epochs[0].sent = self.txn.is_some();
        } else if !self.current.is_empty() {
            let label = self.ensure_txn()?;
            self.produce_all(&self.current, &label)?;
        }
        Ok(())
    }

    fn abort(&mut self, _checkpoint: u64) -> Result<(), NodeError> {
        // Called on restore for checkpoints newer than the restored one. Their transactions were
        // aborted when this producer fenced the old one (init_transactions); their records come
        // again from the sources. Nothing else to do.
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, NodeError> {
        if self.cfg.semantic != Semantic::ExactlyOnce {
            return Ok(Vec::new());
        }
        let state = State {
            epochs: std::mem::take(&mut self.epochs),
        };
        let bytes = postcard::to_allocvec(&state);
        self.epochs = state.epochs;
        bytes.map_err(|e| self.err(format!("cannot encode pending transactions: {e}")))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), NodeError> {
        if self.cfg.semantic != Semantic::ExactlyOnce || state.is_empty() {
            return Ok(());
        }
        let state: State = postcard::from_bytes(state)
            .map_err(|e| self.err(format!("the checkpointed transactions are unreadable: {e}")))?;
        self.epochs = state.epochs;
        if let Some((committed, bits)) = self.read_marker()? {
            let before = self.epochs.len();
            self.epochs.retain(|e| e.checkpoint > committed);
            if self.epochs.len() < before {
                tracing::info!(
                    "{}[{}]: transaction {}:{bits:08x} committed (checkpoint {committed}; found committed on restore)",
                    self.uid,
                    self.subtask,
                    self.transactional_id
                );
            }
        }
        // What remains was never committed: `commit(restored checkpoint)` produces it again.
        Ok(())
    }
}
