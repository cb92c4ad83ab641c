//! Event time for plugins: timers, the watermark, the `<node>.late` output, and (sources)
//! watermarks of their own. The host keeps the timers in its checkpoints and fires them in
//! timestamp order: an operator gets them in [`crate::Operator::on_timers`].
//!
//! Outside a host (a plugin's own native unit tests) the same calls work on a local clock:
//! [`testing`] sets the watermark and shows what was registered and sent.
//!
//! Invariant: a plugin only sees the host's time through these calls, so the same calls run
//! the same way in the host and in a native test.

use crate::Record;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Which clock a timer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    /// Fires once the watermark reaches the timer's timestamp.
    EventTime,
    /// Fires once the host's wall clock reaches it.
    ProcessingTime,
}

/// A timer: at most one per (domain, key, timestamp).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub domain: TimeDomain,
    /// The key it belongs to (say, the key of the record that registered it).
    pub key: Option<Vec<u8>>,
    /// ms since the Unix epoch.
    pub timestamp: i64,
}

/// The watermark before the first one: nothing is complete yet.
pub const NO_WATERMARK: i64 = i64::MIN;
/// The watermark at the end of input: everything is complete.
pub const END_OF_TIME: i64 = i64::MAX;

/// The host's side of the calls, installed by the code `#[operator]` and `#[source]` generate.
#[doc(hidden)]
pub struct Host {
    pub register: fn(&Timer),
    pub delete: fn(&Timer),
    pub watermark: fn() -> i64,
    pub now: fn() -> i64,
    pub late: fn(Vec<Record>),
    pub emit_watermark: fn(i64),
}

static HOST: OnceLock<Host> = OnceLock::new();

#[doc(hidden)]
pub fn install(host: Host) {
    let _ = HOST.set(host);
}

/// Call `f` on the host, or on the local clock outside one.
fn with_host<R>(host: impl FnOnce(&Host) -> R, local: impl FnOnce(&mut Local) -> R) -> R {
    match HOST.get() {
        Some(h) => host(h),
        None => LOCAL.with(|l| local(&mut l.borrow_mut())),
    }
}

/// Ask for [`crate::Operator::on_timers`] once the watermark reaches `timestamp`.
pub fn register_event_timer(key: Option<&[u8]>, timestamp: i64) {
    register(timer(TimeDomain::EventTime, key, timestamp));
}

/// Ask for [`crate::Operator::on_timers`] once the wall clock reaches `timestamp`.
pub fn register_processing_timer(key: Option<&[u8]>, timestamp: i64) {
    register(timer(TimeDomain::ProcessingTime, key, timestamp));
}

/// Forget an event-time timer registered before (nothing happens if there is none).
pub fn delete_event_timer(key: Option<&[u8]>, timestamp: i64) {
    delete(timer(TimeDomain::EventTime, key, timestamp));
}

/// Forget a processing-time timer registered before.
pub fn delete_processing_timer(key: Option<&[u8]>, timestamp: i64) {
    delete(timer(TimeDomain::ProcessingTime, key, timestamp));
}

fn timer(domain: TimeDomain, key: Option<&[u8]>, timestamp: i64) -> Timer {
    Timer {
        domain,
        key: key.map(<[u8]>::to_vec),
        timestamp,
    }
}

pub fn register(t: Timer) {
    with_host(
        |h| (h.register)(&t),
        |l| {
            l.timers.insert(t.clone());
        },
    )
}

pub fn delete(t: Timer) {
    with_host(
        |h| (h.delete)(&t),
        |l| {
            l.timers.remove(&t);
        },
    )
}

/// The subtask's watermark: no record older than it is expected any more
/// ([`NO_WATERMARK`] before the first).
pub fn current_watermark() -> i64 {
    with_host(|h| (h.watermark)(), |l| l.watermark)
}

/// The host's wall clock, ms since the Unix epoch.
pub fn processing_time() -> i64 {
    with_host(|h| (h.now)(), |l| l.now)
}

/// Send records that came too late to the node's `<node>.late` output.
pub fn emit_late(records: Vec<Record>) {
    if records.is_empty() {
        return;
    }
    match HOST.get() {
        Some(h) => (h.late)(records),
        None => LOCAL.with(|l| l.borrow_mut().late.extend(records)),
    }
}

/// Sources: event time reached `ts`; no record older than it follows from this subtask.
pub fn emit_watermark(ts: i64) {
    with_host(|h| (h.emit_watermark)(ts), |l| l.emitted.push(ts))
}

/// The local clock of native tests.
#[derive(Default)]
struct Local {
    watermark: i64,
    now: i64,
    timers: BTreeSet<Timer>,
    late: Vec<Record>,
    emitted: Vec<i64>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local { watermark: NO_WATERMARK, ..Local::default() });
}

/// Drive time by hand in a plugin's native tests (outside a host).
pub mod testing {
    use super::{LOCAL, TimeDomain, Timer};
    use crate::Record;

    /// Set the watermark and return the event-time timers it fires, in order (removed, as the
    /// host would).
    pub fn advance_watermark(to: i64) -> Vec<Timer> {
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            l.watermark = l.watermark.max(to);
            let wm = l.watermark;
            let due: Vec<Timer> = l
                .timers
                .iter()
                .filter(|t| t.domain == TimeDomain::EventTime && t.timestamp <= wm)
                .cloned()
                .collect();
            for t in &due {
                l.timers.remove(t);
            }
            let mut due = due;
            due.sort_by_key(|t| t.timestamp);
            due
        })
    }

    /// Set the wall clock.
    pub fn set_processing_time(now: i64) {
        LOCAL.with(|l| l.borrow_mut().now = now);
    }

    /// The timers registered and not fired or deleted.
    pub fn registered() -> Vec<Timer> {
        LOCAL.with(|l| l.borrow().timers.iter().cloned().collect())
    }

    /// Take the records sent to the late output.
    pub fn take_late() -> Vec<Record> {
        LOCAL.with(|l| std::mem::take(&mut l.borrow_mut().late))
    }

    /// Take the watermarks a source emitted.
    pub fn take_emitted() -> Vec<i64> {
        LOCAL.with(|l| std::mem::take(&mut l.borrow_mut().emitted))
    }

    /// Start over: no watermark, no timers, nothing sent.
    pub fn reset() {
        LOCAL.with(|l| {
            *l.borrow_mut() = super::Local {
                watermark: super::NO_WATERMARK,
                ..Default::default()
            }
        });
    }
}
