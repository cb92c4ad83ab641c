//! `weir checkpoints list|show PIPELINE`: the checkpoints in a pipeline's state directory. A
//! checkpoint's size is what it wrote; keyed state it shares with older checkpoints (pieces
//! it names but did not write again) is shown apart.

use crate::checkpoint::identity::{self, IdentityError, StateLock};
use crate::config::PipelineSpec;
use crate::config::checkpoint::CheckpointSettings;
use crate::state::{StateStore, Status};
use anyhow::bail;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Subcommand, Debug)]
pub enum CheckpointsCommand {
    /// Every checkpoint kept for a pipeline: id, time, size, duration, status.
    List {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
    },
    /// One checkpoint in detail, with every state blob verified against its checksum.
    Show {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// The checkpoint id.
        id: u64,
    },
}

/// The store of `pipeline`'s job, with the job's lock held while it is read: a running job
/// holds both, and the user is told where its checkpoints are instead.
fn open(pipeline: &Path) -> anyhow::Result<(StateLock, StateStore)> {
    let spec = PipelineSpec::load(pipeline)?;
    let settings = CheckpointSettings::from_spec(&spec)?;
    if !settings.dir.join("db").exists() {
        bail!(
            "no checkpoints for {}: {} does not exist (has the pipeline run with checkpointing on?)",
            pipeline.display(),
            settings.dir.display()
        );
    }
    let lock = match identity::lock(&settings.dir) {
        Ok(lock) => lock,
        Err(IdentityError::Locked { .. }) => bail!(
            "{}: a running job holds its checkpoint store (weir run keeps it while it runs). See its checkpoints on the job's HTTP API (weir run --http ADDR, then weir status ADDR or GET /api/checkpoints), or run this again once the job has ended",
            pipeline.display()
        ),
        Err(e) => return Err(e.into()),
    };
    Ok((lock, StateStore::open(&settings.dir)?))
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn status(s: &Status, last: bool, finished: bool, savepoint: bool) -> String {
    let base = match s {
        Status::InProgress => "in-progress".to_string(),
        Status::Complete => "complete".to_string(),
        Status::Failed(why) => format!("failed: {why}"),
    };
    let tag = if savepoint {
        " (savepoint)"
    } else if finished {
        " (final)"
    } else if last {
        " (last)"
    } else {
        ""
    };
    format!("{base}{tag}")
}

pub fn checkpoints(cmd: CheckpointsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CheckpointsCommand::List { pipeline } => {
            let (_lock, store) = open(&pipeline)?;
            println!(
                "{:>6}  {:<20}  {:>12}  {:>12}  {:>10}  status",
                "id", "time (UTC)", "written", "shared", "duration"
            );
            for m in store.list()? {
                println!(
                    "{:>6}  {:<20}  {:>12}  {:>12}  {:>8}ms  {}",
                    m.id,
                    time(m.started_ms),
                    format!("{} B", m.bytes()),
                    format!("{} B", m.shared_bytes()),
                    m.duration_ms,
                    status(&m.status, m.last, m.finished, m.savepoint)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CheckpointsCommand::Show { pipeline, id } => {
            let (_lock, store) = open(&pipeline)?;
            let Some(m) = store.get(id)? else {
                bail!(
                    "no checkpoint {id} for {} (see `weir checkpoints list`)",
                    pipeline.display()
                );
            };
            println!("checkpoint {}", m.id);
            println!(
                "status:    {}",
                status(&m.status, m.last, m.finished, m.savepoint)
            );
            println!("started:   {}", time(m.started_ms));
            println!("duration:  {} ms", m.duration_ms);
            println!("written:   {} bytes", m.bytes());
            println!(
                "shared:    {} bytes (keyed state pieces of older checkpoints)",
                m.shared_bytes()
            );
            let verdict = if m.status == Status::Complete {
                match store.read(&m) {
                    Ok(_) => "every blob and piece verified".to_string(),
                    Err(why) => format!("CORRUPT: {why}"),
                }
            } else {
                "not complete".to_string()
            };
            println!("integrity: {verdict}");
            println!(
                "{:<20} {:>8} {:>12} {:>10}",
                "node", "subtask", "bytes", "crc32"
            );
            for b in &m.blobs {
                println!(
                    "{:<20} {:>8} {:>12} {:>10x}",
                    b.node, b.subtask, b.len, b.crc32
                );
            }
            for (node, k) in &m.keyed {
                let pieces = k.pieces().count();
                let own = k.pieces().filter(|(_, p)| p.checkpoint == m.id).count();
                println!(
                    "keyed state of {node}: {} key groups (of {}), {pieces} pieces ({own} written by this checkpoint, {} shared), {} bytes written, {} shared",
                    k.groups.len(),
                    k.max_parallelism,
                    pieces - own,
                    k.bytes_written_by(m.id),
                    k.bytes() - k.bytes_written_by(m.id)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
