//! The timers of one operator subtask: registered by its plugin, fired by the host in
//! timestamp order, kept in every checkpoint.
//!
//! Invariant: at most one timer per (domain, key, timestamp); a timer fires once, and never
//! before its time (event time: the watermark reached it; processing time: the wall clock did).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Which clock a timer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Domain {
    EventTime,
    ProcessingTime,
}

/// One timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub domain: Domain,
    pub key: Option<Vec<u8>>,
    /// ms since the Unix epoch.
    pub timestamp: i64,
}

/// Most timers handed to the plugin in one call (each call's reply is bounded, too).
pub const FIRE_BATCH: usize = 4096;

/// The registered timers of one subtask, per clock, ordered by (timestamp, key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerQueue {
    event: BTreeSet<(i64, Option<Vec<u8>>)>,
    processing: BTreeSet<(i64, Option<Vec<u8>>)>,
}

impl TimerQueue {
    fn set(&mut self, domain: Domain) -> &mut BTreeSet<(i64, Option<Vec<u8>>)> {
        match domain {
            Domain::EventTime => &mut self.event,
            Domain::ProcessingTime => &mut self.processing,
        }
    }

    /// Register `t` (a no-op when it is registered already).
    pub fn register(&mut self, t: Timer) {
        self.set(t.domain).insert((t.timestamp, t.key));
    }

    /// Forget `t`, if registered.
    pub fn delete(&mut self, t: &Timer) {
        // The set is keyed by (timestamp, key); a borrowed probe would need an owned key anyway.
        self.set(t.domain).remove(&(t.timestamp, t.key.clone()));
    }

    /// Remove and return the timers of `domain` due at `now` (timestamp ≤ now), oldest first,
    /// at most [`FIRE_BATCH`] of them.
    pub fn pop_due(&mut self, domain: Domain, now: i64) -> Vec<Timer> {
        let set = self.set(domain);
        let mut fired = Vec::new();
        while fired.len() < FIRE_BATCH {
            match set.first() {
                Some((ts, _)) if *ts <= now => {
                    let (timestamp, key) = set.pop_first().expect("just seen");
                    fired.push(Timer {
                        domain,
                        key,
                        timestamp,
                    });
                }
                _ => break,
            }
        }
        fired
    }

    /// When the earliest processing-time timer is due, if there is one.
    pub fn next_processing(&self) -> Option<i64> {
        self.processing.first().map(|(ts, _)| *ts)
    }

    /// Add every timer of `other`.
    pub fn merge(&mut self, other: TimerQueue) {
        self.event.extend(other.event);
        self.processing.extend(other.processing);
    }

    /// Keep the timers whose key passes `keep`.
    pub fn retain(&mut self, keep: impl Fn(Option<&[u8]>) -> bool) {
        self.event.retain(|(_, k)| keep(k.as_deref()));
        self.processing.retain(|(_, k)| keep(k.as_deref()));
    }

    /// How many timers are registered, both clocks.
    pub fn len(&self) -> usize {
        self.event.len() + self.processing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The host's wall clock, ms since the Unix epoch.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(domain: Domain, key: &str, ts: i64) -> Timer {
        Timer {
            domain,
            key: Some(key.as_bytes().to_vec()),
            timestamp: ts,
        }
    }

    #[test]
    fn timers_fire_in_timestamp_order_once() {
        let mut q = TimerQueue::default();
        q.register(t(Domain::EventTime, "b", 20));
        q.register(t(Domain::EventTime, "a", 10));
        q.register(t(Domain::EventTime, "a", 10));
        q.register(t(Domain::EventTime, "c", 30));
        q.register(t(Domain::ProcessingTime, "a", 5));
        assert_eq!(q.len(), 4);
        let due = q.pop_due(Domain::EventTime, 20);
        assert_eq!(
            due.iter().map(|t| t.timestamp).collect::<Vec<_>>(),
            vec![10, 20]
        );
        assert!(q.pop_due(Domain::EventTime, 20).is_empty());
        assert_eq!(q.next_processing(), Some(5));
        q.delete(&t(Domain::EventTime, "c", 30));
        assert!(q.pop_due(Domain::EventTime, i64::MAX).is_empty());
        assert_eq!(q.pop_due(Domain::ProcessingTime, 5).len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn a_large_firing_comes_in_bounded_calls() {
        let mut q = TimerQueue::default();
        for i in 0..(FIRE_BATCH as i64 + 10) {
            q.register(t(Domain::EventTime, "k", i));
        }
        assert_eq!(q.pop_due(Domain::EventTime, i64::MAX).len(), FIRE_BATCH);
        assert_eq!(q.pop_due(Domain::EventTime, i64::MAX).len(), 10);
    }
}
