//! The `weir` commands (clap). One file per subcommand; this one only routes.

mod bench;
mod bench_kafka;
mod checkpoints;
mod client;
mod inspect;
mod new;
mod run;
mod state;
mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// weir: a stream host that runs sources, operators and sinks as sandboxed WebAssembly
/// components, with state snapshotted at checkpoint barriers.
///
/// Logging follows RUST_LOG (e.g. RUST_LOG=debug, RUST_LOG=weir=trace).
#[derive(Parser, Debug)]
#[command(name = "weir", version, about, long_about)]
pub struct Cli {
    /// How log lines are written on stderr: `text` for people, `json` (one object per line) for
    /// log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline file until its sources are exhausted.
    Run(run::RunArgs),
    /// Check a pipeline file and its plugins without running it.
    Validate {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
    },
    /// Show a plugin component's kind, world, imports and exports.
    Inspect {
        /// A `.wasm` component file.
        plugin: PathBuf,
    },
    /// Create a plugin project (Rust, C, Python or JavaScript) ready to build and run.
    New(new::NewArgs),
    /// List the built-in plugins (usable by name in a pipeline file).
    Builtins,
    /// List or show the checkpoints kept for a pipeline.
    #[command(subcommand)]
    Checkpoints(checkpoints::CheckpointsCommand),
    /// Read a keyed operator's state: one key, or the keys with a prefix (from the running
    /// job, or the latest checkpoint when none runs).
    #[command(subcommand)]
    State(state::StateCommand),
    /// Measure throughput: memory source → Wasm filter+map → discarding sink, against the same
    /// logic run natively in this process.
    Bench(bench::BenchArgs),
    /// Show a running job's status, nodes and rates (its HTTP API at ADDR).
    Status(client::StatusArgs),
    /// Take a savepoint of a running job; the job goes on.
    Savepoint(client::AddrArgs),
    /// Stop a running job, keeping its state in a savepoint (--cancel: at once, without one).
    Stop(client::StopArgs),
    /// Replace an operator's component in a running job: the new build takes over the old
    /// one's state at a savepoint; if it cannot, the old one runs on.
    Swap(client::SwapArgs),
}

/// Run a parsed command line; the exit code on success.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate { pipeline } => validate::validate(&pipeline),
        Command::Inspect { plugin } => inspect::inspect(&plugin),
        Command::New(args) => new::new(args),
        Command::Builtins => {
            // The kinds' Display ignores padding: pad their text.
            let rows = crate::builtin::BUILTINS
                .iter()
                .map(|b| (b.kind.to_string(), b.name, b.about))
                .chain(
                    crate::connector::NATIVE
                        .iter()
                        .map(|(kind, name, about)| (kind.to_string(), *name, *about)),
                );
            for (kind, name, about) in rows {
                println!("{kind:<9} {name:<14} {about}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoints(cmd) => checkpoints::checkpoints(cmd),
        Command::State(cmd) => state::state(cmd),
        Command::Bench(args) => bench::bench(args),
        Command::Status(args) => client::status(args),
        Command::Savepoint(args) => client::savepoint(args),
        Command::Stop(args) => client::stop(args),
        Command::Swap(args) => client::swap(args),
    }
}
