//! The pipeline file: TOML → [`PipelineSpec`], with every relative path resolved against the
//! file's own directory.
//!
//! Invariant: every error names the offending key (`node.count.plugin`, `pipeline.batch_size`),
//! so a user can go straight to the line to fix.

pub mod checkpoint;
pub mod units;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use units::{Size, Span};

/// A problem with a pipeline file. `key` is the dotted path of the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {path}: {error}")]
    Read {
        path: PathBuf,
        // Not `source`: the message already carries it, and a source would print it twice.
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A whole pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    #[serde(default)]
    pub pipeline: PipelineSection,
    #[serde(default)]
    pub node: BTreeMap<String, NodeSection>,
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    #[serde(default)]
    pub restart: Option<RestartSection>,
    #[serde(default)]
    pub http: Option<HttpSection>,
}

/// `[http]`: the job's HTTP API and dashboard (off unless asked; `weir run --http` overrides).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Where to listen, e.g. "127.0.0.1:8080". Any address but loopback needs a token.
    pub listen: String,
    /// A file holding the API token (used when WEIR_HTTP_TOKEN is unset); relative to the
    /// pipeline file.
    pub token_file: Option<PathBuf>,
}

/// `[checkpoint]`: Flink's checkpoint settings, with the same meanings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Checkpointing on or off. Off: no state is kept and a crash starts over (sinks still
    /// commit once at the end of the input). Default on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often to checkpoint. Default "10s".
    pub interval: Option<Span>,
    /// "exactly-once" (aligned barriers, the default) or "at-least-once" (no alignment).
    #[serde(default)]
    pub mode: CheckpointMode,
    /// A checkpoint not complete after this long fails (the job goes on). Default "10m".
    pub timeout: Option<Span>,
    /// Most checkpoints in flight at once. Default 1.
    #[serde(default = "one_usize")]
    pub max_concurrent: usize,
    /// Least time between the end of one checkpoint and the start of the next. Default "0s".
    pub min_pause: Option<Span>,
    /// Completed checkpoints to keep. Default 3.
    #[serde(default = "three")]
    pub retain: usize,
    /// Where checkpoints and savepoints live, relative to the pipeline file.
    /// Default ".weir/<pipeline name>".
    pub dir: Option<PathBuf>,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection {
            enabled: true,
            interval: None,
            mode: CheckpointMode::default(),
            timeout: None,
            max_concurrent: 1,
            min_pause: None,
            retain: 3,
            dir: None,
        }
    }
}

fn yes() -> bool {
    true
}
fn one_usize() -> usize {
    1
}
fn three() -> usize {
    3
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointMode {
    #[default]
    ExactlyOnce,
    AtLeastOnce,
}

/// `[restart]`: what to do when an attempt of the job fails (see [`crate::restart`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartSection {
    pub strategy: RestartKind,
    /// fixed-delay, exponential-delay: restarts before giving up.
    pub attempts: Option<u32>,
    /// Pause before each restart (exponential-delay: before the first). Default "1s".
    pub delay: Option<Span>,
    /// exponential-delay: the longest pause. Default "1m".
    pub max_delay: Option<Span>,
    /// exponential-delay: each pause is the previous one times this. Default 2.0.
    pub multiplier: Option<f64>,
    /// exponential-delay: an attempt that ran this long before failing starts the count and the
    /// pauses over. Default "1h".
    pub reset_after: Option<Span>,
    /// exponential-delay: each pause varies randomly by up to this fraction. Default 0.1.
    pub jitter: Option<f64>,
    /// failure-rate: most failures within `interval`.
    pub max_failures: Option<u32>,
    /// failure-rate: the window failures are counted in. Default "1m".
    pub interval: Option<Span>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartKind {
    None,
    FixedDelay,
    ExponentialDelay,
    FailureRate,
}

/// `[pipeline]`: job-wide settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// A name for logs and the summary. Default: the file's stem.
    pub name: Option<String>,
    /// Most records a source returns per poll (the batch size). Default 1024.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Capacity of each channel between subtasks, in batches. Default 16.
    #[serde(default = "default_channel_capacity")]
    pub channel_capacity: usize,
    /// Key groups of the job's keyed state, the most parallelism a keyed node can ever have.
    /// Fixed for the life of the job's state. Default 128.
    #[serde(default = "default_max_parallelism")]
    pub max_parallelism: u32,
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            name: None,
            batch_size: default_batch_size(),
            channel_capacity: default_channel_capacity(),
            max_parallelism: default_max_parallelism(),
        }
    }
}

fn default_batch_size() -> u32 {
    1024
}
fn default_max_parallelism() -> u32 {
    weir_core::groups::DEFAULT_MAX_PARALLELISM
}
fn default_channel_capacity() -> usize {
    16
}

/// The kind of a node, which must match its plugin's world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Source,
    Operator,
    Sink,
}

impl std::fmt::Display for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeKind::Source => "source",
            NodeKind::Operator => "operator",
            NodeKind::Sink => "sink",
        })
    }
}

/// What to do with a record an operator fails on (`on_error` on the node).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Fail the job (and let the restart strategy decide).
    #[default]
    Fail,
    /// Drop the record, count it and log why.
    Skip,
    /// Send the record, with headers naming the failure, to `<node>.dead-letter`.
    DeadLetter,
}

/// How records travel from an input node to this node's subtasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    /// Subtask i feeds subtask i (needs equal parallelism); the default.
    #[default]
    Forward,
    /// By record key (value when keyless): equal keys meet in one subtask.
    Hash,
    /// Round robin over the downstream subtasks.
    Rebalance,
    /// Every record to every downstream subtask.
    Broadcast,
}

/// One input or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
}

/// `[node.<uid>]`: one node of the job graph. The table name is the node's stable uid.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub kind: NodeKind,
    /// A built-in plugin name, or a path to a `.wasm` component (relative to the pipeline file).
    pub plugin: String,
    pub input: Option<Inputs>,
    #[serde(default)]
    pub partition: Partition,
    #[serde(default = "one")]
    pub parallelism: u32,
    /// Memory ceiling per instance, e.g. "256MiB". Default 256 MiB.
    pub memory: Option<Size>,
    /// Time budget for one call into the plugin, e.g. "10s". Default 10 s.
    pub time_budget: Option<Span>,
    /// Most records one call into the plugin may return. Default 100000.
    pub max_reply_records: Option<usize>,
    /// Most bytes one call may return, e.g. "64MiB" (the default).
    pub max_reply_bytes: Option<Size>,
    /// Most headers (all records together) one call may return. Default 1000000.
    pub max_reply_headers: Option<usize>,
    /// Most WASI handles (open files, directories, sockets, streams) an instance may hold at
    /// once. Default 256.
    pub max_handles: Option<usize>,
    /// Most lines per second the node's plugins may log (stderr included), with bursts of ten
    /// times as many; the rest are dropped and counted. Default 100.
    pub log_rate: Option<u32>,
    /// Operators only: what to do with a record the plugin fails on: "fail" (the default),
    /// "skip" or "dead-letter" (to `<node>.dead-letter`).
    pub on_error: Option<OnError>,
    /// Operators only: replace the instance (snapshot → fresh instance → restore) when its
    /// memory passes this, e.g. "128MiB". For runtimes whose heap only grows. Default: never.
    pub recycle_above: Option<Size>,
    /// Where the node's output gets its event time, and how watermarks follow it.
    pub watermarks: Option<WatermarkSection>,
    /// Operators only: run inside the upstream subtask when the input is a `forward` edge of
    /// equal parallelism (no channel between the two). Default true; false keeps it apart.
    pub chain: Option<bool>,
    /// Passed to the plugin's `open`; values are rendered as strings, arrays one item per line.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub grants: Grants,
}

fn one() -> u32 {
    1
}

/// `[node.<uid>.watermarks]`: a watermark strategy on the node's output (Flink's
/// `assignTimestampsAndWatermarks`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSection {
    /// "record" (the record's own timestamp: Kafka's, or what the plugin set) or
    /// "json:<field>" (ms since the epoch or RFC 3339; dotted path for nested fields).
    pub timestamp: String,
    /// How late a record may come behind the newest seen, e.g. "5s". Default 0.
    pub out_of_orderness: Option<Span>,
    /// After this long without records a subtask is idle and holds no watermark back.
    pub idle_timeout: Option<Span>,
    /// How often watermarks are sent, e.g. "200ms" (the default); "0s": after every batch.
    pub interval: Option<Span>,
}

/// What a node's sandbox may reach. Nothing by default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Environment variables passed through from the host, by name.
    #[serde(default)]
    pub env: Vec<String>,
    /// Whether the plugin may write to the host's standard output.
    #[serde(default)]
    pub stdout: bool,
    /// Whether the plugin may write raw bytes to the host's standard error. Without it, what it
    /// writes there becomes warning lines in weir's log, escaped and under the node's name.
    #[serde(default)]
    pub stderr: bool,
    /// TCP addresses (IP:port) the plugin may connect to. No other network access exists.
    #[serde(default)]
    pub connect: Vec<String>,
}

/// A host directory mounted into the guest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// Directory on the host, relative to the pipeline file.
    pub host: PathBuf,
    /// Where the guest sees it, e.g. "/data".
    pub guest: String,
    #[serde(default)]
    pub mode: DirMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirMode {
    #[default]
    Read,
    ReadWrite,
}

/// A parsed pipeline file and where it lives.
#[derive(Debug)]
pub struct PipelineSpec {
    /// The pipeline file itself.
    pub path: PathBuf,
    /// Its directory: the base of every relative path in it.
    pub base: PathBuf,
    pub name: String,
    pub file: PipelineFile,
}

impl PipelineSpec {
    /// Read and parse `path`. Semantic checks live in [`crate::graph`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(path, &text)
    }

    /// Parse `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file = read_file(path, text)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = file.pipeline.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "pipeline".into())
        });
        let spec = PipelineSpec {
            path: path.to_owned(),
            base,
            name,
            file,
        };
        if spec.file.pipeline.batch_size == 0 {
            return Err(spec.invalid("pipeline.batch_size", "must be at least 1"));
        }
        if spec.file.pipeline.channel_capacity == 0 {
            return Err(spec.invalid("pipeline.channel_capacity", "must be at least 1"));
        }
        Ok(spec)
    }

    /// An error about `key` in this file.
    pub fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// `p` resolved against the pipeline file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }
}

/// A node's `config` table as plugins receive it: as string pairs (contracts 0.1.0 and 0.2.0)
/// or as one JSON document (0.3.0). Both are made once, when the pipeline loads.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginConfig {
    /// Scalars as text, arrays one item per line.
    pub pairs: Vec<(String, String)>,
    /// The table as a JSON object, values with their own types (dates as RFC 3339 strings).
    pub document: String,
}

impl Default for PluginConfig {
    /// No config: no pairs, the empty object.
    fn default() -> Self {
        PluginConfig::of(&toml::Table::new())
    }
}

impl PluginConfig {
    pub fn of(table: &toml::Table) -> Self {
        fn scalar(v: &toml::Value) -> String {
            match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(items) => {
                    items.iter().map(scalar).collect::<Vec<_>>().join("\n")
                }
                other => other.to_string(),
            }
        }
        let pairs = table.iter().map(|(k, v)| (k.clone(), scalar(v))).collect();
        let object = table.iter().map(|(k, v)| (k.clone(), json(v))).collect();
        PluginConfig {
            pairs,
            document: serde_json::Value::Object(object).to_string(),
        }
    }
}

/// A TOML value as JSON (a date or time as its RFC 3339 text, not toml's private form).
fn json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.iter().map(json).collect()),
        toml::Value::Table(t) => J::Object(t.iter().map(|(k, v)| (k.clone(), json(v))).collect()),
    }
}

/// The pipeline file's TOML, typed. A value of the wrong type or form is an error naming its
/// key (`node.count.memory`) and its line.
fn read_file(path: &Path, text: &str) -> Result<PipelineFile, ConfigError> {
    let parse = |message: String| ConfigError::Parse {
        path: path.to_owned(),
        message,
    };
    let de = toml::Deserializer::parse(text).map_err(|e| parse(e.to_string()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        if key.is_empty() || key == "." {
            return parse(inner.to_string());
        }
        let line = inner
            .span()
            .map(|at| text[..at.start.min(text.len())].lines().count().max(1));
        ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message: match line {
                Some(line) => format!("{} (line {line})", inner.message()),
                None => inner.message().to_owned(),
            },
        }
    })
}

/// Parse a size such as `256MiB`, `64 MB`, `1GiB` or `1048576` (bytes).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parse a duration such as `10s`, `500ms` or `2m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("256MiB"), Some(256 << 20));
        assert_eq!(parse_size("64 MB"), Some(64_000_000));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("MiB"), None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = PipelineSpec::parse(
            Path::new("p.toml"),
            "[node.a]\nkind = \"source\"\nplugin = \"sequence\"\nplugn = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("plugn"), "{err}");
    }

    #[test]
    fn config_arrays_become_lines_and_the_document_keeps_types() {
        let t: toml::Table = toml::from_str(
            "values = [\"a\", \"b\"]\nn = 3\nflag = true\nat = 1979-05-27T07:32:00Z\n[inner]\nx = 1.5",
        )
        .unwrap();
        let c = PluginConfig::of(&t);
        let doc: serde_json::Value = serde_json::from_str(&c.document).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "values": ["a", "b"], "n": 3, "flag": true,
                "at": "1979-05-27T07:32:00Z", "inner": {"x": 1.5}
            })
        );
        let mut r = c.pairs;
        r.retain(|(k, _)| k != "at" && k != "inner");
        r.sort();
        assert_eq!(
            r,
            vec![
                ("flag".into(), "true".into()),
                ("n".into(), "3".into()),
                ("values".into(), "a\nb".into())
            ]
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let spec = PipelineSpec::parse(Path::new("/x/y/p.toml"), "").unwrap();
        assert_eq!(
            spec.resolve(Path::new("in.txt")),
            PathBuf::from("/x/y/in.txt")
        );
        assert_eq!(spec.resolve(Path::new("/abs")), PathBuf::from("/abs"));
        assert_eq!(spec.name, "p");
    }
}
