//! `weir bench`: records/s of memory source → filter+map operator → discarding sink through the
//! whole runtime, with the operator as the built-in Wasm plugin and as native code, in one run;
//! plus the bare operator call, to tell runtime cost from boundary cost.

use crate::bench::{DiscardSink, MemorySource, NativeFilterMap, filter_map_native, make_records};
use crate::config::{NodeKind, Partition};
use crate::graph::Node;
use crate::metrics::human;
use crate::plugin::{Limits, OperatorInstance, PluginHost, PluginOrigin, SandboxSpec};
use crate::runtime::{self, Job, JobNode, NoCheckpointStore, NodeFactory, RunOptions};
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
}

pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let host = Arc::new(PluginHost::new()?);
    let origin = PluginOrigin::Builtin {
        kind: NodeKind::Operator,
        name: "filter-map",
    };
    let plugin = host.load(&origin)?;
    let node = Node {
        uid: "filter-map".into(),
        kind: NodeKind::Operator,
        plugin,
        parallelism: 1,
        inputs: Vec::new(),
        config: Vec::new(),
        sandbox: SandboxSpec {
            memory: Limits::default().memory,
            ..SandboxSpec::default()
        },
        limits: Limits::default(),
    };
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

        let wasm_pipe = pipeline(
            &rt,
            &template,
            total,
            NodeFactory::wasm(host.clone(), &node),
        )?;
        let native_pipe = pipeline(
            &rt,
            &template,
            total,
            NodeFactory::Operator(Arc::new(|_| Ok(Box::new(NativeFilterMap)))),
        )?;

        let mut instance = OperatorInstance::start(
            &host,
            &node.plugin,
            "filter-map",
            0,
            1,
            &node.sandbox,
            node.limits,
            &[],
        )?;
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
                std::hint::black_box(filter_map_native(template.clone()));
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
    Ok(ExitCode::SUCCESS)
}

/// Records/s of one run of memory source → `operator` → discard through the runtime.
fn pipeline(
    rt: &tokio::runtime::Runtime,
    template: &[crate::plugin::Record],
    total: u64,
    operator: NodeFactory,
) -> anyhow::Result<f64> {
    let template = template.to_vec();
    let batch = template.len();
    let job = Job {
        name: "bench".into(),
        nodes: vec![
            JobNode {
                uid: "source".into(),
                parallelism: 1,
                inputs: Vec::new(),
                factory: NodeFactory::Source(Arc::new(move |_| {
                    Ok(Box::new(MemorySource::new(template.clone(), total, batch)))
                })),
            },
            JobNode {
                uid: "filter-map".into(),
                parallelism: 1,
                inputs: vec![(0, Partition::Forward)],
                factory: operator,
            },
            JobNode {
                uid: "discard".into(),
                parallelism: 1,
                inputs: vec![(1, Partition::Forward)],
                factory: NodeFactory::Sink(Arc::new(|_| Ok(Box::new(DiscardSink)))),
            },
        ],
        batch_size: batch as u32,
        channel_capacity: 16,
    };
    let report = rt.block_on(runtime::run(
        job,
        RunOptions::default(),
        &mut NoCheckpointStore,
        None,
    ))?;
    let through = report.metrics[1].records_in();
    anyhow::ensure!(
        through == total,
        "the operator saw {through} of {total} records"
    );
    Ok(total as f64 / report.elapsed.as_secs_f64())
}

fn rate(total: u64, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(total as f64 / t.elapsed().max(Duration::from_nanos(1)).as_secs_f64())
}
