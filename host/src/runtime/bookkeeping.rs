//! The coordinator's checkpoint bookkeeping, as a plain state machine: which checkpoint ids are
//! in flight, which acks each has, when one is complete, which are subsumed or expired, and the
//! last checkpoint of the job (end of input or stop with savepoint). It sends nothing and
//! spawns nothing: the coordinator acts on what it returns, so every rule here is unit-tested
//! without threads or channels.
//!
//! Invariants: ids only grow; a checkpoint is complete only when every subtask acked it; at most
//! `max_concurrent` are in flight unless the last one must start; once the last checkpoint is
//! triggered no other starts.

use super::Barrier;
use super::CompletedCheckpoint;
use crate::keyed::KeyedManifest;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// The limits the bookkeeping keeps (from `[checkpoint]`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_concurrent: usize,
    pub min_pause: Duration,
    pub timeout: Duration,
    /// Acks that complete a checkpoint: one per subtask.
    pub subtasks: usize,
}

/// A checkpoint to start: the barrier to inject at the sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub barrier: Barrier,
    pub savepoint: bool,
}

/// One subtask's acknowledgement of a checkpoint.
pub struct Ack {
    pub checkpoint: u64,
    pub uid: String,
    pub subtask: u32,
    pub state: Vec<u8>,
    /// Its event time, stored beside its state.
    pub time: Option<Vec<u8>>,
    /// Its part of the node's keyed state.
    pub keyed: Option<KeyedManifest>,
}

struct Pending {
    trigger: Trigger,
    started_at: Instant,
    started: SystemTime,
    states: Vec<(String, u32, Vec<u8>)>,
    keyed: BTreeMap<String, KeyedManifest>,
    acks: usize,
}

/// Checkpoints of one run.
pub struct Bookkeeping {
    limits: Limits,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    last_completed: Option<(u64, Instant)>,
    /// The job's last checkpoint, once triggered.
    final_id: Option<u64>,
    /// The savepoint the job stops with, once triggered.
    stop_savepoint: Option<u64>,
}

impl Bookkeeping {
    pub fn new(limits: Limits, first_id: u64) -> Self {
        Bookkeeping {
            limits,
            next_id: first_id,
            pending: BTreeMap::new(),
            last_completed: None,
            final_id: None,
            stop_savepoint: None,
        }
    }

    /// Whether the job's last checkpoint was triggered (no other starts after it).
    pub fn finishing(&self) -> bool {
        self.final_id.is_some()
    }

    /// Whether `checkpoint`, committed, is (or follows) the job's last.
    pub fn is_final(&self, checkpoint: u64) -> bool {
        self.final_id.is_some_and(|f| checkpoint >= f)
    }

    /// The savepoint the job stops with, if one was triggered.
    pub fn stop_savepoint(&self) -> Option<u64> {
        self.stop_savepoint
    }

    /// The newest complete checkpoint.
    pub fn last_completed(&self) -> Option<u64> {
        self.last_completed.map(|(id, _)| id)
    }

    /// A periodic checkpoint, if there is room for one and the pause since the last has passed.
    pub fn periodic(&mut self, now: Instant) -> Option<Trigger> {
        let paused = self
            .last_completed
            .is_none_or(|(_, at)| now.duration_since(at) >= self.limits.min_pause);
        (!self.finishing() && self.pending.len() < self.limits.max_concurrent && paused)
            .then(|| self.start(false, false, now))
    }

    /// A checkpoint (or savepoint) asked for from outside; why not, in words, if it cannot start.
    pub fn requested(&mut self, savepoint: bool, now: Instant) -> Result<Trigger, String> {
        if self.finishing() {
            return Err("the job is finishing: it takes no more checkpoints".into());
        }
        if self.pending.len() >= self.limits.max_concurrent {
            return Err(format!(
                "{} checkpoint(s) in progress, the most allowed at once ([checkpoint] max_concurrent = {}): ask again when it completes",
                self.pending.len(),
                self.limits.max_concurrent
            ));
        }
        Ok(self.start(false, savepoint, now))
    }

    /// Every source ended: the last checkpoint, unless one was triggered already.
    pub fn sources_ended(&mut self, now: Instant) -> Option<Trigger> {
        (!self.finishing()).then(|| self.start(true, false, now))
    }

    /// A stop with savepoint: the last checkpoint, a savepoint, unless the job is finishing.
    pub fn stop(&mut self, now: Instant) -> Option<Trigger> {
        if self.finishing() {
            return None;
        }
        let t = self.start(true, true, now);
        self.stop_savepoint = Some(t.barrier.id);
        Some(t)
    }

    fn start(&mut self, last: bool, savepoint: bool, now: Instant) -> Trigger {
        let id = self.next_id;
        self.next_id += 1;
        let trigger = Trigger {
            barrier: Barrier { id, last },
            savepoint,
        };
        if last {
            self.final_id = Some(id);
        }
        self.pending.insert(
            id,
            Pending {
                trigger,
                started_at: now,
                started: SystemTime::now(),
                states: Vec::new(),
                keyed: BTreeMap::new(),
                acks: 0,
            },
        );
        trigger
    }

    /// Take `ack`; the checkpoint, taken out of the pending ones, when it was the last ack it
    /// waited for. Acks of a checkpoint no longer pending (expired, subsumed) are dropped.
    pub fn ack(&mut self, ack: Ack, now: Instant) -> Option<CompletedCheckpoint> {
        let p = self.pending.get_mut(&ack.checkpoint)?;
        if let Some(part) = ack.keyed.filter(|k| !k.groups.is_empty()) {
            let whole = p
                .keyed
                .entry(ack.uid.clone())
                .or_insert_with(|| KeyedManifest {
                    max_parallelism: part.max_parallelism,
                    groups: Default::default(),
                });
            whole.groups.extend(part.groups);
        }
        let time_uid = weir_core::time::time_uid(&ack.uid);
        p.states.push((ack.uid, ack.subtask, ack.state));
        if let Some(time) = ack.time {
            p.states.push((time_uid, ack.subtask, time));
        }
        p.acks += 1;
        if p.acks < self.limits.subtasks {
            return None;
        }
        let p = self.pending.remove(&ack.checkpoint).expect("present");
        Some(CompletedCheckpoint {
            id: ack.checkpoint,
            last: p.trigger.barrier.last,
            savepoint: p.trigger.savepoint,
            started: p.started,
            duration: now.duration_since(p.started_at),
            states: p.states,
            keyed: p.keyed,
        })
    }

    /// Checkpoint `id` was made durable: the older ones still pending are subsumed by it
    /// (returned, to be reported failed).
    pub fn completed(&mut self, id: u64, now: Instant) -> Vec<u64> {
        self.last_completed = Some((id, now));
        let older: Vec<u64> = self.pending.range(..id).map(|(id, _)| *id).collect();
        for id in &older {
            self.pending.remove(id);
        }
        older
    }

    /// Checkpoints past their timeout, taken out of the pending ones: (id, whether it was the
    /// job's last).
    pub fn expired(&mut self, now: Instant) -> Vec<(u64, bool)> {
        let timeout = self.limits.timeout;
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.started_at) > timeout)
            .map(|(id, _)| *id)
            .collect();
        gone.into_iter()
            .map(|id| {
                let p = self.pending.remove(&id).expect("listed above");
                (id, p.trigger.barrier.last)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_concurrent: usize, subtasks: usize) -> Limits {
        Limits {
            max_concurrent,
            min_pause: Duration::from_millis(100),
            timeout: Duration::from_secs(10),
            subtasks,
        }
    }

    fn ack(checkpoint: u64, uid: &str, subtask: u32) -> Ack {
        Ack {
            checkpoint,
            uid: uid.into(),
            subtask,
            state: vec![subtask as u8],
            time: None,
            keyed: None,
        }
    }

    #[test]
    fn a_checkpoint_completes_on_its_last_ack_with_every_state() {
        let now = Instant::now();
        let mut b = Bookkeeping::new(limits(1, 2), 7);
        let t = b.periodic(now).unwrap();
        assert_eq!(t.barrier, Barrier { id: 7, last: false });
        assert!(b.ack(ack(7, "src", 0), now).is_none());
        let mut with_time = ack(7, "op", 1);
        with_time.time = Some(vec![9]);
        let done = b.ack(with_time, now).expect("every subtask acked");
        assert_eq!(done.id, 7);
        assert_eq!(done.states.len(), 3, "two states and one event time");
        assert!(done.states.iter().any(|s| s.0 == "op@time"));
        assert!(b.ack(ack(7, "src", 0), now).is_none(), "no longer pending");
    }

    #[test]
    fn periodic_checkpoints_keep_to_max_concurrent_and_the_pause() {
        let now = Instant::now();
        let mut b = Bookkeeping::new(limits(1, 1), 1);
        assert!(b.periodic(now).is_some());
        assert!(b.periodic(now).is_none(), "one in flight already");
        assert!(
            b.requested(false, now)
                .unwrap_err()
                .contains("max_concurrent = 1")
        );
        b.ack(ack(1, "n", 0), now).unwrap();
        b.completed(1, now);
        assert!(b.periodic(now).is_none(), "within min_pause");
        let later = now + Duration::from_millis(100);
        assert_eq!(b.periodic(later).unwrap().barrier.id, 2);
        assert_eq!(b.last_completed(), Some(1));
    }

    #[test]
    fn the_last_checkpoint_starts_once_and_nothing_after_it() {
        let now = Instant::now();
        let mut b = Bookkeeping::new(limits(1, 1), 1);
        b.periodic(now).unwrap();
        let stop = b.stop(now).expect("a stop starts past max_concurrent");
        assert_eq!(stop.barrier, Barrier { id: 2, last: true });
        assert!(stop.savepoint);
        assert_eq!(b.stop_savepoint(), Some(2));
        assert!(b.sources_ended(now).is_none());
        assert!(b.stop(now).is_none());
        assert!(b.periodic(now + Duration::from_secs(1)).is_none());
        assert!(b.requested(true, now).unwrap_err().contains("finishing"));
        assert!(b.is_final(2) && !b.is_final(1));
    }

    #[test]
    fn a_completed_checkpoint_subsumes_older_ones_and_late_ones_expire() {
        let now = Instant::now();
        let mut b = Bookkeeping::new(limits(3, 1), 1);
        b.requested(false, now).unwrap();
        b.requested(true, now).unwrap();
        b.requested(false, now).unwrap();
        b.ack(ack(2, "n", 0), now).unwrap();
        assert_eq!(b.completed(2, now), vec![1]);
        assert!(b.ack(ack(1, "n", 0), now).is_none(), "subsumed");
        assert!(b.expired(now).is_empty());
        assert_eq!(b.expired(now + Duration::from_secs(11)), vec![(3, false)]);
        let end = b.sources_ended(now).unwrap();
        assert_eq!(
            b.expired(now + Duration::from_secs(11)),
            vec![(end.barrier.id, true)]
        );
    }
}
