//! The Kafka connectors: their options (Flink's Kafka connector is the model) and the client
//! settings they share.
//!
//! Invariant: every option is validated here, before any subtask starts; the source and sink
//! modules only ever see a well-formed config.

mod partitioner;
mod sink;
mod source;

pub use partitioner::{Partitioner, murmur2};
pub use sink::KafkaSink;
pub use source::{KafkaSource, merge_source_states};

use super::options::Options;
use crate::config::ConfigError;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::time::Duration;
use weir_core::NodeError;

/// Where a source starts reading a partition it has no checkpointed offset for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The group's committed offset; without one, librdkafka's `auto.offset.reset`.
    GroupOffsets,
    Earliest,
    Latest,
    /// The first record with a timestamp at or after this (ms since the epoch).
    Timestamp(i64),
    /// These offsets; unlisted partitions start from the group's offsets.
    SpecificOffsets(BTreeMap<(String, i32), i64>),
}

/// Which topics a source reads.
#[derive(Clone, Debug)]
pub enum Topics {
    List(Vec<String>),
    Pattern(regex::Regex),
}

/// How a source reads record values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Key and value bytes as they are.
    Raw,
    /// The value must be JSON.
    Json,
}

/// What a source does with a record it cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnCorrupt {
    Fail,
    Skip,
    DeadLetter,
}

/// A Kafka source node's options.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub bootstrap_servers: String,
    pub topics: Topics,
    pub group_id: String,
    pub start: StartAt,
    /// Stop at the partitions' ends as of the first start (a bounded read), instead of never.
    pub bounded: bool,
    pub format: Format,
    pub with_metadata: bool,
    pub on_corrupt: OnCorrupt,
    /// At most this many records per second per subtask.
    pub rate: Option<u32>,
    /// Extra librdkafka properties, passed through.
    pub properties: BTreeMap<String, String>,
}

/// Delivery guarantee of a sink, as in Flink's `DeliveryGuarantee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Semantic {
    None,
    AtLeastOnce,
    ExactlyOnce,
}

/// A Kafka sink node's options.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub bootstrap_servers: String,
    /// Where records go unless their `topic_header` names another topic.
    pub topic: String,
    pub topic_header: String,
    pub semantic: Semantic,
    /// at-least-once: log delivery failures instead of failing the job.
    pub log_failures_only: bool,
    /// exactly-once: transactional ids are `<prefix>-<node uid>-<subtask>`.
    pub transactional_id_prefix: String,
    pub transaction_timeout: Duration,
    /// exactly-once: at start, subtask 0 aborts what the transactional ids of subtasks
    /// `parallelism .. parallelism * scale_down_factor` left open (Flink's safeScaleDownFactor):
    /// the transactions of a run with more subtasks than this one.
    pub scale_down_factor: u32,
    pub partitioner: Partitioner,
    pub properties: BTreeMap<String, String>,
}

const SOURCE_KEYS: &str = "bootstrap_servers, topics, topic_pattern, group_id, start, start_timestamp, start_offsets, stop_at, format, with_metadata, on_corrupt, rate, properties";
const SINK_KEYS: &str = "bootstrap_servers, topic, topic_header, semantic, log_failures_only, transactional_id_prefix, transaction_timeout, scale_down_factor, partitioner, properties";

impl SourceConfig {
    pub(crate) fn parse(
        mut o: Options<'_>,
        pipeline: &str,
        uid: &str,
    ) -> Result<Self, ConfigError> {
        let bootstrap_servers = o.required_string("bootstrap_servers", "\"127.0.0.1:9092\"")?;
        let topics = match (o.strings("topics")?, o.string("topic_pattern")?) {
            (Some(list), None) if !list.is_empty() => Topics::List(list),
            (None, Some(p)) => Topics::Pattern(
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| o.invalid("topic_pattern", format!("not a regex: {e}")))?,
            ),
            (Some(_), Some(_)) => {
                return Err(o.invalid(
                    "topic_pattern",
                    "give either `topics` or `topic_pattern`, not both",
                ));
            }
            _ => {
                return Err(o.invalid(
                    "topics",
                    "missing: add topics = [\"events\"] or topic_pattern = \"events-.*\"",
                ));
            }
        };
        let group_id = o
            .string("group_id")?
            .unwrap_or_else(|| format!("weir-{pipeline}-{uid}"));
        let start = match o
            .choice(
                "start",
                &[
                    "group-offsets",
                    "earliest",
                    "latest",
                    "timestamp",
                    "specific-offsets",
                ],
            )?
            .as_str()
        {
            "group-offsets" => StartAt::GroupOffsets,
            "earliest" => StartAt::Earliest,
            "latest" => StartAt::Latest,
            "timestamp" => StartAt::Timestamp(o.integer("start_timestamp")?.ok_or_else(|| {
                o.invalid(
                    "start_timestamp",
                    "missing: start = \"timestamp\" needs start_timestamp = <ms since the epoch>",
                )
            })?),
            _ => {
                let table = o.table("start_offsets")?.ok_or_else(|| {
                    o.invalid(
                        "start_offsets",
                        "missing: start = \"specific-offsets\" needs start_offsets = { \"<topic>:<partition>\" = <offset> }",
                    )
                })?;
                let mut offsets = BTreeMap::new();
                for (k, v) in table {
                    let bad = || {
                        o.invalid(
                            "start_offsets",
                            format!("{k:?} = {v}: write \"<topic>:<partition>\" = <offset>, e.g. \"events:0\" = 42"),
                        )
                    };
                    let (topic, partition) = k.rsplit_once(':').ok_or_else(bad)?;
                    let partition: i32 = partition.parse().map_err(|_| bad())?;
                    let offset = v.as_integer().filter(|o| *o >= 0).ok_or_else(bad)?;
                    offsets.insert((topic.to_owned(), partition), offset);
                }
                StartAt::SpecificOffsets(offsets)
            }
        };
        if !matches!(start, StartAt::Timestamp(_)) && o.integer("start_timestamp")?.is_some() {
            return Err(o.invalid("start_timestamp", "only used with start = \"timestamp\""));
        }
        if !matches!(start, StartAt::SpecificOffsets(_)) && o.table("start_offsets")?.is_some() {
            return Err(o.invalid(
                "start_offsets",
                "only used with start = \"specific-offsets\"",
            ));
        }
        let bounded = o.pick("stop_at", &[("never", false), ("latest", true)])?;
        let format = o.pick("format", &[("raw", Format::Raw), ("json", Format::Json)])?;
        let with_metadata = o.bool("with_metadata")?;
        let on_corrupt = o.pick(
            "on_corrupt",
            &[
                ("fail", OnCorrupt::Fail),
                ("skip", OnCorrupt::Skip),
                ("dead-letter", OnCorrupt::DeadLetter),
            ],
        )?;
        let rate = match o.integer("rate")? {
            None => None,
            Some(r) if r > 0 && r <= i64::from(u32::MAX) => Some(r as u32),
            Some(r) => return Err(o.invalid("rate", format!("{r} is not a positive rate"))),
        };
        let properties = properties(&mut o)?;
        o.finish(SOURCE_KEYS)?;
        Ok(SourceConfig {
            bootstrap_servers,
            topics,
            group_id,
            start,
            bounded,
            format,
            with_metadata,
            on_corrupt,
            rate,
            properties,
        })
    }
}

impl SinkConfig {
    /// The transactional id of subtask `subtask` of sink node `uid`.
    pub fn transactional_id(&self, uid: &str, subtask: u32) -> String {
        format!("{}-{uid}-{subtask}", self.transactional_id_prefix)
    }

    pub(crate) fn parse(mut o: Options<'_>, pipeline: &str) -> Result<Self, ConfigError> {
        let bootstrap_servers = o.required_string("bootstrap_servers", "\"127.0.0.1:9092\"")?;
        let topic = o.required_string("topic", "\"results\"")?;
        let topic_header = o
            .string("topic_header")?
            .unwrap_or_else(|| "target-topic".into());
        let semantic = o.pick(
            "semantic",
            &[
                ("at-least-once", Semantic::AtLeastOnce),
                ("exactly-once", Semantic::ExactlyOnce),
                ("none", Semantic::None),
            ],
        )?;
        let log_failures_only = o.bool("log_failures_only")?;
        if log_failures_only && semantic != Semantic::AtLeastOnce {
            return Err(o.invalid(
                "log_failures_only",
                "only applies to semantic = \"at-least-once\"",
            ));
        }
        let transactional_id_prefix = o
            .string("transactional_id_prefix")?
            .unwrap_or_else(|| format!("weir-{pipeline}"));
        let transaction_timeout = o
            .duration("transaction_timeout")?
            .unwrap_or(Duration::from_secs(15 * 60));
        if transaction_timeout < Duration::from_secs(1)
            || transaction_timeout > Duration::from_secs(i32::MAX as u64 / 1000)
        {
            return Err(o.invalid(
                "transaction_timeout",
                "must be between 1s and 24d (the broker caps it at transaction.max.timeout.ms, 15m by default)",
            ));
        }
        let scale_down_factor = match o.integer("scale_down_factor")? {
            None => 5,
            Some(n) if (1..=100).contains(&n) => n as u32,
            Some(_) => {
                return Err(o.invalid(
                    "scale_down_factor",
                    "must be between 1 (abort no other ids) and 100",
                ));
            }
        };
        let partitioner = o.pick(
            "partitioner",
            &[
                ("default", Partitioner::Default),
                ("round-robin", Partitioner::RoundRobin),
                ("fixed", Partitioner::Fixed),
            ],
        )?;
        let properties = properties(&mut o)?;
        o.finish(SINK_KEYS)?;
        Ok(SinkConfig {
            bootstrap_servers,
            topic,
            topic_header,
            semantic,
            log_failures_only,
            transactional_id_prefix,
            transaction_timeout,
            scale_down_factor,
            partitioner,
            properties,
        })
    }
}

/// `properties = { "<librdkafka property>" = "<value>" }`, values rendered as strings.
fn properties<'a>(o: &mut Options<'a>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    if let Some(t) = o.table("properties")? {
        for (k, v) in t {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_) => {
                    v.to_string()
                }
                other => {
                    return Err(o.invalid(
                        "properties",
                        format!("{k:?} must be a string or number, not {}", other.type_str()),
                    ));
                }
            };
            out.insert(k.clone(), v);
        }
    }
    Ok(out)
}

/// A librdkafka client config: the bootstrap servers, weir's settings, then the user's
/// properties (which win).
fn client_config(
    bootstrap: &str,
    ours: &[(&str, &str)],
    user: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set("client.id", "weir");
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in user {
        c.set(k, v);
    }
    c
}

/// How long a metadata or offset request to the broker may take before the node fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An error of node `uid`[`subtask`]'s Kafka `connector`.
fn error(uid: &str, subtask: u32, connector: &'static str, message: String) -> NodeError {
    NodeError::External {
        node: uid.to_owned(),
        subtask,
        connector,
        message,
    }
}
