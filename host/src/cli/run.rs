//! `weir run PIPELINE`: run a pipeline to the end of its input, print a summary.

use crate::config::PipelineSpec;
use crate::graph::JobGraph;
use crate::plugin::PluginHost;
use crate::runtime::{self, Job, NoCheckpointStore, RunOptions};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// No live progress and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let spec = PipelineSpec::load(&args.pipeline)?;
    let host = Arc::new(PluginHost::new()?);
    let graph = JobGraph::build(&spec, &host)?;
    let job = Job::from_graph(&graph, host.clone());
    let options = RunOptions {
        progress: !args.quiet && std::io::stderr().is_terminal(),
        ..RunOptions::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(runtime::run(job, options, &mut NoCheckpointStore, None))?;
    if !args.quiet {
        eprintln!(
            "{}",
            crate::metrics::summary(&report.metrics, report.elapsed)
        );
    }
    Ok(ExitCode::SUCCESS)
}
