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

use super::options::{self, At, OneOrMany, Property};
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Key and value bytes as they are.
    #[default]
    Raw,
    /// The value must be JSON.
    Json,
}

/// What a source does with a record it cannot read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnCorrupt {
    #[default]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Semantic {
    None,
    #[default]
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

/// A Kafka source node's `config`, as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceOptions {
    bootstrap_servers: Option<String>,
    topics: Option<OneOrMany>,
    topic_pattern: Option<String>,
    group_id: Option<String>,
    #[serde(default)]
    start: StartName,
    start_timestamp: Option<i64>,
    start_offsets: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    stop_at: StopAt,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    with_metadata: bool,
    #[serde(default)]
    on_corrupt: OnCorrupt,
    rate: Option<std::num::NonZeroU32>,
    #[serde(default)]
    properties: BTreeMap<String, Property>,
}

#[derive(Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StartName {
    #[default]
    GroupOffsets,
    Earliest,
    Latest,
    Timestamp,
    SpecificOffsets,
}

#[derive(Clone, Copy, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StopAt {
    #[default]
    Never,
    Latest,
}

/// A Kafka sink node's `config`, as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkOptions {
    bootstrap_servers: Option<String>,
    topic: Option<String>,
    topic_header: Option<String>,
    #[serde(default)]
    semantic: Semantic,
    #[serde(default)]
    log_failures_only: bool,
    transactional_id_prefix: Option<String>,
    transaction_timeout: Option<crate::config::units::Span>,
    scale_down_factor: Option<u32>,
    #[serde(default)]
    partitioner: Partitioner,
    #[serde(default)]
    properties: BTreeMap<String, Property>,
}

/// `value`, or the error that says what to add for `key`.
fn required(
    at: At,
    key: &str,
    value: Option<String>,
    example: &str,
) -> Result<String, ConfigError> {
    value.ok_or_else(|| at.invalid(key, format!("missing: add {key} = {example}")))
}

impl SourceConfig {
    pub(crate) fn parse(
        at: At,
        table: &toml::Table,
        pipeline: &str,
        uid: &str,
    ) -> Result<Self, ConfigError> {
        let o: SourceOptions = options::read(at, table)?;
        let bootstrap_servers = required(
            at,
            "bootstrap_servers",
            o.bootstrap_servers,
            "\"127.0.0.1:9092\"",
        )?;
        let topics = topics(at, o.topics, o.topic_pattern)?;
        let start = start_at(at, o.start, o.start_timestamp, o.start_offsets)?;
        Ok(SourceConfig {
            bootstrap_servers,
            topics,
            group_id: o
                .group_id
                .unwrap_or_else(|| format!("weir-{pipeline}-{uid}")),
            start,
            bounded: matches!(o.stop_at, StopAt::Latest),
            format: o.format,
            with_metadata: o.with_metadata,
            on_corrupt: o.on_corrupt,
            rate: o.rate.map(std::num::NonZeroU32::get),
            properties: properties(o.properties),
        })
    }
}

/// `topics` or `topic_pattern`: one of the two.
fn topics(at: At, list: Option<OneOrMany>, pattern: Option<String>) -> Result<Topics, ConfigError> {
    match (list.map(OneOrMany::into_vec), pattern) {
        (Some(list), None) if !list.is_empty() => Ok(Topics::List(list)),
        (None, Some(p)) => regex::Regex::new(&format!("^(?:{p})$"))
            .map(Topics::Pattern)
            .map_err(|e| at.invalid("topic_pattern", format!("not a regex: {e}"))),
        (Some(_), Some(_)) => Err(at.invalid(
            "topic_pattern",
            "give either `topics` or `topic_pattern`, not both",
        )),
        _ => Err(at.invalid(
            "topics",
            "missing: add topics = [\"events\"] or topic_pattern = \"events-.*\"",
        )),
    }
}

/// Where reading starts, with the option each start position needs and no other.
fn start_at(
    at: At,
    start: StartName,
    timestamp: Option<i64>,
    offsets: Option<BTreeMap<String, i64>>,
) -> Result<StartAt, ConfigError> {
    if start != StartName::Timestamp && timestamp.is_some() {
        return Err(at.invalid("start_timestamp", "only used with start = \"timestamp\""));
    }
    if start != StartName::SpecificOffsets && offsets.is_some() {
        return Err(at.invalid(
            "start_offsets",
            "only used with start = \"specific-offsets\"",
        ));
    }
    Ok(match start {
        StartName::GroupOffsets => StartAt::GroupOffsets,
        StartName::Earliest => StartAt::Earliest,
        StartName::Latest => StartAt::Latest,
        StartName::Timestamp => StartAt::Timestamp(timestamp.ok_or_else(|| {
            at.invalid(
                "start_timestamp",
                "missing: start = \"timestamp\" needs start_timestamp = <ms since the epoch>",
            )
        })?),
        StartName::SpecificOffsets => {
            let table = offsets.ok_or_else(|| {
                at.invalid(
                    "start_offsets",
                    "missing: start = \"specific-offsets\" needs start_offsets = { \"<topic>:<partition>\" = <offset> }",
                )
            })?;
            let mut offsets = BTreeMap::new();
            for (k, v) in table {
                let bad = || {
                    at.invalid(
                        "start_offsets",
                        format!("{k:?} = {v}: write \"<topic>:<partition>\" = <offset>, e.g. \"events:0\" = 42"),
                    )
                };
                let (topic, partition) = k.rsplit_once(':').ok_or_else(bad)?;
                let partition: i32 = partition.parse().map_err(|_| bad())?;
                if v < 0 {
                    return Err(bad());
                }
                offsets.insert((topic.to_owned(), partition), v);
            }
            StartAt::SpecificOffsets(offsets)
        }
    })
}

impl SinkConfig {
    /// The transactional id of subtask `subtask` of sink node `uid`.
    pub fn transactional_id(&self, uid: &str, subtask: u32) -> String {
        format!("{}-{uid}-{subtask}", self.transactional_id_prefix)
    }

    pub(crate) fn parse(at: At, table: &toml::Table, pipeline: &str) -> Result<Self, ConfigError> {
        let o: SinkOptions = options::read(at, table)?;
        let bootstrap_servers = required(
            at,
            "bootstrap_servers",
            o.bootstrap_servers,
            "\"127.0.0.1:9092\"",
        )?;
        let topic = required(at, "topic", o.topic, "\"results\"")?;
        if o.log_failures_only && o.semantic != Semantic::AtLeastOnce {
            return Err(at.invalid(
                "log_failures_only",
                "only applies to semantic = \"at-least-once\"",
            ));
        }
        let transaction_timeout = o
            .transaction_timeout
            .map_or(Duration::from_secs(15 * 60), |s| s.0);
        if transaction_timeout < Duration::from_secs(1)
            || transaction_timeout > Duration::from_secs(i32::MAX as u64 / 1000)
        {
            return Err(at.invalid(
                "transaction_timeout",
                "must be between 1s and 24d (the broker caps it at transaction.max.timeout.ms, 15m by default)",
            ));
        }
        let scale_down_factor = o.scale_down_factor.unwrap_or(5);
        if !(1..=100).contains(&scale_down_factor) {
            return Err(at.invalid(
                "scale_down_factor",
                "must be between 1 (abort no other ids) and 100",
            ));
        }
        Ok(SinkConfig {
            bootstrap_servers,
            topic,
            topic_header: o.topic_header.unwrap_or_else(|| "target-topic".into()),
            semantic: o.semantic,
            log_failures_only: o.log_failures_only,
            transactional_id_prefix: o
                .transactional_id_prefix
                .unwrap_or_else(|| format!("weir-{pipeline}")),
            transaction_timeout,
            scale_down_factor,
            partitioner: o.partitioner,
            properties: properties(o.properties),
        })
    }
}

/// `properties = { "<librdkafka property>" = "<value>" }`, values rendered as strings.
fn properties(written: BTreeMap<String, Property>) -> BTreeMap<String, String> {
    written
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
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
