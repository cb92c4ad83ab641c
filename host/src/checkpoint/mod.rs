//! Checkpoints: where they are stored (the sled [`crate::state::StateStore`]),
//! savepoints, and matching stored state to the nodes of a (possibly changed) pipeline.
//!
//! Invariant: state is matched to nodes by uid; a restore never silently drops state (a uid with
//! no node is an error unless explicitly allowed) and splits or merges it only where its kind
//! allows ([`rescale`]): keyed state by key group, union state whole, opaque state never.

pub mod identity;
pub mod rescale;
pub mod savepoint;

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
    /// The newest savepoint written this run: (checkpoint id, directory).
    pub savepoint: Option<(u64, PathBuf)>,
}

impl CheckpointHooks for StoreHooks<'_> {
    fn started(&mut self, id: u64, _savepoint: bool) -> Result<(), String> {
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
                &cp.keyed,
                Some(self.store.pieces()),
            )
            .map_err(|e| format!("cannot write savepoint {}: {e}", cp.id))?;
            self.savepoint = Some((cp.id, dir));
        }
        self.store
            .complete(&crate::state::Completion {
                id: cp.id,
                started: cp.started,
                duration: cp.duration,
                last: cp.last,
                savepoint: cp.savepoint,
                states: &cp.states,
                keyed: &cp.keyed,
            })
            .map_err(|e| e.to_string())?;
        self.store.prune(self.retain).map_err(|e| e.to_string())?;
        if !self.job.checkpointed {
            self.job.checkpointed = true;
            identity::write(&self.state_dir, &self.job).map_err(|e| e.to_string())?;
        }
        tracing::debug!(
            "checkpoint {} stored ({} bytes of state, {} of keyed state written, {:?})",
            cp.id,
            cp.states.iter().map(|s| s.2.len()).sum::<usize>(),
            cp.keyed
                .values()
                .map(|m| m.bytes_written_by(cp.id))
                .sum::<u64>(),
            cp.duration
        );
        Ok(())
    }

    fn failed(&mut self, id: u64, reason: &str) {
        if let Err(e) = self.store.failed(id, reason) {
            tracing::warn!("cannot record that checkpoint {id} failed: {e}");
        }
    }

    fn savepoint_path(&self, id: u64) -> Option<PathBuf> {
        self.savepoint
            .as_ref()
            .filter(|(at, _)| *at == id)
            .map(|(_, dir)| dir.clone())
    }
}

/// Match stored `states` and `keyed` state of checkpoint `id` to `graph`'s nodes, handing
/// each node's state to its subtasks at the node's parallelism now (see [`rescale`]).
pub fn restore_point(
    graph: &JobGraph,
    id: u64,
    states: HashMap<(String, u32), Vec<u8>>,
    keyed: BTreeMap<String, crate::keyed::KeyedManifest>,
    allow_non_restored: bool,
    abort: Vec<u64>,
) -> Result<RestorePoint, String> {
    // node uid → (its subtasks' state, their event time), by old subtask index.
    type Old = BTreeMap<u32, Vec<u8>>;
    let mut by_node: BTreeMap<String, (Old, Old)> = BTreeMap::new();
    for ((uid, subtask), bytes) in states {
        let (node, is_time) = weir_core::time::node_of(&uid);
        let entry = by_node.entry(node.to_owned()).or_default();
        let side = if is_time { &mut entry.1 } else { &mut entry.0 };
        side.insert(subtask, bytes);
    }
    let mut dropped: Vec<String> = by_node
        .keys()
        .chain(keyed.keys())
        .filter(|uid| !graph.nodes.iter().any(|n| &n.uid == *uid))
        .cloned()
        .collect();
    dropped.sort();
    dropped.dedup();
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
    for (uid, m) in &keyed {
        if m.max_parallelism != graph.max_parallelism && !dropped.contains(uid) {
            return Err(format!(
                "checkpoint {id} holds keyed state of node `{uid}` in {} key groups, but the pipeline has max_parallelism = {}: max_parallelism is fixed for the life of a job's state; set [pipeline] max_parallelism = {} again (or start over with --fresh)",
                m.max_parallelism, graph.max_parallelism, m.max_parallelism
            ));
        }
    }
    let mut out = HashMap::new();
    let mut retired = HashMap::new();
    for node in &graph.nodes {
        let Some((state, time)) = by_node.remove(&node.uid) else {
            continue;
        };
        // Every subtask acks a state, so the old parallelism is the number of them.
        let old_parallelism = state.keys().max().map_or(0, |m| m + 1) as usize;
        let old = |m: &Old| -> Vec<Option<Vec<u8>>> {
            (0..old_parallelism as u32)
                .map(|s| m.get(&s).cloned())
                .collect()
        };
        let rescale::Redistributed {
            states,
            retired: gone,
        } = rescale::redistribute(node, &old(&state), graph.max_parallelism)?;
        for (s, list) in gone.into_iter().enumerate() {
            if !list.is_empty() {
                retired.insert((node.uid.clone(), s as u32), list);
            }
        }
        let times = rescale::redistribute_time(&node.uid, &old(&time), node.parallelism)?;
        if old_parallelism != node.parallelism as usize {
            tracing::info!(
                "rescaling node `{}` from parallelism {old_parallelism} to {}",
                node.uid,
                node.parallelism
            );
        }
        for (s, (st, tm)) in states.into_iter().zip(times).enumerate() {
            if let Some(st) = st {
                out.insert((node.uid.clone(), s as u32), st);
            }
            if let Some(tm) = tm {
                out.insert((weir_core::time::time_uid(&node.uid), s as u32), tm);
            }
        }
    }
    let keyed = keyed
        .into_iter()
        .filter(|(uid, _)| !dropped.contains(uid))
        .collect();
    Ok(RestorePoint {
        checkpoint: id,
        states: out,
        abort,
        keyed,
        retired,
    })
}
