//! Checkpoints: their settings, where they are stored (the sled [`crate::state::StateStore`]),
//! savepoints, and matching stored state to the nodes of a (possibly changed) pipeline.
//!
//! Invariant: state is matched to nodes by uid; a restore never silently drops state (a uid with
//! no node is an error unless explicitly allowed) and never splits it (parallelism must match).

pub mod identity;
pub mod savepoint;
pub mod settings;

use crate::graph::JobGraph;
use crate::runtime::{CheckpointHooks, CompletedCheckpoint, RestorePoint};
use crate::state::StateStore;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The runtime's checkpoint hooks, backed by the sled store (and savepoint directories).
pub struct StoreHooks<'a> {
    pub store: &'a StateStore,
    /// The job; marked as having checkpointed once its first checkpoint is durable.
    pub job: identity::JobIdentity,
    pub state_dir: PathBuf,
    pub retain: usize,
    pub pipeline: String,
    pub savepoint_dir: PathBuf,
    /// Set when a savepoint was written this run.
    pub savepoint: Option<PathBuf>,
}

impl CheckpointHooks for StoreHooks<'_> {
    fn started(&mut self, id: u64) -> Result<(), String> {
        self.store
            .started(id, std::time::SystemTime::now())
            .map_err(|e| e.to_string())
    }

    fn complete(&mut self, cp: &CompletedCheckpoint) -> Result<(), String> {
        if cp.savepoint {
            let dir = savepoint::write(
                &self.savepoint_dir,
                &self.pipeline,
                &self.job.id,
                cp.id,
                &cp.states,
            )
            .map_err(|e| format!("cannot write savepoint {}: {e}", cp.id))?;
            self.savepoint = Some(dir);
        }
        self.store
            .complete(
                cp.id,
                cp.started,
                cp.duration,
                cp.last,
                cp.last && !cp.savepoint,
                cp.savepoint,
                &cp.states,
            )
            .map_err(|e| e.to_string())?;
        self.store.prune(self.retain).map_err(|e| e.to_string())?;
        if !self.job.checkpointed {
            self.job.checkpointed = true;
            identity::write(&self.state_dir, &self.job).map_err(|e| e.to_string())?;
        }
        tracing::debug!(
            "checkpoint {} stored ({} bytes, {:?})",
            cp.id,
            cp.states.iter().map(|s| s.2.len()).sum::<usize>(),
            cp.duration
        );
        Ok(())
    }

    fn failed(&mut self, id: u64, reason: &str) {
        if let Err(e) = self.store.failed(id, reason) {
            tracing::warn!("cannot record that checkpoint {id} failed: {e}");
        }
    }
}

/// Match stored `states` of checkpoint `id` to `graph`'s nodes.
pub fn restore_point(
    graph: &JobGraph,
    id: u64,
    states: HashMap<(String, u32), Vec<u8>>,
    allow_non_restored: bool,
    abort: Vec<u64>,
) -> Result<RestorePoint, String> {
    let mut subtasks: BTreeMap<&str, u32> = BTreeMap::new();
    for (uid, _) in states.keys() {
        // A subtask's event time rides with its node's state (only subtasks that have any).
        if crate::time::node_of(uid).1 {
            continue;
        }
        *subtasks.entry(uid.as_str()).or_default() += 1;
    }
    let mut dropped = Vec::new();
    for (uid, n) in &subtasks {
        match graph.nodes.iter().find(|node| node.uid == *uid) {
            None => dropped.push(uid.to_string()),
            Some(node) if node.parallelism != *n => {
                return Err(format!(
                    "node `{uid}` was checkpointed with parallelism {n} but now has parallelism {}: opaque plugin state cannot be split or merged; set parallelism = {n}",
                    node.parallelism
                ));
            }
            Some(_) => {}
        }
    }
    if !dropped.is_empty() {
        if !allow_non_restored {
            return Err(format!(
                "checkpoint {id} holds state for node(s) {} that the pipeline no longer has: put the node(s) back (the table name is the uid) or pass --allow-non-restored-state to drop that state",
                dropped
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        tracing::warn!(
            "dropping the state of removed node(s): {}",
            dropped.join(", ")
        );
    }
    let states = states
        .into_iter()
        .filter(|((uid, _), _)| {
            let (node, _) = crate::time::node_of(uid);
            !dropped.iter().any(|d| d == node)
        })
        .collect();
    Ok(RestorePoint {
        checkpoint: id,
        states,
        abort,
    })
}
