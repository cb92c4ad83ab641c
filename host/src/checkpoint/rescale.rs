//! Rescaling on restore: the per-subtask state of a node checkpointed at one parallelism,
//! handed to the subtasks of another. Keyed state needs nothing here (each subtask reads the
//! key groups of its range, whatever wrote them); this is the rest:
//! - state every subtask holds alike (stateless nodes, config-only structs): copied;
//! - a 0.2.0 operator's timers: merged and split by the key group of their key (keyless
//!   timers go to subtask 0), its watermark the lowest of the old ones;
//! - union state (the Kafka source's offsets): every new subtask gets all of it and keeps
//!   what concerns it;
//! - a sink's open transactions: subtask i takes over old subtask i's; those of old subtasks
//!   a lower parallelism drops are finished (committed or aborted) by a new one at its start;
//! - anything else (a plugin's own struct, a 0.1.0 build): refused, saying why and what to do.
//!
//! Invariant: nothing is dropped or duplicated silently: every old subtask's state reaches
//! the new subtasks whole, or the restore fails before anything runs.

use crate::graph::{Node, Plugin};
use weir_core::groups;
use weir_core::time::{SubtaskTime, TimedState};

/// A node's state for its new subtasks.
pub struct Redistributed {
    /// Per new subtask (`None`: starts empty).
    pub states: Vec<Option<Vec<u8>>>,
    /// Sinks at a lower parallelism: per new subtask, the old subtasks (index, state) whose
    /// transactions it finishes before it starts.
    pub retired: Vec<Vec<(u32, Vec<u8>)>>,
}

/// The state of each new subtask from `old` (one per old subtask, `None` where a subtask
/// stored nothing).
pub fn redistribute(
    node: &Node,
    old: &[Option<Vec<u8>>],
    max_parallelism: u32,
) -> Result<Redistributed, String> {
    let new = node.parallelism as usize;
    // A sink's state is its open transactions: a new subtask takes over the old one of its
    // index; those a lower parallelism drops are finished (committed up to the restored
    // checkpoint) by subtask `old % new` before it starts; added subtasks start empty.
    if let Plugin::Native(native) = &node.plugin
        && node.kind == crate::config::NodeKind::Sink
        && old.len() != new
        && old.iter().any(Option::is_some)
    {
        return Err(format!(
            "node `{}` ({native}) was checkpointed with parallelism {} but now has parallelism {new}: its open Kafka transactions are tied to the transactional ids of its subtasks, so its parallelism cannot change on restore; set parallelism = {} again (a stop with savepoint leaves nothing open, but the ids still are the subtasks')",
            node.uid,
            old.len(),
            old.len()
        ));
    }
    if node.kind == crate::config::NodeKind::Sink && old.len() != new {
        let mut retired = vec![Vec::new(); new];
        for (j, state) in old.iter().enumerate().skip(new) {
            if let Some(state) = state {
                retired[j % new].push((j as u32, state.clone()));
            }
        }
        let states = (0..new).map(|i| old.get(i).cloned().flatten()).collect();
        return Ok(Redistributed { states, retired });
    }
    let plain = |states: Vec<Option<Vec<u8>>>| Redistributed {
        states,
        retired: Vec::new(),
    };
    redistribute_state(node, old, max_parallelism).map(plain)
}

fn redistribute_state(
    node: &Node,
    old: &[Option<Vec<u8>>],
    max_parallelism: u32,
) -> Result<Vec<Option<Vec<u8>>>, String> {
    let new = node.parallelism as usize;
    if let Plugin::Native(native) = &node.plugin
        && native.union_state()
    {
        let all: Vec<&[u8]> = old.iter().flatten().map(Vec::as_slice).collect();
        if all.is_empty() {
            return Ok(vec![None; new]);
        }
        let merged = native.merge_union(&all)?;
        return Ok(vec![Some(merged); new]);
    }
    if old.len() == new {
        return Ok(old.to_vec());
    }
    let stored: Vec<&Vec<u8>> = old.iter().flatten().collect();
    if stored.is_empty() {
        return Ok(vec![None; new]);
    }
    if stored.len() == old.len() && stored.windows(2).all(|w| w[0] == w[1]) {
        return Ok(vec![Some(stored[0].clone()); new]);
    }
    let refuse = |why: &str| {
        format!(
            "node `{}` was checkpointed with parallelism {} but now has parallelism {new}: {why}; or set parallelism = {} again",
            node.uid,
            old.len(),
            old.len()
        )
    };
    let timed: Option<Vec<TimedState>> = stored
        .iter()
        .map(|s| TimedState::decode(s))
        .collect::<Option<Result<Vec<_>, _>>>()
        .transpose()?;
    let Some(timed) = timed else {
        return Err(refuse(
            "its plugin keeps its state as opaque bytes (a weir:plugin@0.1.0 build, or state of its own), which cannot be split or merged; keep per-key data in keyed state (weir_sdk::state) to make it rescalable",
        ));
    };
    if stored.len() != old.len() || timed.windows(2).any(|w| w[0].plugin != w[1].plugin) {
        return Err(refuse(
            "its plugin keeps state of its own in its struct, which differs between subtasks and cannot be split or merged; keep per-key data in keyed state (weir_sdk::state) to make it rescalable",
        ));
    }
    let watermark = timed.iter().map(|t| t.watermark).min().unwrap_or(i64::MIN);
    let mut timers = weir_core::time::timers::TimerQueue::default();
    for t in &timed {
        timers.merge(t.timers.clone());
    }
    Ok((0..new as u32)
        .map(|s| {
            let range = groups::range(s, new as u32, max_parallelism);
            let mut mine = timers.clone();
            mine.retain(|key| match key {
                Some(k) => range.contains(&groups::group_of(k, max_parallelism)),
                None => s == 0,
            });
            Some(
                TimedState {
                    watermark,
                    timers: mine,
                    plugin: timed[0].plugin.clone(),
                }
                .encode(),
            )
        })
        .collect())
}

/// The event time of each new subtask: the lowest of the old ones (a watermark announced
/// again after a restore may be lower than one sent before, never higher than the data).
pub fn redistribute_time(
    uid: &str,
    old: &[Option<Vec<u8>>],
    new: u32,
) -> Result<Vec<Option<Vec<u8>>>, String> {
    if old.len() == new as usize {
        return Ok(old.to_vec());
    }
    let order = |t: &SubtaskTime| (t.input, t.generator.map_or(i64::MIN, |g| g.emitted));
    let mut lowest: Option<SubtaskTime> = None;
    for bytes in old.iter().flatten() {
        let t = SubtaskTime::decode(bytes).map_err(|e| format!("{uid}: {e}"))?;
        if lowest.is_none_or(|l| order(&t) < order(&l)) {
            lowest = Some(t);
        }
    }
    Ok(vec![lowest.map(|t| t.encode()); new as usize])
}
