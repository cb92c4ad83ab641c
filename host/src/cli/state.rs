//! `weir state get|scan PIPELINE NODE ...`: what a node's keyed state holds for a key (or the
//! keys with a prefix), from the running job if one runs, else from the latest complete
//! checkpoint (or one named with `--checkpoint`).
//!
//! Invariant: a query only reads; values are shown as stored (the SDKs store JSON), bytes that
//! are not UTF-8 as hex, every line escaped so a value cannot forge output.

use crate::config::PipelineSpec;
use crate::config::checkpoint::CheckpointSettings;
use crate::keyed::live::{self, Request};
use crate::keyed::query::{self, Found, Held};
use crate::state::{StateStore, Status};
use anyhow::{Context as _, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum StateCommand {
    /// What NODE's keyed state holds for KEY: every state, `state<TAB>value` per line (map
    /// entries as `state[map key]`).
    Get {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// The keyed operator.
        node: String,
        /// The key (as the records carry it, UTF-8).
        key: String,
        /// Read this checkpoint instead of the running job or the latest checkpoint.
        #[arg(long)]
        checkpoint: Option<u64>,
    },
    /// The keys of NODE's keyed state starting with a prefix, in key order:
    /// `key<TAB>state<TAB>value` per line.
    Scan {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// The keyed operator.
        node: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many keys.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Read this checkpoint instead of the running job or the latest checkpoint.
        #[arg(long)]
        checkpoint: Option<u64>,
    },
}

/// Bytes as text: UTF-8 escaped, anything else as hex.
fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => crate::plugin::text::escape(s, usize::MAX),
        Err(_) => format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

fn name(h: &Held) -> String {
    match &h.map_key {
        None => show(h.state.as_bytes()),
        Some(mk) => format!("{}[{}]", show(h.state.as_bytes()), show(mk)),
    }
}

pub fn state(cmd: StateCommand) -> anyhow::Result<ExitCode> {
    let (pipeline, node, key, prefix, limit, checkpoint) = match cmd {
        StateCommand::Get {
            pipeline,
            node,
            key,
            checkpoint,
        } => (pipeline, node, Some(key), String::new(), 1, checkpoint),
        StateCommand::Scan {
            pipeline,
            node,
            prefix,
            limit,
            checkpoint,
        } => (pipeline, node, None, prefix, limit, checkpoint),
    };
    let spec = PipelineSpec::load(&pipeline)?;
    let settings = CheckpointSettings::from_spec(&spec)?;
    let request = Request {
        node: node.clone(),
        key: key.as_ref().map(|k| k.as_bytes().to_vec()),
        prefix: prefix.into_bytes(),
        limit,
    };
    let (found, source) = match checkpoint
        .is_none()
        .then(|| live::ask(&settings.dir, &request))
        .flatten()
    {
        Some(answer) => (
            answer.map_err(anyhow::Error::msg)?,
            "the running job".to_string(),
        ),
        None => from_checkpoint(&settings, &pipeline, &request, checkpoint)?,
    };
    eprintln!("{node}: from {source}");
    match &key {
        Some(k) => {
            let Some(held) = found.get(k.as_bytes()) else {
                eprintln!("no state for key {:?}", show(k.as_bytes()));
                return Ok(ExitCode::from(1));
            };
            for h in held {
                println!("{}\t{}", name(h), show(&h.value));
            }
        }
        None => {
            for (k, held) in &found {
                for h in held {
                    println!("{}\t{}\t{}", show(k), name(h), show(&h.value));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Answer from checkpoint `id` (or the latest complete one) in the store.
fn from_checkpoint(
    settings: &CheckpointSettings,
    pipeline: &std::path::Path,
    q: &Request,
    id: Option<u64>,
) -> anyhow::Result<(Found, String)> {
    if !settings.dir.join("db").exists() {
        bail!(
            "no checkpoints for {}: {} does not exist (has the pipeline run with checkpointing on?)",
            pipeline.display(),
            settings.dir.display()
        );
    }
    let store = StateStore::open(&settings.dir).context(
        "the job is running but does not answer queries (started by an older weir?); ask again once it stopped",
    )?;
    let metas = store.list()?;
    let meta = match id {
        Some(id) => metas
            .into_iter()
            .find(|m| m.id == id && m.status == Status::Complete)
            .with_context(|| {
                format!(
                    "no complete checkpoint {id} for {} (see `weir checkpoints list`)",
                    pipeline.display()
                )
            })?,
        None => metas
            .into_iter()
            .rev()
            .find(|m| m.status == Status::Complete)
            .with_context(|| format!("{} has no complete checkpoint yet", pipeline.display()))?,
    };
    let Some(manifest) = meta.keyed.get(&q.node) else {
        let with: Vec<&str> = meta.keyed.keys().map(String::as_str).collect();
        bail!(
            "node `{}` holds no keyed state in checkpoint {} (nodes with keyed state: {})",
            q.node,
            meta.id,
            if with.is_empty() {
                "none".to_string()
            } else {
                with.join(", ")
            }
        );
    };
    let found = match &q.key {
        Some(k) => {
            let held = query::lookup(store.pieces(), &q.node, manifest, k)?;
            let mut f = Found::new();
            if !held.is_empty() {
                f.insert(k.clone(), held);
            }
            f
        }
        None => query::scan(store.pieces(), &q.node, manifest, &q.prefix, q.limit)?,
    };
    Ok((found, format!("checkpoint {}", meta.id)))
}
