//! Connectors native to the host rather than Wasm components: the Kafka source and sink
//! (librdkafka through rdkafka) and the Nexmark benchmark's event generator. They run on the same runtime, behind the same node traits, with
//! the same checkpoint hooks as Wasm plugins.
//!
//! Invariant: a native node is configured in the pipeline file like any node (`plugin = "kafka"`,
//! options in its `config` table) and every option is checked before the job starts, each error
//! naming its key.

pub mod kafka;
pub mod nexmark;
mod options;

use crate::config::{ConfigError, NodeKind, NodeSection, PipelineSpec};
use crate::runtime::NodeFactory;
use std::sync::Arc;

/// The native connectors, by kind and name: (kind, name, what it does).
pub const NATIVE: &[(NodeKind, &str, &str)] = &[
    (
        NodeKind::Source,
        "kafka",
        "records of Kafka topics (native, librdkafka); offsets checkpointed, exactly-once",
    ),
    (
        NodeKind::Source,
        "nexmark",
        "the Nexmark benchmark's persons, auctions and bids (JSON; seeded, event time set, rate-limitable)",
    ),
    (
        NodeKind::Sink,
        "kafka",
        "records to a Kafka topic (native, librdkafka); none, at-least-once or exactly-once (transactions)",
    ),
];

/// A configured native connector.
#[derive(Clone)]
pub enum Native {
    KafkaSource(Arc<kafka::SourceConfig>),
    KafkaSink(Arc<kafka::SinkConfig>),
    Nexmark(Arc<nexmark::NexmarkConfig>),
}

impl std::fmt::Display for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Native::KafkaSource(_) => f.write_str("native kafka source"),
            Native::KafkaSink(_) => f.write_str("native kafka sink"),
            Native::Nexmark(_) => f.write_str("native nexmark source"),
        }
    }
}

impl Native {
    /// The native connector node `uid` names, if it names one; its options checked.
    pub fn build(
        spec: &PipelineSpec,
        uid: &str,
        section: &NodeSection,
    ) -> Result<Option<Native>, ConfigError> {
        if !NATIVE
            .iter()
            .any(|(k, n, _)| *k == section.kind && *n == section.plugin)
        {
            return Ok(None);
        }
        let key = |k: &str| format!("node.{uid}.{k}");
        let wasm_only = [
            ("memory", section.memory.is_some()),
            ("time_budget", section.time_budget.is_some()),
            ("recycle_above", section.recycle_above.is_some()),
            (
                "grants",
                !(section.grants.dirs.is_empty()
                    && section.grants.env.is_empty()
                    && section.grants.connect.is_empty()
                    && !section.grants.stdout),
            ),
        ];
        if let Some((k, _)) = wasm_only.iter().find(|(_, set)| *set) {
            return Err(spec.invalid(
                key(k),
                format!(
                    "`{k}` applies to Wasm plugins only; the {} connector runs natively in the host: remove it",
                    section.plugin
                ),
            ));
        }
        let at = options::At { spec, uid };
        let table = &section.config;
        Ok(Some(match section.kind {
            NodeKind::Source if section.plugin == "nexmark" => {
                Native::Nexmark(Arc::new(nexmark::NexmarkConfig::parse(at, table)?))
            }
            NodeKind::Source => Native::KafkaSource(Arc::new(kafka::SourceConfig::parse(
                at, table, &spec.name, uid,
            )?)),
            NodeKind::Sink => {
                Native::KafkaSink(Arc::new(kafka::SinkConfig::parse(at, table, &spec.name)?))
            }
            NodeKind::Operator => unreachable!("no native operator is listed"),
        }))
    }

    /// Whether its subtasks' state is union state: on restore every subtask gets all of it
    /// (merged by [`Native::merge_union`]) and keeps what concerns it, so the parallelism may
    /// change and partitions may be added.
    pub fn union_state(&self) -> bool {
        matches!(self, Native::KafkaSource(_))
    }

    /// The union of the subtasks' `states`.
    pub fn merge_union(&self, states: &[&[u8]]) -> Result<Vec<u8>, String> {
        match self {
            Native::KafkaSource(_) => kafka::merge_source_states(states),
            Native::KafkaSink(_) => Err("the Kafka sink has no union state".into()),
            Native::Nexmark(_) => Err("the nexmark source has no union state".into()),
        }
    }

    /// The factory of this connector's subtasks in job `job` (its identity; empty outside a
    /// job, e.g. in benchmarks). A Kafka sink's transactional ids, and so its commit markers,
    /// include the job: `--fresh` or a same-named job elsewhere never fences its transactions
    /// or reads its markers.
    pub fn factory(&self, uid: &str, parallelism: u32, job: &str) -> NodeFactory {
        let uid = uid.to_owned();
        match self {
            Native::KafkaSource(cfg) => {
                let cfg = cfg.clone();
                NodeFactory::Source(Arc::new(move |subtask| {
                    let s = kafka::KafkaSource::start(cfg.clone(), &uid, subtask, parallelism)?;
                    Ok(Box::new(s) as Box<dyn crate::runtime::SourceNode>)
                }))
            }
            Native::Nexmark(cfg) => {
                let cfg = cfg.clone();
                NodeFactory::Source(Arc::new(move |subtask| {
                    let s = nexmark::NexmarkSource::new((*cfg).clone(), subtask, parallelism);
                    Ok(Box::new(s) as Box<dyn crate::runtime::SourceNode>)
                }))
            }
            Native::KafkaSink(cfg) => {
                let cfg = if job.is_empty() {
                    cfg.clone()
                } else {
                    let mut c = (**cfg).clone();
                    c.transactional_id_prefix = format!("{}-{job}", c.transactional_id_prefix);
                    Arc::new(c)
                };
                NodeFactory::Sink(Arc::new(move |subtask| {
                    let s = kafka::KafkaSink::start(cfg.clone(), &uid, subtask, parallelism)?;
                    Ok(Box::new(s) as Box<dyn crate::runtime::SinkNode>)
                }))
            }
        }
    }
}

/// Whether node `section` has a `<node>.dead-letter` output: a Kafka source sends corrupt input
/// there, an operator with `on_error = "dead-letter"` the records it fails on.
pub fn routes_dead_letters(section: &NodeSection) -> bool {
    (section.kind == NodeKind::Operator
        && section.on_error == Some(crate::config::OnError::DeadLetter))
        || section.kind == NodeKind::Source
            && section.plugin == "kafka"
            && section.config.get("on_corrupt").and_then(|v| v.as_str()) == Some("dead-letter")
}
