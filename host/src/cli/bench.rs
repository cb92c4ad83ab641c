//! `weir bench`: records/s of memory source → filter+map operator → discarding sink through the
//! whole runtime, with the operator as the built-in Wasm plugin and as native code, in one run;
//! plus the bare operator call, to tell runtime cost from boundary cost; the cost of
//! checkpoints; and (`--operator NAME=PATH`) word-count builds in several languages.

use crate::bench::{DiscardSink, MemorySource, NativeFilterMap, filter_map_native, make_records};
use crate::checkpoint::StoreHooks;
use crate::config::{NodeKind, Partition, PluginConfig};
use crate::graph::Node;
use crate::metrics::human;
use crate::plugin::{
    InstanceSpec, Limits, OperatorInstance, PluginHost, PluginOrigin, SandboxSpec,
};
use crate::runtime::{
    self, CheckpointHooks, CompletedCheckpoint, Job, JobNode, NoCheckpointStore, NodeFactory, Port,
    RunOptions,
};
use crate::state::StateStore;
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Records per measurement at the largest batch size (smaller batches use fewer).
    #[arg(long, default_value_t = 5_000_000)]
    pub records: u64,
    /// Batch sizes to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64,1024")]
    pub batches: Vec<usize>,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Records without keys: one list per record fewer to copy across the boundary, which shows
    /// what each nested list costs.
    #[arg(long)]
    pub no_keys: bool,
    /// Skip the checkpoint measurements (overhead of checkpoints every 1 s; checkpoint duration
    /// per operator state size).
    #[arg(long)]
    pub skip_checkpoints: bool,
    /// Operator state sizes whose checkpoint duration to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1MiB,100MiB")]
    pub state_sizes: Vec<String>,
    /// Compare word-count operators: NAME=PATH.wasm, repeatable (e.g. rust=..., python=...);
    /// each runs through the same pipeline beside the same logic in native Rust.
    #[arg(long = "operator", value_name = "NAME=PATH")]
    pub operators: Vec<String>,
    /// Run only the --operator comparison.
    #[arg(long)]
    pub only_operators: bool,
    /// Keys of the keyed-state checkpoint measurement (100-byte values; 1 % change between
    /// the full and the incremental checkpoint). 0 skips it.
    #[arg(long, default_value_t = 10_000_000)]
    pub keys: u64,
    /// Run only the keyed-state measurements.
    #[arg(long)]
    pub only_keyed: bool,
    /// Run only the Nexmark benchmark: the `nexmark` source → each query of examples/nexmark
    /// (Wasm, chained) → discard, events/s per core beside Flink's published figures.
    #[arg(long)]
    pub nexmark: bool,
    /// Events per Nexmark query.
    #[arg(long, default_value_t = 5_000_000)]
    pub events: u64,
    /// Run only the Kafka benchmark against the broker at these bootstrap servers: Kafka → Wasm
    /// filter-map → Kafka exactly-once (checkpoints every 1 s) beside raw librdkafka.
    /// Uses --records (default here: 1,000,000 if left at its default) and --value-size.
    #[arg(long, value_name = "SERVERS")]
    pub kafka: Option<String>,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(servers) = &args.kafka {
        let records = if args.records == 5_000_000 {
            1_000_000
        } else {
            args.records
        };
        super::bench_kafka::bench_kafka(servers, records, args.value_size)?;
        return Ok(ExitCode::SUCCESS);
    }
    let host = Arc::new(PluginHost::new()?);
    if args.nexmark {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        nexmark(&rt, &host, args.events)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.only_keyed {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        keyed_state(&rt, &host, &args)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.only_operators {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        compare_operators(&rt, &host, &args)?;
        return Ok(ExitCode::SUCCESS);
    }
    let origin = PluginOrigin::Builtin {
        kind: NodeKind::Operator,
        name: "filter-map",
    };
    let plugin = host.load(&origin)?;
    let node = operator_node(
        "filter-map",
        &plugin,
        PluginConfig::default(),
        1,
        Limits::default().memory,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "weir bench: memory source → filter+map (drops 25%, upper-cases) → discard; {}, {}-byte values; {} cores",
        if args.no_keys {
            "no keys"
        } else {
            "8-byte keys"
        },
        args.value_size,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:>6} | {:>14} {:>14} {:>7} | {:>14} {:>14} {:>7}",
        "batch", "wasm pipeline", "native pipe", "ratio", "wasm call", "native call", "ratio"
    );
    for &batch in &args.batches {
        let batch = batch.max(1);
        let total = args.records.min(batch as u64 * 100_000).max(batch as u64);
        let template = make_records(batch, args.value_size, !args.no_keys);

        let wasm_pipe = pipeline(&rt, &template, total, node.factory(host.clone()))?;
        let native_pipe = pipeline(
            &rt,
            &template,
            total,
            NodeFactory::Operator(Arc::new(|_, _| Ok(Box::new(NativeFilterMap)))),
        )?;

        let mut instance = OperatorInstance::start(&bench_spec(&host, &plugin, &node), None)?;
        let wasm_call = rate(total, || {
            let mut done = 0;
            while done < total {
                std::hint::black_box(instance.process(&template)?);
                done += template.len() as u64;
            }
            Ok(())
        })?;
        let native_call = rate(total, || {
            let mut done = 0;
            while done < total {
                std::hint::black_box(filter_map_native(&template));
                done += template.len() as u64;
            }
            Ok(())
        })?;
        println!(
            "{:>6} | {:>12}/s {:>12}/s {:>6.2}x | {:>12}/s {:>12}/s {:>6.2}x",
            batch,
            human(wasm_pipe),
            human(native_pipe),
            native_pipe / wasm_pipe,
            human(wasm_call),
            human(native_call),
            native_call / wasm_call,
        );
    }
    println!("ratio = native records/s ÷ wasm records/s (1.00x = as fast as native)");
    instance_start(&rt, &host, &plugin, &node)?;
    window_count(&rt, &host, &args)?;
    keyed_state(&rt, &host, &args)?;
    if !args.skip_checkpoints {
        checkpoint_costs(&rt, &host, &node, &args)?;
    }
    compare_operators(&rt, &host, &args)?;
    Ok(ExitCode::SUCCESS)
}

/// The one filter-map instance the benchmarks call directly.
fn bench_spec<'a>(
    host: &'a PluginHost,
    plugin: &'a crate::plugin::LoadedPlugin,
    node: &'a Node,
) -> InstanceSpec<'a> {
    InstanceSpec {
        host,
        plugin,
        node: "filter-map",
        subtask: 0,
        parallelism: 1,
        sandbox: &node.sandbox,
        limits: node.limits,
        config: &node.config,
    }
}

/// What starting one operator instance costs (a recycle, or a restart after a trap, is one):
/// instantiation from the plugin's pre-linked template and `open`.
fn instance_start(
    rt: &tokio::runtime::Runtime,
    host: &PluginHost,
    plugin: &crate::plugin::LoadedPlugin,
    node: &Node,
) -> anyhow::Result<()> {
    const STARTS: u32 = 200;
    let _rt = rt.enter();
    let started = Instant::now();
    for _ in 0..STARTS {
        std::hint::black_box(OperatorInstance::start(
            &bench_spec(host, plugin, node),
            None,
        )?);
    }
    let each = started.elapsed() / STARTS;
    println!(
        "instance start (instantiate from the template + open; what a recycle costs): {:.1} µs ({STARTS} starts)",
        each.as_secs_f64() * 1e6
    );
    Ok(())
}

/// Keyed tumbling event-time window count: 10,000 keys, 1 s windows, 100 records per ms of
/// event time (10 per key per window), watermarks after every batch of 1024; the SDK's window
/// code in Wasm (host timers) beside the same code native, in one run.
fn window_count(
    rt: &tokio::runtime::Runtime,
    host: &Arc<PluginHost>,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    const KEYS: u64 = 10_000;
    const PER_MS: u64 = 100;
    let total = (args.records / 2).max(KEYS * 10);
    let plugin = host.load(&PluginOrigin::Builtin {
        kind: crate::builtin::BENCH_WINDOW.kind,
        name: crate::builtin::BENCH_WINDOW.name,
    })?;
    let config = plugin_config([("window_ms", 1000.into())]);
    let node = operator_node("window", &plugin, config, 1, Limits::default().memory);
    let windows = total / (PER_MS * 1000);
    let mut rates = Vec::new();
    for operator in [
        node.factory(host.clone()),
        NodeFactory::Operator(Arc::new(|_, _| {
            Ok(Box::new(crate::bench::NativeWindowCount::new(1000)))
        })),
    ] {
        let report = rt.block_on(runtime::run(
            window_job(total, KEYS, PER_MS, operator),
            RunOptions::default(),
            &mut NoCheckpointStore,
            None,
        ))?;
        let fired = report.metrics[1].records_out();
        anyhow::ensure!(
            fired == KEYS * windows.max(1) || fired == KEYS * (windows + 1),
            "the window operator emitted {fired} counts for {windows} windows of {KEYS} keys"
        );
        rates.push(total as f64 / report.elapsed.as_secs_f64());
    }
    println!();
    println!(
        "keyed tumbling-window count: {total} records, {KEYS} keys, 1 s event-time windows ({windows} of them), batch 1024"
    );
    println!(
        "  wasm (weir_sdk::window, host timers): {}/s   native (same code): {}/s   ratio {:.2}x",
        human(rates[0]),
        human(rates[1]),
        rates[1] / rates[0]
    );
    Ok(())
}

/// Keyed state: a word count with its counts in keyed state against the same count in a
/// `HashMap` in the plugin (both Wasm, same pipeline); then checkpoint and restore costs of
/// `args.keys` keys in the host's store, full against incremental.
fn keyed_state(
    rt: &tokio::runtime::Runtime,
    host: &Arc<PluginHost>,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let plugin = host.load(&PluginOrigin::Builtin {
        kind: crate::builtin::BENCH_COUNT.kind,
        name: crate::builtin::BENCH_COUNT.name,
    })?;
    let lines = crate::bench::make_lines(1024);
    let total = (args.records / 10).max(1024);
    let mut rates = Vec::new();
    for mode in ["hashmap", "keyed"] {
        let config = plugin_config([("mode", mode.into())]);
        let node = operator_node("count", &plugin, config, 1, Limits::default().memory);
        let mut best: f64 = 0.0;
        for _ in 0..2 {
            let (rate, _) = pipeline_with(
                rt,
                &lines,
                total,
                node.factory(host.clone()),
                RunOptions::default(),
                &mut NoCheckpointStore,
            )?;
            best = best.max(rate);
        }
        rates.push(best);
    }
    println!();
    println!(
        "keyed count: {total} lines of 8 words (16 distinct), batch 1024, memory source → Wasm word count → discard"
    );
    println!(
        "  counts in a HashMap in the plugin: {}/s words   in keyed state: {}/s words   ratio {:.2}x",
        human(rates[0] * 8.0),
        human(rates[1] * 8.0),
        rates[0] / rates[1]
    );
    if args.keys == 0 {
        return Ok(());
    }
    keyed_checkpoints(args.keys)
}

/// Checkpoint and restore costs of `keys` keys in the host's keyed store (sled, on disk).
fn keyed_checkpoints(keys: u64) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix(".weir-bench-keyed-")
        .tempdir_in(".")?;
    let store = StateStore::open(dir.path())?;
    let keyed = store.keyed_store()?;
    let mut backend = crate::keyed::KeyedBackend::new(&keyed, "count", 0, 1, 128)?;
    let value = vec![b'v'; 100];
    let key = |i: u64| format!("key-{i:012}");
    let t = Instant::now();
    for i in 0..keys {
        backend.set("counts", key(i).as_bytes(), Some(value.clone()))?;
    }
    let load = t.elapsed();
    // (manifest, writing the pieces, making them durable)
    let checkpoint = |backend: &mut crate::keyed::KeyedBackend, id: u64| {
        let t = Instant::now();
        let m = backend.snapshot(id)?;
        let pieces = t.elapsed();
        store.flush()?;
        anyhow::Ok((m, pieces, t.elapsed() - pieces))
    };
    let (full, full_took, full_sync) = checkpoint(&mut backend, 1)?;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let changed = keys / 100;
    let updated = vec![b'u'; 100];
    for _ in 0..changed {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        backend.set("counts", key(x % keys).as_bytes(), Some(updated.clone()))?;
    }
    let (incr, incr_took, incr_sync) = checkpoint(&mut backend, 2)?;
    let t = Instant::now();
    let mut restored = crate::keyed::KeyedBackend::new(&keyed, "count", 0, 1, 128)?;
    restored.restore(&incr)?;
    let restore_took = t.elapsed();
    anyhow::ensure!(
        restored.get("counts", key(keys - 1).as_bytes())?.is_some(),
        "the restored state misses a key"
    );
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let full_bytes = full.bytes_written_by(1);
    let incr_bytes = incr.bytes_written_by(2);
    println!();
    println!(
        "keyed state: {keys} keys of 100-byte values ({:.0} MiB as pieces), one subtask; live state in redb, pieces in sled, both on disk",
        mib(incr.bytes())
    );
    println!(
        "  load: {}/s keys ({:.1} s)",
        human(keys as f64 / load.as_secs_f64()),
        load.as_secs_f64()
    );
    println!(
        "  full checkpoint:        {:>8.1} MiB in {:>6} ms (pieces {} ms + sync {} ms)",
        mib(full_bytes),
        (full_took + full_sync).as_millis(),
        full_took.as_millis(),
        full_sync.as_millis()
    );
    println!(
        "  after 1% keys changed:  {:>8.1} MiB in {:>6} ms (pieces {} ms + sync {} ms): {:.2}% of the bytes",
        mib(incr_bytes),
        (incr_took + incr_sync).as_millis(),
        incr_took.as_millis(),
        incr_sync.as_millis(),
        100.0 * incr_bytes as f64 / full_bytes as f64
    );
    println!(
        "  restore (one subtask, every key group): {} ms",
        restore_took.as_millis()
    );
    // The state lives on disk: the process's memory stays far below it.
    if let Some(peak) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().to_owned())
        })
    {
        println!("  peak memory of this process: {peak}");
    }
    Ok(())
}

/// Keyed event source (watermark after every batch) → `operator` → discard.
fn window_job(total: u64, keys: u64, per_ms: u64, operator: NodeFactory) -> Job {
    use weir_core::time::watermarks::{Strategy, TimestampFrom};
    Job {
        name: "bench-window".into(),
        nodes: vec![
            JobNode {
                chain: true,
                uid: "events".into(),
                parallelism: 1,
                inputs: Vec::new(),
                factory: NodeFactory::Source(Arc::new(move |_| {
                    Ok(Box::new(crate::bench::KeyedEventSource::new(
                        total, keys, per_ms, 1024,
                    )))
                })),
                watermarks: Some(Strategy {
                    timestamp: TimestampFrom::Record,
                    out_of_orderness: Duration::ZERO,
                    idle_timeout: None,
                    interval: Duration::ZERO,
                }),
            },
            JobNode {
                chain: true,
                uid: "window".into(),
                parallelism: 1,
                inputs: vec![(0, Partition::Forward, Port::Main)],
                factory: operator,
                watermarks: None,
            },
            JobNode {
                chain: true,
                uid: "discard".into(),
                parallelism: 1,
                inputs: vec![(1, Partition::Forward, Port::Main)],
                factory: NodeFactory::Sink(Arc::new(|_| Ok(Box::new(DiscardSink)))),
                watermarks: None,
            },
        ],
        batch_size: 1024,
        channel_capacity: 16,
        max_parallelism: crate::keyed::DEFAULT_MAX_PARALLELISM,
        cancel: Default::default(),
    }
}

/// The same word-count operator in several builds (languages) through the same pipeline —
/// memory source of 8-word lines → operator → discard — beside native Rust, in one run.
fn compare_operators(
    rt: &tokio::runtime::Runtime,
    host: &Arc<PluginHost>,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    if args.operators.is_empty() {
        return Ok(());
    }
    let lines = crate::bench::make_lines(1024);
    let total = (args.records / 10).max(1024);
    println!();
    println!(
        "word count by language: {total} lines of 8 words, batch 1024, memory source → operator → discard"
    );
    println!(
        "{:>10} | {:>12} {:>14} | {:>9}",
        "build", "lines/s", "words/s", "vs native"
    );
    let native = NodeFactory::Operator(Arc::new(|_, _| {
        Ok(Box::new(crate::bench::NativeWordCount::default()))
    }));
    let (native_rate, _) = pipeline_with(
        rt,
        &lines,
        total,
        native,
        RunOptions::default(),
        &mut NoCheckpointStore,
    )?;
    println!(
        "{:>10} | {:>10}/s {:>12}/s | {:>8.2}x",
        "native",
        human(native_rate),
        human(native_rate * 8.0),
        1.0
    );
    for spec in &args.operators {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--operator {spec:?}: expected NAME=PATH.wasm"))?;
        let origin = PluginOrigin::File(path.into());
        let plugin = host.load(&origin)?;
        anyhow::ensure!(
            plugin.kind == NodeKind::Operator,
            "{path} is not an operator plugin"
        );
        let node = operator_node(name, &plugin, PluginConfig::default(), 1, 1 << 30);
        let factory = node.factory(host.clone());
        let (rate, _) = pipeline_with(
            rt,
            &lines,
            total,
            factory,
            RunOptions::default(),
            &mut NoCheckpointStore,
        )?;
        println!(
            "{:>10} | {:>10}/s {:>12}/s | {:>8.2}x",
            name,
            human(rate),
            human(rate * 8.0),
            native_rate / rate
        );
    }
    println!("vs native = native lines/s ÷ the build's lines/s (1.00x = as fast as native Rust)");
    Ok(())
}

/// Throughput with checkpoints every 1 s (sled, exactly-once) against none, and how long one
/// checkpoint takes for operators holding the given amounts of state.
fn checkpoint_costs(
    rt: &tokio::runtime::Runtime,
    host: &Arc<PluginHost>,
    node: &Node,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    let template = make_records(1024, args.value_size, !args.no_keys);
    let total = (args.records * 2).max(1024);
    println!();
    println!(
        "checkpoint overhead, batch 1024, wasm filter-map, {} records per run (best of 2):",
        total
    );
    let mut best = [0f64; 2];
    for _ in 0..2 {
        for (i, interval) in [None, Some(Duration::from_secs(1))].into_iter().enumerate() {
            let _ = std::fs::remove_dir_all(&dir);
            let store = StateStore::open(&dir)?;
            let mut hooks = Timed::new(&store, &dir);
            let options = RunOptions {
                interval,
                ..RunOptions::default()
            };
            let factory = node.factory(host.clone());
            let (rate, _) = pipeline_with(rt, &template, total, factory, options, &mut hooks)?;
            best[i] = best[i].max(rate);
        }
    }
    println!(
        "  checkpoints off: {}/s   every 1 s: {}/s   cost: {:.1}%",
        human(best[0]),
        human(best[1]),
        (1.0 - best[1] / best[0]) * 100.0
    );
    println!(
        "checkpoint duration by operator state (trigger → all acked → stored in sled and flushed):"
    );
    let stateful_plugin = host.load(&PluginOrigin::Builtin {
        kind: crate::builtin::BENCH_STATE.kind,
        name: crate::builtin::BENCH_STATE.name,
    })?;
    for size in &args.state_sizes {
        let bytes = crate::config::parse_size(size)
            .ok_or_else(|| anyhow::anyhow!("--state-sizes: {size:?} is not a size such as 1MiB"))?;
        let config = plugin_config([("bytes", (bytes as i64).into())]);
        let memory = (bytes * 4).max(256 << 20);
        let stateful = operator_node("bench-state", &stateful_plugin, config, 1, memory);
        let _ = std::fs::remove_dir_all(&dir);
        let store = StateStore::open(&dir)?;
        let mut hooks = Timed::new(&store, &dir);
        let options = RunOptions {
            interval: Some(Duration::from_millis(500)),
            ..RunOptions::default()
        };
        let factory = stateful.factory(host.clone());
        pipeline_with(
            rt,
            &template,
            args.records.max(1024),
            factory,
            options,
            &mut hooks,
        )?;
        let n = hooks.times.len().max(1) as u32;
        let acked: Duration = hooks.times.iter().map(|t| t.0).sum::<Duration>() / n;
        let stored: Duration = hooks.times.iter().map(|t| t.1).sum::<Duration>() / n;
        println!(
            "  {:>8} state: {} checkpoints, mean {:>8.1} ms to snapshot and ack + {:>8.1} ms to store = {:>8.1} ms",
            size,
            hooks.times.len(),
            acked.as_secs_f64() * 1e3,
            stored.as_secs_f64() * 1e3,
            (acked + stored).as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Store hooks that time each checkpoint: (trigger → all acked, store + flush).
struct Timed<'a> {
    inner: StoreHooks<'a>,
    times: Vec<(Duration, Duration)>,
}

impl<'a> Timed<'a> {
    fn new(store: &'a StateStore, dir: &std::path::Path) -> Self {
        Timed {
            inner: StoreHooks {
                store,
                job: crate::checkpoint::identity::load_or_create(
                    dir,
                    "bench",
                    std::path::Path::new("bench.toml"),
                )
                .expect("a job identity in the bench's own directory")
                .0,
                state_dir: dir.to_owned(),
                retain: 2,
                pipeline: "bench".into(),
                savepoint_dir: dir.join("savepoints"),
                savepoint: None,
            },
            times: Vec::new(),
        }
    }
}

impl CheckpointHooks for Timed<'_> {
    fn started(&mut self, id: u64, savepoint: bool) -> Result<(), String> {
        self.inner.started(id, savepoint)
    }
    fn complete(&mut self, cp: &CompletedCheckpoint) -> Result<(), String> {
        let t = Instant::now();
        self.inner.complete(cp)?;
        self.times.push((cp.duration, t.elapsed()));
        Ok(())
    }
    fn failed(&mut self, id: u64, reason: &str) {
        self.inner.failed(id, reason)
    }
}

/// Flink 1.13's Nexmark throughput per core (nexmark/nexmark README: 8-core machines,
/// events/s/core): (query, figure).
const FLINK_PER_CORE: &[(&str, f64)] = &[
    ("q0", 155_000.0),
    ("q1", 158_000.0),
    ("q2", 175_000.0),
    ("q5", 22_100.0),
    ("q7", 12_300.0),
];

/// Each Nexmark query on `events` events: nexmark source → the query (Wasm, chained into the
/// source's subtask) → discard; events/s over all the machine's cores.
fn nexmark(
    rt: &tokio::runtime::Runtime,
    host: &Arc<PluginHost>,
    events: u64,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let origin = PluginOrigin::Builtin {
        kind: NodeKind::Operator,
        name: "nexmark-queries",
    };
    let plugin = host.load(&origin)?;
    println!(
        "weir bench --nexmark: nexmark source ({events} events, JSON) → query (Wasm, examples/nexmark) → discard; {cores} cores"
    );
    println!(
        "{:>5} {:>8} | {:>12} {:>14} | {:>14} {:>8}",
        "query", "subtasks", "events/s", "per core", "Flink per core", "ratio"
    );
    for &(query, flink) in FLINK_PER_CORE {
        // Stateless queries run on every core (one source and query per core, chained); the
        // windowed ones compare all auctions, so they run in one subtask.
        let parallelism = match query {
            "q5" | "q7" => 1,
            _ => cores as u32,
        };
        let config = plugin_config([("query", query.into())]);
        let node = operator_node("q", &plugin, config, parallelism, Limits::default().memory);
        let source = crate::connector::nexmark::NexmarkConfig {
            events,
            ..Default::default()
        };
        let job = Job {
            name: "bench-nexmark".into(),
            nodes: vec![
                JobNode {
                    chain: true,
                    uid: "events".into(),
                    parallelism,
                    inputs: Vec::new(),
                    factory: NodeFactory::Source(Arc::new(move |s| {
                        Ok(Box::new(crate::connector::nexmark::NexmarkSource::new(
                            source.clone(),
                            s,
                            parallelism,
                        )))
                    })),
                    watermarks: None,
                },
                JobNode {
                    chain: true,
                    uid: "q".into(),
                    parallelism,
                    inputs: vec![(0, Partition::Forward, Port::Main)],
                    factory: node.factory(host.clone()),
                    watermarks: None,
                },
                JobNode {
                    chain: true,
                    uid: "discard".into(),
                    parallelism,
                    inputs: vec![(1, Partition::Forward, Port::Main)],
                    factory: NodeFactory::Sink(Arc::new(|_| Ok(Box::new(DiscardSink)))),
                    watermarks: None,
                },
            ],
            batch_size: 1024,
            channel_capacity: 16,
            max_parallelism: crate::keyed::DEFAULT_MAX_PARALLELISM,
            cancel: Default::default(),
        };
        let report = rt.block_on(runtime::run(
            job,
            RunOptions::default(),
            &mut NoCheckpointStore,
            None,
        ))?;
        let through = report.metrics[1].records_in();
        anyhow::ensure!(
            through == events,
            "{query} saw {through} of {events} events"
        );
        let rate = events as f64 / report.elapsed.as_secs_f64();
        let per_core = rate / cores as f64;
        println!(
            "{query:>5} {parallelism:>8} | {:>10}/s {:>12}/s | {:>12}/s {:>7.1}x",
            human(rate),
            human(per_core),
            human(flink),
            per_core / flink
        );
    }
    println!(
        "per core = events/s ÷ this machine's {cores} cores (also for the windowed queries, which run in one subtask); ratio = weir per core ÷ Flink per core (goal ≥ 5x)"
    );
    Ok(())
}

/// A plugin's config from `(key, value)`s, as a pipeline file's table would give it.
fn plugin_config<const N: usize>(entries: [(&str, toml::Value); N]) -> PluginConfig {
    PluginConfig::of(
        &entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// A Wasm operator node of a benchmark: `plugin` with `config`, `parallelism` subtasks, a
/// memory ceiling of `memory` bytes, the other limits at their defaults.
fn operator_node(
    uid: &str,
    plugin: &crate::plugin::LoadedPlugin,
    config: PluginConfig,
    parallelism: u32,
    memory: u64,
) -> Node {
    Node {
        uid: uid.into(),
        kind: NodeKind::Operator,
        plugin: crate::graph::Plugin::Wasm(plugin.clone()),
        parallelism,
        inputs: Vec::new(),
        config,
        sandbox: SandboxSpec {
            memory,
            ..SandboxSpec::default()
        },
        limits: Limits {
            memory,
            ..Limits::default()
        },
        recycle_above: None,
        on_error: crate::config::OnError::Fail,
        watermarks: None,
        chain: true,
    }
}

/// Records/s of one run of memory source → `operator` → discard through the runtime.
fn pipeline(
    rt: &tokio::runtime::Runtime,
    template: &weir_core::batch::Batch,
    total: u64,
    operator: NodeFactory,
) -> anyhow::Result<f64> {
    let (rate, _) = pipeline_with(
        rt,
        template,
        total,
        operator,
        RunOptions::default(),
        &mut NoCheckpointStore,
    )?;
    Ok(rate)
}

/// [`pipeline`] with checkpoint options and hooks; also returns the report.
fn pipeline_with(
    rt: &tokio::runtime::Runtime,
    template: &weir_core::batch::Batch,
    total: u64,
    operator: NodeFactory,
    options: RunOptions,
    hooks: &mut dyn CheckpointHooks,
) -> anyhow::Result<(f64, runtime::RunReport)> {
    let template = template.clone();
    let batch = template.len();
    let job = Job {
        name: "bench".into(),
        nodes: vec![
            JobNode {
                chain: true,
                watermarks: None,
                uid: "source".into(),
                parallelism: 1,
                inputs: Vec::new(),
                factory: NodeFactory::Source(Arc::new(move |_| {
                    Ok(Box::new(MemorySource::new(template.clone(), total)))
                })),
            },
            JobNode {
                chain: true,
                watermarks: None,
                uid: "filter-map".into(),
                parallelism: 1,
                inputs: vec![(0, Partition::Forward, Port::Main)],
                factory: operator,
            },
            JobNode {
                chain: true,
                watermarks: None,
                uid: "discard".into(),
                parallelism: 1,
                inputs: vec![(1, Partition::Forward, Port::Main)],
                factory: NodeFactory::Sink(Arc::new(|_| Ok(Box::new(DiscardSink)))),
            },
        ],
        batch_size: batch as u32,
        channel_capacity: 16,
        max_parallelism: crate::keyed::DEFAULT_MAX_PARALLELISM,
        cancel: Default::default(),
    };
    let report = rt.block_on(runtime::run(job, options, hooks, None))?;
    let through = report.metrics[1].records_in();
    anyhow::ensure!(
        through == total,
        "the operator saw {through} of {total} records"
    );
    Ok((total as f64 / report.elapsed.as_secs_f64(), report))
}

fn rate(total: u64, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(total as f64 / t.elapsed().max(Duration::from_nanos(1)).as_secs_f64())
}
