//! `weir validate PIPELINE`: parse the file, check the checkpoint and restart settings, build the
//! graph, load, link and kind-check every plugin, and open each Wasm node's plugin once with its
//! config and grants: whatever `weir run` would refuse at start.
//!
//! Invariant: validate says ok only where run starts: a config key the plugin does not know, a
//! value it cannot parse or a path outside the node's grants fails here as it fails run's `open`.

use crate::config::PipelineSpec;
use crate::graph::{JobGraph, Plugin};
use crate::plugin::PluginHost;
use crate::runtime::NodeFactory;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub fn validate(pipeline: &Path) -> anyhow::Result<ExitCode> {
    let spec = PipelineSpec::load(pipeline)?;
    // Everything `weir run` checks before it starts: settings too, not only the graph.
    let settings = crate::config::checkpoint::CheckpointSettings::from_spec(&spec)?;
    crate::restart::RestartStrategy::from_spec(&spec, settings.enabled)?;
    let host = Arc::new(PluginHost::new()?);
    let graph = JobGraph::build(&spec, &host)?;
    open_each(&graph, &host)?;
    let subtasks: u32 = graph.nodes.iter().map(|n| n.parallelism).sum();
    println!(
        "{}: ok ({} nodes, {} subtasks)",
        pipeline.display(),
        graph.nodes.len(),
        subtasks
    );
    for n in &graph.nodes {
        // Each input as the pipeline file names it: `count`, `count.late`, `src.dead-letter`.
        let inputs: Vec<String> = n
            .inputs
            .iter()
            .map(|e| {
                let from = &graph.nodes[e.from].uid;
                match e.port {
                    crate::runtime::Port::Main => from.clone(),
                    port => format!("{from}.{}", port.name()),
                }
            })
            .collect();
        println!(
            "  {:<8} {:<16} {} x{}{}",
            n.kind.to_string(),
            n.uid,
            n.plugin,
            n.parallelism,
            if inputs.is_empty() {
                String::new()
            } else {
                format!(" ← {}", inputs.join(", "))
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Start subtask 0 of every Wasm node as `weir run` does (instantiate, `open` with the node's
/// config under its grants) and drop it. Opening has no effect a run would not have first.
fn open_each(graph: &JobGraph, host: &Arc<PluginHost>) -> anyhow::Result<()> {
    let keyed = crate::keyed::Store::temporary()?;
    for n in &graph.nodes {
        if !matches!(n.plugin, Plugin::Wasm(_)) {
            continue;
        }
        match n.factory(host.clone()) {
            NodeFactory::Source(f) => drop(f(0)?),
            NodeFactory::Sink(f) => drop(f(0)?),
            NodeFactory::Operator(f) => {
                let backend = crate::keyed::KeyedBackend::new(
                    &keyed,
                    &n.uid,
                    0,
                    n.parallelism,
                    graph.max_parallelism,
                )?;
                drop(f(0, &Arc::new(std::sync::Mutex::new(backend)))?);
            }
        }
    }
    Ok(())
}
