//! The `weir` binary: parses the command line, sets up logging, runs the command.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Records are allocated on one subtask's thread and freed on another's; glibc's allocator
/// spends a third of a pipeline's time on that (perf), mimalloc a fraction of it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = weir_host::cli::Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,weir=info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        weir_host::cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        weir_host::cli::LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    match weir_host::cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
