//! Event-time windows over keys: tumbling, sliding and session windows with an aggregate
//! (count, sum, min, max, or your own [`Aggregate`]) and allowed lateness, on the host's timers,
//! their panes in keyed state.
//!
//! ```text
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct PerUser { counts: Windows<Count> }
//!
//! #[operator]
//! impl Operator for PerUser {
//!     const STATE_IN_STRUCT: bool = false; // the panes are keyed state; the struct is config
//!     fn open(_: &Config, _: &Context) -> Result<Self> {
//!         Ok(PerUser { counts: Windows::tumbling(60_000, Count) })
//!     }
//!     fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
//!         Ok(self.counts.add(batch, |_| ())?.into_iter().map(render).collect())
//!     }
//!     fn on_timers(&mut self, fired: Vec<Timer>) -> Result<Vec<Record>> {
//!         Ok(self.counts.fire(&fired)?.into_iter().map(render).collect())
//!     }
//! }
//! ```
//!
//! A record belongs to the windows of its key (the record's key: put the operator behind a
//! `hash` edge, after a `key-by`) and its timestamp. A window's result comes out once, when the
//! watermark passes its end (`on_timers`). With `allowed_lateness`, the window is kept that much
//! longer, and a record that arrives for it after the result is added and the window's result
//! comes out again (as in Flink). A record later than that goes to the node's `<node>.late`
//! output, never dropped silently.
//!
//! Invariants: a window's pane lives in keyed state (under the state name, `"windows"` unless
//! [`Windows::named`]) until its end + allowed lateness has passed in event time, then it is
//! cleared with its timers; the host keeps the panes and the timers by key group, so a restore
//! fires exactly the windows still open, at any parallelism. The shape, lateness and aggregate
//! are configuration: rebuilt by `open` on every start.

use crate::keyed::ValueState;
use crate::time::{self, TimeDomain, Timer};
use crate::{Record, Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `[start, end)` in ms of event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// The last timestamp inside it.
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }
}

/// How records are grouped in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// Fixed windows of `size` ms, aligned to the epoch.
    Tumbling { size: i64 },
    /// Windows of `size` ms starting every `slide` ms (a record is in `size / slide` of them).
    Sliding { size: i64, slide: i64 },
    /// Per key, records closer than `gap` ms to each other share a window.
    Session { gap: i64 },
}

/// An aggregate over the records of a window: created empty, fed one input per record,
/// merged when session windows meet.
pub trait Aggregate {
    /// What each record contributes (`()` for a count, a number for a sum).
    type In;
    /// The running value, kept in keyed state.
    type Acc: Clone + Serialize + DeserializeOwned + 'static;
    fn create(&self) -> Self::Acc;
    fn add(&self, acc: &mut Self::Acc, input: Self::In);
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
}

/// How many records.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Count;

impl Aggregate for Count {
    type In = ();
    type Acc = u64;
    fn create(&self) -> u64 {
        0
    }
    fn add(&self, acc: &mut u64, _: ()) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
}

/// The sum of the inputs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Sum;

impl Aggregate for Sum {
    type In = i64;
    type Acc = i64;
    fn create(&self) -> i64 {
        0
    }
    fn add(&self, acc: &mut i64, v: i64) {
        *acc = acc.wrapping_add(v);
    }
    fn merge(&self, acc: &mut i64, other: i64) {
        *acc = acc.wrapping_add(other);
    }
}

/// The smallest input.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Min;

impl Aggregate for Min {
    type In = i64;
    type Acc = Option<i64>;
    fn create(&self) -> Option<i64> {
        None
    }
    fn add(&self, acc: &mut Option<i64>, v: i64) {
        *acc = Some(acc.map_or(v, |a| a.min(v)));
    }
    fn merge(&self, acc: &mut Option<i64>, other: Option<i64>) {
        if let Some(v) = other {
            self.add(acc, v);
        }
    }
}

/// The largest input.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Max;

impl Aggregate for Max {
    type In = i64;
    type Acc = Option<i64>;
    fn create(&self) -> Option<i64> {
        None
    }
    fn add(&self, acc: &mut Option<i64>, v: i64) {
        *acc = Some(acc.map_or(v, |a| a.max(v)));
    }
    fn merge(&self, acc: &mut Option<i64>, other: Option<i64>) {
        if let Some(v) = other {
            self.add(acc, v);
        }
    }
}

/// A reduce: the accumulator is the input type, folded with a function.
#[derive(Clone, Copy, Debug)]
pub struct Reduce<T>(pub fn(&mut T, T));

/// What comes out of a window: its key, its bounds and the aggregate; `update` when it is a
/// later result of a window that already fired (a record within the allowed lateness).
#[derive(Clone, Debug, PartialEq)]
pub struct Fired<A> {
    pub key: Vec<u8>,
    pub window: Window,
    pub value: A,
    pub update: bool,
}

impl<A> Fired<A> {
    /// The key as UTF-8, invalid sequences replaced.
    pub fn key_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.key)
    }
}

/// One open window of one key.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pane<Acc> {
    window: Window,
    acc: Acc,
    /// Its result came out already (it waits for late records until its cleanup).
    fired: bool,
}

/// Keyed event-time windows with aggregate `A`: keep it in the operator's struct (built by
/// `open`; the panes are keyed state), feed it in `process`, fire it in `on_timers`.
#[derive(Serialize, Deserialize)]
#[serde(bound = "A: Serialize + DeserializeOwned")]
pub struct Windows<A: Aggregate> {
    shape: Shape,
    allowed_lateness: i64,
    aggregate: A,
    panes: ValueState<Vec<Pane<A::Acc>>>,
}

impl<A: Aggregate> Windows<A> {
    fn new(shape: Shape, aggregate: A) -> Self {
        Windows {
            shape,
            allowed_lateness: 0,
            aggregate,
            panes: ValueState::new("windows"),
        }
    }

    /// Fixed, epoch-aligned windows of `size_ms`.
    pub fn tumbling(size_ms: i64, aggregate: A) -> Self {
        assert!(size_ms > 0, "a window's size must be positive");
        Self::new(Shape::Tumbling { size: size_ms }, aggregate)
    }

    /// Windows of `size_ms` every `slide_ms` (`slide_ms` must divide `size_ms`).
    pub fn sliding(size_ms: i64, slide_ms: i64, aggregate: A) -> Self {
        assert!(
            slide_ms > 0 && size_ms > 0 && size_ms % slide_ms == 0,
            "a sliding window's slide must be positive and divide its size"
        );
        Self::new(
            Shape::Sliding {
                size: size_ms,
                slide: slide_ms,
            },
            aggregate,
        )
    }

    /// Per-key sessions closed by `gap_ms` without records.
    pub fn session(gap_ms: i64, aggregate: A) -> Self {
        assert!(gap_ms > 0, "a session gap must be positive");
        Self::new(Shape::Session { gap: gap_ms }, aggregate)
    }

    /// Keep windows `ms` longer for records that come late (default 0).
    pub fn allowed_lateness(mut self, ms: i64) -> Self {
        self.allowed_lateness = ms.max(0);
        self
    }

    /// Keep the panes under keyed-state name `name` (default `"windows"`): each `Windows` of
    /// one operator needs a name of its own.
    pub fn named(mut self, name: &str) -> Self {
        self.panes = ValueState::new(name);
        self
    }

    /// How many windows are open, over all keys of this subtask.
    pub fn open_windows(&self) -> Result<usize> {
        let mut open = 0;
        for key in self.panes.keys()? {
            open += self.panes.get(&key)?.map_or(0, |p| p.len());
        }
        Ok(open)
    }

    /// The windows a record at `ts` belongs to (sessions: its own, before merging), into `out`.
    fn assign(&self, ts: i64, out: &mut Vec<Window>) {
        out.clear();
        match self.shape {
            Shape::Tumbling { size } => {
                let start = ts - ts.rem_euclid(size);
                out.push(Window {
                    start,
                    end: start + size,
                });
            }
            Shape::Sliding { size, slide } => {
                let last = ts - ts.rem_euclid(slide);
                out.extend((0..size / slide).map(|i| Window {
                    start: last - i * slide,
                    end: last - i * slide + size,
                }));
            }
            Shape::Session { gap } => out.push(Window {
                start: ts,
                end: ts + gap,
            }),
        }
    }

    /// Add a batch: each record with the input `input` makes of it. Records that come too
    /// late for all their windows go to `<node>.late`. Returns the updated results of windows
    /// that had fired already (records within the allowed lateness). Every record needs a
    /// timestamp (give the source a `watermarks` strategy).
    pub fn add(
        &mut self,
        batch: Vec<Record>,
        mut input: impl FnMut(&Record) -> A::In,
    ) -> Result<Vec<Fired<A::Acc>>>
    where
        A::In: Clone,
    {
        let watermark = time::current_watermark();
        let mut updates = Vec::new();
        let mut late = Vec::new();
        let mut windows = Vec::with_capacity(4);
        for mut record in batch {
            let Some(ts) = record.timestamp else {
                bail!(
                    "a record has no timestamp, so it has no window: give the node that produces it a `watermarks` strategy (or set record.timestamp)"
                );
            };
            self.assign(ts, &mut windows);
            let lateness = self.allowed_lateness;
            windows.retain(|w| w.max_timestamp().saturating_add(lateness) > watermark);
            if windows.is_empty() {
                late.push(record);
                continue;
            }
            let value = input(&record);
            let key = match record.key.take() {
                Some(k) => k,
                None => std::mem::take(&mut record.value),
            };
            self.panes.update(&key, |panes| {
                let panes = panes.get_or_insert_with(Vec::new);
                for &w in &windows {
                    if let Some(f) = self.add_to(panes, &key, w, value.clone(), watermark) {
                        updates.push(f);
                    }
                }
            })?;
        }
        time::emit_late(late);
        Ok(updates)
    }

    /// Add one input to window `w` of `key`, whose panes are `panes` (merging sessions); the
    /// window's new result if it had fired already.
    fn add_to(
        &self,
        panes: &mut Vec<Pane<A::Acc>>,
        key: &[u8],
        w: Window,
        value: A::In,
        watermark: i64,
    ) -> Option<Fired<A::Acc>> {
        let lateness = self.allowed_lateness;
        let mut acc = self.aggregate.create();
        self.aggregate.add(&mut acc, value);
        let mut pane = Pane {
            window: w,
            acc,
            fired: false,
        };
        if let Shape::Session { .. } = self.shape {
            // Merge every session the new one touches into it.
            let mut i = 0;
            while i < panes.len() {
                let p = &panes[i];
                if p.window.start <= pane.window.end && pane.window.start <= p.window.end {
                    let p = panes.swap_remove(i);
                    unregister(key, &p.window, lateness, p.fired);
                    pane.window.start = pane.window.start.min(p.window.start);
                    pane.window.end = pane.window.end.max(p.window.end);
                    pane.fired |= p.fired;
                    self.aggregate.merge(&mut pane.acc, p.acc);
                } else {
                    i += 1;
                }
            }
        } else if let Some(p) = panes.iter_mut().find(|p| p.window == w) {
            let mut one = self.aggregate.create();
            std::mem::swap(&mut one, &mut pane.acc);
            self.aggregate.merge(&mut p.acc, one);
            return p.fired.then(|| Fired {
                key: key.to_vec(),
                window: p.window,
                value: p.acc.clone(),
                update: true,
            });
        }
        let passed = pane.window.max_timestamp() <= watermark;
        let update = if passed {
            // Within the allowed lateness of a window that closed: its result again, now.
            pane.fired = true;
            Some(Fired {
                key: key.to_vec(),
                window: pane.window,
                value: pane.acc.clone(),
                update: true,
            })
        } else {
            pane.fired = false;
            time::register_event_timer(Some(key), pane.window.max_timestamp());
            None
        };
        if lateness > 0 {
            time::register_event_timer(
                Some(key),
                pane.window.max_timestamp().saturating_add(lateness),
            );
        }
        panes.push(pane);
        update
    }

    /// Timers fired: the results of the windows that closed (oldest first), and the state of
    /// windows past their allowed lateness dropped. Timers that are not this `Windows`'s are
    /// ignored.
    pub fn fire(&mut self, fired: &[Timer]) -> Result<Vec<Fired<A::Acc>>> {
        let lateness = self.allowed_lateness;
        let mut out = Vec::new();
        for t in fired {
            if t.domain != TimeDomain::EventTime {
                continue;
            }
            let Some(key) = &t.key else { continue };
            let Some(mut panes) = self.panes.get(key)? else {
                continue;
            };
            let before = panes.len();
            let mut changed = false;
            for p in panes.iter_mut() {
                if !p.fired && p.window.max_timestamp() == t.timestamp {
                    p.fired = true;
                    changed = true;
                    out.push(Fired {
                        key: key.clone(),
                        window: p.window,
                        value: p.acc.clone(),
                        update: false,
                    });
                }
            }
            panes.retain(|p| {
                !(p.fired && p.window.max_timestamp().saturating_add(lateness) <= t.timestamp)
            });
            if panes.is_empty() {
                self.panes.clear(key);
            } else if changed || panes.len() != before {
                self.panes.set(key, panes);
            }
        }
        out.sort_by(|a, b| (a.window, &a.key).cmp(&(b.window, &b.key)));
        Ok(out)
    }
}

/// Forget the timers of a window merged away.
fn unregister(key: &[u8], w: &Window, lateness: i64, fired: bool) {
    if !fired {
        time::delete_event_timer(Some(key), w.max_timestamp());
    }
    if lateness > 0 {
        time::delete_event_timer(Some(key), w.max_timestamp().saturating_add(lateness));
    }
}

impl<T: Clone + Serialize + DeserializeOwned + Default + 'static> Aggregate for Reduce<T> {
    type In = T;
    type Acc = Option<T>;
    fn create(&self) -> Option<T> {
        None
    }
    fn add(&self, acc: &mut Option<T>, v: T) {
        match acc {
            None => *acc = Some(v),
            Some(a) => (self.0)(a, v),
        }
    }
    fn merge(&self, acc: &mut Option<T>, other: Option<T>) {
        if let Some(v) = other {
            self.add(acc, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyed;
    use crate::time::testing;

    /// A fresh store and clock for each test.
    fn reset() {
        testing::reset();
        keyed::testing::reset();
    }

    fn at(key: &str, ts: i64) -> Record {
        Record {
            key: Some(key.as_bytes().to_vec()),
            timestamp: Some(ts),
            ..Record::default()
        }
    }

    fn fire_to<A: Aggregate>(w: &mut Windows<A>, wm: i64) -> Vec<(String, i64, A::Acc)> {
        let timers = testing::advance_watermark(wm);
        w.fire(&timers)
            .unwrap()
            .into_iter()
            .map(|f| (f.key_str().into_owned(), f.window.start, f.value))
            .collect()
    }

    #[test]
    fn tumbling_counts_per_key_fire_once_when_the_watermark_passes() {
        reset();
        let mut w = Windows::tumbling(10, Count);
        w.add(
            vec![at("a", 1), at("b", 3), at("a", 9), at("a", 12)],
            |_| (),
        )
        .unwrap();
        assert_eq!(fire_to(&mut w, 8), vec![]);
        assert_eq!(
            fire_to(&mut w, 9),
            vec![("a".into(), 0, 2), ("b".into(), 0, 1)]
        );
        assert_eq!(fire_to(&mut w, i64::MAX), vec![("a".into(), 10, 1)]);
        assert_eq!(w.open_windows().unwrap(), 0);
        assert!(testing::registered().is_empty());
    }

    #[test]
    fn late_records_go_to_the_late_output_and_lateness_updates_results() {
        reset();
        let mut w = Windows::tumbling(10, Count).allowed_lateness(5);
        w.add(vec![at("a", 1)], |_| ()).unwrap();
        assert_eq!(fire_to(&mut w, 9), vec![("a".into(), 0, 1)]);
        // Within the lateness: an update of the result.
        let updates = w.add(vec![at("a", 2)], |_| ()).unwrap();
        assert_eq!(updates.len(), 1);
        assert!(updates[0].update && updates[0].value == 2);
        // Past it: the late output.
        assert_eq!(fire_to(&mut w, 14), vec![]);
        assert_eq!(w.open_windows().unwrap(), 0);
        w.add(vec![at("a", 3)], |_| ()).unwrap();
        let late = testing::take_late();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].timestamp, Some(3));
    }

    #[test]
    fn sliding_windows_hold_a_record_in_each_overlapping_window() {
        reset();
        let mut w = Windows::sliding(10, 5, Sum);
        w.add(vec![at("k", 7)], |_| 3).unwrap();
        let fired = fire_to(&mut w, i64::MAX);
        assert_eq!(fired, vec![("k".into(), 0, 3), ("k".into(), 5, 3)]);
    }

    #[test]
    fn sessions_merge_records_closer_than_the_gap() {
        reset();
        let mut w = Windows::session(10, Count);
        w.add(
            vec![at("u", 0), at("u", 8), at("u", 30), at("u", 15)],
            |_| (),
        )
        .unwrap();
        let timers = testing::advance_watermark(i64::MAX);
        let fired = w.fire(&timers).unwrap();
        let got: Vec<(i64, i64, u64)> = fired
            .iter()
            .map(|f| (f.window.start, f.window.end, f.value))
            .collect();
        assert_eq!(got, vec![(0, 25, 3), (30, 40, 1)]);
    }

    #[test]
    fn min_max_and_reduce_aggregate() {
        reset();
        let mut lo = Windows::tumbling(100, Min).named("lo");
        let mut hi = Windows::tumbling(100, Max).named("hi");
        let mut cat = Windows::tumbling(100, Reduce::<String>(|a, b| a.push_str(&b))).named("cat");
        let batch = || vec![at("k", 1), at("k", 2), at("k", 3)];
        let mut n = 0;
        lo.add(batch(), |r| 10 - r.timestamp.unwrap()).unwrap();
        hi.add(batch(), |r| r.timestamp.unwrap()).unwrap();
        cat.add(batch(), |_| {
            n += 1;
            n.to_string()
        })
        .unwrap();
        let timers = testing::advance_watermark(i64::MAX);
        assert_eq!(lo.fire(&timers).unwrap()[0].value, Some(7));
        assert_eq!(hi.fire(&timers).unwrap()[0].value, Some(3));
        assert_eq!(cat.fire(&timers).unwrap()[0].value.as_deref(), Some("123"));
    }

    #[test]
    fn a_record_without_a_timestamp_is_an_error() {
        reset();
        let mut w = Windows::tumbling(10, Count);
        let e = w.add(vec![Record::new("x")], |_| ()).unwrap_err();
        assert!(e.to_string().contains("no timestamp"), "{e}");
    }

    #[test]
    fn panes_live_in_keyed_state_and_the_struct_is_config_only() {
        reset();
        let mut w = Windows::tumbling(10, Count).named("counts");
        w.add(vec![at("a", 1), at("b", 2)], |_| ()).unwrap();
        keyed::testing::end_call();
        keyed::testing::flush(); // a checkpoint
        // The struct's encoding holds no pane: the same on every subtask, whatever it holds.
        let empty = postcard::to_allocvec(&Windows::tumbling(10, Count).named("counts")).unwrap();
        assert_eq!(postcard::to_allocvec(&w).unwrap(), empty);
        // A fresh Windows (a restored or rescaled instance) finds the panes by key.
        let mut again = Windows::tumbling(10, Count).named("counts");
        assert_eq!(again.open_windows().unwrap(), 2);
        assert_eq!(
            fire_to(&mut again, 9),
            vec![("a".into(), 0, 1), ("b".into(), 0, 1)]
        );
        keyed::testing::end_call();
        keyed::testing::flush();
        assert_eq!(again.open_windows().unwrap(), 0, "fired panes are cleared");
    }
}
