//! `weir validate PIPELINE`: parse the file, check the checkpoint and restart settings, build the
//! graph, load, link and kind-check every plugin: whatever `weir run` would refuse at start.

use crate::config::PipelineSpec;
use crate::graph::JobGraph;
use crate::plugin::PluginHost;
use std::path::Path;
use std::process::ExitCode;

pub fn validate(pipeline: &Path) -> anyhow::Result<ExitCode> {
    let spec = PipelineSpec::load(pipeline)?;
    // Everything `weir run` checks before it starts: settings too, not only the graph.
    let settings = crate::checkpoint::settings::CheckpointSettings::from_spec(&spec)?;
    crate::restart::RestartStrategy::from_spec(&spec, settings.enabled)?;
    let host = PluginHost::new()?;
    let graph = JobGraph::build(&spec, &host)?;
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
