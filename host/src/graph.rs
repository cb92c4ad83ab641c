//! The job graph: nodes in topological order, each with its plugin loaded and its kind checked,
//! its sandbox and limits resolved, and its input edges.
//!
//! Invariant: a [`JobGraph`] is runnable as built: every input exists and produces records, there
//! is no cycle, every plugin is a component of its node's kind, every granted directory exists,
//! and `forward` edges join nodes of equal parallelism.

use crate::config::{
    ConfigError, DirMode, Inputs, NodeKind, NodeSection, OnError, Partition, PipelineSpec,
};
use crate::plugin::{Limits, LoadedPlugin, PluginHost, PluginOrigin, SandboxSpec};
use crate::protected::{Protected, Why};
use crate::runtime::{Care, Job, JobNode, NodeFactory, Port};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use weir_core::time::watermarks::{DEFAULT_INTERVAL, Strategy, TimestampFrom};

/// A validated, runnable pipeline.
pub struct JobGraph {
    pub name: String,
    /// In topological order: every node comes after its inputs.
    pub nodes: Vec<Node>,
    pub batch_size: u32,
    pub channel_capacity: usize,
    /// Key groups of the job's keyed state (`[pipeline] max_parallelism`).
    pub max_parallelism: u32,
}

/// One node of the graph.
pub struct Node {
    /// Stable uid: the node's name in the pipeline file.
    pub uid: String,
    pub kind: NodeKind,
    pub plugin: Plugin,
    pub parallelism: u32,
    pub inputs: Vec<Edge>,
    pub config: crate::config::PluginConfig,
    pub sandbox: SandboxSpec,
    pub limits: Limits,
    /// Recycle operator instances whose memory passes this many bytes.
    pub recycle_above: Option<u64>,
    /// Operators: what to do with a record the plugin fails on.
    pub on_error: OnError,
    /// Where the node's output gets its event time, if it does.
    pub watermarks: Option<Strategy>,
    /// Operators: may run chained into the upstream subtask.
    pub chain: bool,
}

/// What runs a node: a Wasm component, or a connector native to the host.
#[derive(Clone)]
pub enum Plugin {
    Wasm(LoadedPlugin),
    Native(crate::connector::Native),
}

impl std::fmt::Display for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Plugin::Wasm(p) => write!(f, "{}", p.origin),
            Plugin::Native(n) => write!(f, "{n}"),
        }
    }
}

/// An edge into a node.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    /// Index of the upstream node in [`JobGraph::nodes`].
    pub from: usize,
    pub partition: Partition,
    /// Which output of the upstream node it carries.
    pub port: Port,
}

impl JobGraph {
    /// Validate `spec` and load every plugin through `host`.
    pub fn build(spec: &PipelineSpec, host: &PluginHost) -> Result<Self, ConfigError> {
        let sections = &spec.file.node;
        if sections.is_empty() {
            return Err(spec.invalid(
                "node",
                "the pipeline has no nodes: add [node.<name>] tables",
            ));
        }
        let inputs = check_edges(spec)?;
        let upstream_nodes: BTreeMap<String, Vec<String>> = inputs
            .iter()
            .map(|(uid, names)| {
                let nodes = names.iter().map(|i| split_port(i).0.to_owned()).collect();
                (uid.clone(), nodes)
            })
            .collect();
        check_dead_letters(spec, &inputs)?;
        let order = topological_order(spec, &upstream_nodes)?;
        let protected = protected_paths(spec, host)?;
        let index: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut nodes = Vec::with_capacity(order.len());
        for uid in &order {
            let section = &sections[uid];
            let key = |k: &str| format!("node.{uid}.{k}");
            let watermarks = strategy(spec, uid, section)?;
            if let Some(native) = crate::connector::Native::build(spec, uid, section)? {
                nodes.push(Node {
                    uid: uid.clone(),
                    kind: section.kind,
                    plugin: Plugin::Native(native),
                    parallelism: section.parallelism,
                    inputs: edges_of(&inputs[uid], &index, section.partition),
                    config: Default::default(),
                    sandbox: SandboxSpec::default(),
                    limits: Limits::default(),
                    recycle_above: None,
                    on_error: OnError::Fail,
                    watermarks,
                    chain: section.chain.unwrap_or(true),
                });
                continue;
            }
            let origin = resolve_plugin(spec, uid, section.kind, &section.plugin)?;
            let plugin = host
                .load(&origin)
                .map_err(|e| spec.invalid(key("plugin"), e.to_string()))?;
            if plugin.kind != section.kind {
                return Err(spec.invalid(
                    key("plugin"),
                    format!(
                        "{origin} is {} plugin, but the node is {} (kind = \"{}\"): use {} plugin or change `kind`",
                        a(plugin.kind), a(section.kind), section.kind, a(section.kind)
                    ),
                ));
            }
            let limits = limits_of(spec, uid, section)?;
            let recycle_above = recycle_above(spec, uid, section, &limits)?;
            let sandbox = sandbox_for(spec, uid, &origin, limits.memory, &protected)?;
            let on_error = section.on_error.unwrap_or_default();
            if on_error != OnError::Fail && section.kind != NodeKind::Operator {
                return Err(spec.invalid(
                    key("on_error"),
                    format!(
                        "applies to operators only (this node is {}): a source or sink cannot replay a record without side effects",
                        a(section.kind)
                    ),
                ));
            }
            nodes.push(Node {
                uid: uid.clone(),
                kind: section.kind,
                plugin: Plugin::Wasm(plugin),
                parallelism: section.parallelism,
                inputs: edges_of(&inputs[uid], &index, section.partition),
                config: crate::config::PluginConfig::of(&section.config),
                sandbox,
                limits,
                recycle_above,
                on_error,
                watermarks,
                chain: section.chain.unwrap_or(true),
            });
        }
        Ok(JobGraph {
            name: spec.name.clone(),
            nodes,
            batch_size: spec.file.pipeline.batch_size,
            channel_capacity: spec.file.pipeline.channel_capacity,
            max_parallelism: spec.file.pipeline.max_parallelism,
        })
    }
}

/// A `dead-letter` node needs a node that takes its dead letters.
fn check_dead_letters(
    spec: &PipelineSpec,
    inputs: &BTreeMap<String, Vec<String>>,
) -> Result<(), ConfigError> {
    for (uid, section) in &spec.file.node {
        let wanted = format!("{uid}.dead-letter");
        if crate::connector::routes_dead_letters(section)
            && !inputs.values().flatten().any(|i| *i == wanted)
        {
            let key = if section.kind == NodeKind::Operator {
                format!("node.{uid}.on_error")
            } else {
                format!("node.{uid}.config.on_corrupt")
            };
            return Err(spec.invalid(
                key,
                format!(
                    "\"dead-letter\" needs a node that takes the dead letters: add a sink with input = \"{wanted}\" (or use \"skip\" or \"fail\")"
                ),
            ));
        }
    }
    Ok(())
}

/// A Wasm node's limits: memory, time budget, reply limits.
fn limits_of(spec: &PipelineSpec, uid: &str, section: &NodeSection) -> Result<Limits, ConfigError> {
    let key = |k: &str| format!("node.{uid}.{k}");
    let mut limits = Limits::default();
    if let Some(m) = section.memory {
        limits.memory = m.0;
    }
    if let Some(t) = section.time_budget {
        limits.time_budget = t.0;
    }
    if let Some(n) = section.max_reply_records {
        limits.reply.records = at_least_one(spec, &key("max_reply_records"), n)?;
    }
    if let Some(n) = section.max_reply_headers {
        limits.reply.headers = n;
    }
    if let Some(b) = section.max_reply_bytes {
        limits.reply.bytes = at_least_one(spec, &key("max_reply_bytes"), b.0 as usize)?;
    }
    Ok(limits)
}

/// The memory mark past which an operator's instance is recycled: below its ceiling.
fn recycle_above(
    spec: &PipelineSpec,
    uid: &str,
    section: &NodeSection,
    limits: &Limits,
) -> Result<Option<u64>, ConfigError> {
    let key = |k: &str| format!("node.{uid}.{k}");
    Ok(match &section.recycle_above {
        None => None,
        Some(_) if section.kind != NodeKind::Operator => {
            return Err(spec.invalid(key("recycle_above"), "only operators are recycled"));
        }
        Some(r) => {
            let bytes = r.0;
            if bytes >= limits.memory {
                return Err(spec.invalid(
                    key("recycle_above"),
                    format!(
                        "must be below the node's memory ceiling ({} bytes)",
                        limits.memory
                    ),
                ));
            }
            Some(bytes)
        }
    })
}

/// The edges into a node from its (checked) input names.
fn edges_of(names: &[String], index: &BTreeMap<&str, usize>, partition: Partition) -> Vec<Edge> {
    names
        .iter()
        .map(|name| {
            let (node, port) = split_port(name);
            Edge {
                from: index[node],
                partition,
                port,
            }
        })
        .collect()
}

/// The output an input name refers to: `events` is the main output of node `events`,
/// `events.dead-letter` its dead-letter output, `events.late` its late records.
pub fn split_port(input: &str) -> (&str, Port) {
    if let Some(node) = input.strip_suffix(".dead-letter") {
        return (node, Port::DeadLetter);
    }
    match input.strip_suffix(".late") {
        Some(node) => (node, Port::Late),
        None => (input, Port::Main),
    }
}

/// The node's watermark strategy, from `[node.<uid>.watermarks]`.
fn strategy(
    spec: &PipelineSpec,
    uid: &str,
    section: &crate::config::NodeSection,
) -> Result<Option<Strategy>, ConfigError> {
    let Some(w) = &section.watermarks else {
        return Ok(None);
    };
    let key = |k: &str| format!("node.{uid}.watermarks.{k}");
    if section.kind == NodeKind::Sink {
        return Err(spec.invalid(
            format!("node.{uid}.watermarks"),
            "a sink has no output to give event time to: put the strategy on the node that feeds it",
        ));
    }
    let timestamp =
        TimestampFrom::parse(&w.timestamp).map_err(|m| spec.invalid(key("timestamp"), m))?;
    Ok(Some(Strategy {
        timestamp,
        out_of_orderness: w.out_of_orderness.map(|s| s.0).unwrap_or_default(),
        idle_timeout: w.idle_timeout.map(|s| s.0),
        interval: w.interval.map_or(DEFAULT_INTERVAL, |s| s.0),
    }))
}

/// "a source", "an operator", "a sink".
fn a(kind: NodeKind) -> String {
    match kind {
        NodeKind::Operator => "an operator".into(),
        other => format!("a {other}"),
    }
}

/// Each node's input names, after checking kinds, names, parallelism and `forward` edges.
fn check_edges(spec: &PipelineSpec) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let sections = &spec.file.node;
    let max = spec.file.pipeline.max_parallelism;
    if max == 0 || max > weir_core::groups::MAX_MAX_PARALLELISM {
        return Err(spec.invalid(
            "pipeline.max_parallelism",
            format!(
                "{max} must be from 1 to {}",
                weir_core::groups::MAX_MAX_PARALLELISM
            ),
        ));
    }
    let mut inputs = BTreeMap::new();
    for (uid, section) in sections {
        let key = |k: &str| format!("node.{uid}.{k}");
        if section.parallelism == 0 {
            return Err(spec.invalid(key("parallelism"), "must be at least 1"));
        }
        let max = spec.file.pipeline.max_parallelism;
        if section.parallelism > max {
            return Err(spec.invalid(
                key("parallelism"),
                format!(
                    "{} is above the job's max_parallelism ({max}): keyed state has {max} key groups, one subtask needs at least one; raise [pipeline] max_parallelism (only possible before the job's first checkpoint, or with --fresh)",
                    section.parallelism
                ),
            ));
        }
        if uid.is_empty() || uid.contains(['.', '@']) {
            return Err(spec.invalid(
                format!("node.{uid}"),
                "a node name may not contain `.` or `@` (`.` names a node's outputs, as in \"events.late\"; `@` is kept for state weir stores beside the node's): rename the node",
            ));
        }
        let names: Vec<String> = match &section.input {
            None => Vec::new(),
            Some(Inputs::One(n)) => vec![n.clone()],
            Some(Inputs::Many(ns)) => ns.clone(),
        };
        match (section.kind, names.is_empty()) {
            (NodeKind::Source, false) => {
                return Err(spec.invalid(key("input"), "a source takes no input: remove `input`"));
            }
            (NodeKind::Operator | NodeKind::Sink, true) => {
                return Err(spec.invalid(
                    key("input"),
                    format!("missing: {} needs `input = \"<node>\"`", a(section.kind)),
                ));
            }
            _ => {}
        }
        for input in &names {
            let (name, port) = split_port(input);
            let Some(upstream) = sections.get(name) else {
                let known: Vec<&str> = sections.keys().map(String::as_str).collect();
                return Err(spec.invalid(
                    key("input"),
                    format!("no node named {name:?} (nodes: {})", known.join(", ")),
                ));
            };
            if upstream.kind == NodeKind::Sink {
                return Err(spec.invalid(
                    key("input"),
                    format!(
                        "{name:?} is a sink and produces no records: if `{name}` should pass records on, set its kind to \"operator\" (node.{name}.kind)"
                    ),
                ));
            }
            if port == Port::Late && upstream.kind != NodeKind::Operator {
                return Err(spec.invalid(
                    key("input"),
                    format!(
                        "{name:?} has no late output: only operators send records that came too late to `<node>.late`"
                    ),
                ));
            }
            if port == Port::DeadLetter && !crate::connector::routes_dead_letters(upstream) {
                return Err(spec.invalid(
                    key("input"),
                    format!(
                        "{name:?} has no dead-letter output: only an operator with on_error = \"dead-letter\" or a kafka source with on_corrupt = \"dead-letter\" has one"
                    ),
                ));
            }
            if section.partition == Partition::Forward
                && upstream.parallelism != section.parallelism
            {
                return Err(spec.invalid(
                    key("partition"),
                    format!(
                        "`forward` joins subtask i to subtask i, but {name:?} has parallelism {} and {uid:?} has {}: use partition = \"hash\" or \"rebalance\"",
                        upstream.parallelism, section.parallelism
                    ),
                ));
            }
        }
        inputs.insert(uid.clone(), names);
    }
    Ok(inputs)
}

/// Kahn's algorithm; on a cycle, the error names it.
fn topological_order(
    spec: &PipelineSpec,
    inputs: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let mut remaining: BTreeMap<&str, usize> = inputs
        .iter()
        .map(|(n, ins)| (n.as_str(), ins.len()))
        .collect();
    let mut order: Vec<String> = Vec::new();
    loop {
        let ready: Vec<&str> = remaining
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            break;
        }
        for n in ready {
            remaining.remove(n);
            order.push(n.to_owned());
            for (m, ins) in inputs {
                let hits = ins.iter().filter(|i| *i == n).count();
                if let Some(d) = remaining.get_mut(m.as_str()) {
                    *d -= hits;
                }
            }
        }
    }
    if let Some((&start, _)) = remaining.iter().next() {
        // Walk inputs among the remaining nodes until one repeats: that is the cycle.
        let mut path = vec![start.to_owned()];
        let mut at = start;
        loop {
            let next = inputs[at]
                .iter()
                .find(|i| remaining.contains_key(i.as_str()))
                .expect("a node left over by Kahn's algorithm has a remaining input");
            if let Some(pos) = path.iter().position(|p| p == next) {
                let mut cycle: Vec<String> = path[pos..].to_vec();
                cycle.reverse();
                cycle.push(cycle[0].clone());
                return Err(spec.invalid(
                    format!("node.{}.input", path[pos]),
                    format!("the graph has a cycle: {}", cycle.join(" → ")),
                ));
            }
            path.push(next.clone());
            at = next;
        }
    }
    Ok(order)
}

/// A built-in name, or a path relative to the pipeline file.
fn resolve_plugin(
    spec: &PipelineSpec,
    uid: &str,
    kind: NodeKind,
    plugin: &str,
) -> Result<PluginOrigin, ConfigError> {
    if let Some(b) = crate::builtin::find(kind, plugin) {
        return Ok(PluginOrigin::Builtin { kind, name: b.name });
    }
    let path = spec.resolve(Path::new(plugin));
    if path.is_file() {
        return Ok(PluginOrigin::File(path));
    }
    if path.is_dir() {
        return Err(spec.invalid(
            format!("node.{uid}.plugin"),
            format!(
                "{} is a directory, not a .wasm component file (name the built component, e.g. target/wasm32-wasip2/release/<crate>.wasm)",
                path.display()
            ),
        ));
    }
    let looks_like_path = plugin.contains('/') || plugin.ends_with(".wasm");
    let builtins = builtin_names(kind).join(", ");
    Err(spec.invalid(
        format!("node.{uid}.plugin"),
        if looks_like_path {
            format!(
                "plugin file {} not found (paths are relative to the pipeline file; build the plugin first?)",
                path.display()
            )
        } else {
            format!("no built-in {kind} named {plugin:?} (built-in {kind}s: {builtins}) and no file {}", path.display())
        },
    ))
}

/// What no grant of this pipeline may reach: its state directory, the component cache, the
/// pipeline file, its plugin files and the `weir` binary.
fn protected_paths(spec: &PipelineSpec, host: &PluginHost) -> Result<Protected, ConfigError> {
    let mut p = Protected::default();
    let settings = crate::config::checkpoint::CheckpointSettings::from_spec(spec)?;
    p.add(&settings.dir, Why::StateDir);
    if let Some(cache) = host.cache_dir() {
        p.add(cache, Why::ComponentCache);
    }
    p.add(&spec.path, Why::TrustedFile);
    for section in spec.file.node.values() {
        let path = spec.resolve(Path::new(&section.plugin));
        if path.is_file() {
            p.add(&path, Why::TrustedFile);
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        p.add(&exe, Why::TrustedFile);
    }
    Ok(p)
}

/// The sandbox for node `uid`: only the directories and variables its grants name, none of
/// them reaching a path in `protected`.
fn sandbox_for(
    spec: &PipelineSpec,
    uid: &str,
    origin: &PluginOrigin,
    memory: u64,
    protected: &Protected,
) -> Result<SandboxSpec, ConfigError> {
    let grants = &spec.file.node[uid].grants;
    let mut dirs = Vec::new();
    for (i, d) in grants.dirs.iter().enumerate() {
        let key = format!("node.{uid}.grants.dirs[{i}]");
        let host = spec.resolve(&d.host);
        if !host.is_dir() {
            return Err(spec.invalid(
                format!("{key}.host"),
                format!("directory {} does not exist", host.display()),
            ));
        }
        if !d.guest.starts_with('/') {
            return Err(spec.invalid(
                format!("{key}.guest"),
                format!(
                    "{:?} must be an absolute guest path such as \"/data\"",
                    d.guest
                ),
            ));
        }
        let writable = d.mode == DirMode::ReadWrite;
        if let Some(why) = protected.conflict(&host, writable) {
            return Err(spec.invalid(
                format!("{key}.host"),
                format!(
                    "cannot grant {} {}: {why}. Grant a directory that holds only the plugin's data (e.g. data/){}",
                    host.display(),
                    if writable { "read-write" } else { "read" },
                    if writable { ", or make it mode = \"read\" if the plugin only reads" } else { ", or move the state with [checkpoint] dir" }
                ),
            ));
        }
        dirs.push((host, d.guest.clone(), writable));
    }
    let env = grants
        .env
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
        .collect();
    let mut connect = Vec::new();
    for (i, a) in grants.connect.iter().enumerate() {
        let addr: std::net::SocketAddr = a.parse().map_err(|_| {
            spec.invalid(
                format!("node.{uid}.grants.connect[{i}]"),
                format!("{a:?} is not an address such as \"127.0.0.1:9000\" (IP and port; no host names)"),
            )
        })?;
        connect.push(addr);
    }
    let is_stdout_sink = matches!(
        origin,
        PluginOrigin::Builtin {
            kind: NodeKind::Sink,
            name: "stdout"
        }
    );
    let section = &spec.file.node[uid];
    let handles = match section.max_handles {
        Some(n) => at_least_one(spec, &format!("node.{uid}.max_handles"), n)?,
        None => crate::plugin::DEFAULT_HANDLES,
    };
    let mut rate = crate::plugin::text::LogRate::default();
    if let Some(r) = section.log_rate {
        rate.per_second = r;
        rate.burst = r.saturating_mul(10);
    }
    Ok(SandboxSpec {
        dirs,
        env,
        stdout: grants.stdout || is_stdout_sink,
        stderr: grants.stderr,
        connect,
        memory,
        handles,
        log: crate::plugin::text::LogBudget::new(rate),
        cancel: Default::default(),
    })
}

/// `n`, unless it is 0.
fn at_least_one(spec: &PipelineSpec, key: &str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        return Err(spec.invalid(key, "must be at least 1"));
    }
    Ok(n)
}

/// Names of the built-ins of `kind`, native connectors included, for error messages.
fn builtin_names(kind: NodeKind) -> Vec<&'static str> {
    crate::builtin::BUILTINS
        .iter()
        .filter(|b| b.kind == kind)
        .map(|b| b.name)
        .chain(
            crate::connector::NATIVE
                .iter()
                .filter(|(k, _, _)| *k == kind)
                .map(|(_, n, _)| *n),
        )
        .collect()
}

impl Node {
    /// The factory of this node's subtask instances, Wasm or native, outside any job.
    pub fn factory(&self, host: Arc<PluginHost>) -> NodeFactory {
        self.factory_in(host, Arc::default(), "")
    }

    /// The same, for job `job` (its identity) whose cancel flag is `cancel`: setting it stops
    /// every call into the node's plugins.
    pub fn factory_in(
        &self,
        host: Arc<PluginHost>,
        cancel: Arc<AtomicBool>,
        job: &str,
    ) -> NodeFactory {
        match &self.plugin {
            Plugin::Wasm(plugin) => {
                let mut sandbox = self.sandbox.clone();
                sandbox.cancel = cancel;
                crate::plugin::node::factory(
                    host,
                    plugin.clone(),
                    crate::plugin::node::WasmNode {
                        uid: self.uid.clone(),
                        kind: self.kind,
                        parallelism: self.parallelism,
                        sandbox,
                        limits: self.limits,
                        config: self.config.clone(),
                        care: Care {
                            recycle_above: self.recycle_above,
                            on_error: self.on_error,
                        },
                    },
                )
            }
            Plugin::Native(native) => native.factory(&self.uid, self.parallelism, job),
        }
    }
}

impl JobGraph {
    /// The runnable job of this graph (`job`: its identity, empty outside a state directory).
    pub fn job(&self, host: Arc<PluginHost>, job: &str) -> Job {
        let cancel: Arc<AtomicBool> = Arc::default();
        Job {
            name: self.name.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| JobNode {
                    uid: n.uid.clone(),
                    parallelism: n.parallelism,
                    inputs: n
                        .inputs
                        .iter()
                        .map(|e| (e.from, e.partition, e.port))
                        .collect(),
                    factory: n.factory_in(host.clone(), cancel.clone(), job),
                    watermarks: n.watermarks.clone(),
                    chain: n.chain,
                })
                .collect(),
            batch_size: self.batch_size,
            channel_capacity: self.channel_capacity,
            max_parallelism: self.max_parallelism,
            cancel,
        }
    }
}
