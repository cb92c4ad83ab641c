//! Keyed state: values, lists and maps per key, kept by the host outside the plugin's memory
//! (on disk: state may be far larger than the memory ceiling), checkpointed incrementally and
//! redistributed by key group when the node's parallelism changes.
//!
//! ```text
//! #[derive(Serialize, Deserialize)]
//! struct Count { counts: ValueState<u64> }          // serialised as its name only
//!
//! fn open(..) -> Result<Self> { Ok(Count { counts: ValueState::new("counts") }) }
//! fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
//!     for r in &batch {
//!         let n = self.counts.get(r.routing_key())?.unwrap_or(0) + 1;
//!         self.counts.set(r.routing_key(), n);
//!     }
//!     ...
//! }
//! ```
//!
//! A key is the key of the record (or timer) being processed: put the operator behind a `hash`
//! edge, which sends every record of a key to the subtask holding that key's state. Values are
//! stored as JSON, which `weir state get` shows as it is.
//!
//! Reads and writes go through a cache in the plugin. Writes stay in it, a key written a
//! thousand times sent once, until a flush sends them all to the host in one `apply`: before
//! every snapshot (so a checkpoint holds every call before its barrier), before listing keys or
//! map entries, when the cache passes its bounds, and at the end of a call a second or more of
//! processing time after the last flush (so a running job's `weir state get` is at most about
//! a second behind). A call that fails ends the instance's use: its cache is dropped, so what
//! it wrote since the last flush never reaches the host, and every later call is refused (the
//! host replaces a failed instance, restoring the last checkpoint or, with `on_error`, the
//! state before the batch). A state handle serialises as its name alone: a plugin whose
//! state is all keyed is rescalable.
//!
//! Outside a host (a plugin's native tests) the same calls work on a local store.
//!
//! Invariant: the host's keyed state plus the cache's dirty entries is the state after the
//! last call, as long as no call failed; a snapshot is taken only after a flush, and never
//! after a failed call; the cache never answers with a value the host does not hold or is not
//! about to receive.

mod slots;

use crate::time;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use slots::Slots;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::rc::{Rc, Weak};
use std::sync::OnceLock;

/// Most cached entries, and about the most bytes of keys and encoded values, a state handle
/// keeps between calls (the cache is emptied past either: it must stay far below a plugin's
/// memory ceiling, whatever the size of the state).
const CACHE_ENTRIES: usize = 100_000;
const CACHE_BYTES: usize = 8 << 20;
/// Processing time (ms) after which the end of a call sends the cached writes to the host.
const FLUSH_EVERY_MS: i64 = 1000;
/// Keys or map entries asked of the host per call.
const PAGE: u32 = 1024;

/// One change, as the host's `keyed-state.apply` takes it.
#[doc(hidden)]
pub enum Change {
    Set(String, Vec<u8>, Vec<u8>),
    Clear(String, Vec<u8>),
    Put(String, Vec<u8>, Vec<u8>, Vec<u8>),
    Remove(String, Vec<u8>, Vec<u8>),
}

/// (state, key) → value
type Get = fn(&str, &[u8]) -> Option<Vec<u8>>;
/// (state, key, map key) → value
type MapGet = fn(&str, &[u8], &[u8]) -> Option<Vec<u8>>;
/// (state, key, after, limit) → (map key, value)s
type MapEntries = fn(&str, &[u8], Option<&[u8]>, u32) -> Vec<(Vec<u8>, Vec<u8>)>;
/// (state, after, limit) → keys
type KeysPage = fn(&str, Option<&[u8]>, u32) -> Vec<Vec<u8>>;

/// The host's side, installed by the code `#[operator]` generates.
#[doc(hidden)]
pub struct Host {
    pub get: Get,
    pub map_get: MapGet,
    pub map_entries: MapEntries,
    pub keys: KeysPage,
    pub apply: fn(Vec<Change>),
}

static HOST: OnceLock<Host> = OnceLock::new();

#[doc(hidden)]
pub fn install(host: Host) {
    let _ = HOST.set(host);
}

/// The local store of native tests.
#[derive(Default)]
struct Local {
    values: BTreeMap<(String, Vec<u8>), Vec<u8>>,
    maps: BTreeMap<(String, Vec<u8>, Vec<u8>), Vec<u8>>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
    static HANDLES: RefCell<Vec<Weak<dyn Pending>>> = const { RefCell::new(Vec::new()) };
}

fn host_get(name: &str, key: &[u8]) -> Option<Vec<u8>> {
    match HOST.get() {
        Some(h) => (h.get)(name, key),
        None => LOCAL.with(|l| {
            l.borrow()
                .values
                .get(&(name.to_owned(), key.to_vec()))
                .cloned()
        }),
    }
}

fn host_map_get(name: &str, key: &[u8], map_key: &[u8]) -> Option<Vec<u8>> {
    match HOST.get() {
        Some(h) => (h.map_get)(name, key, map_key),
        None => LOCAL.with(|l| {
            l.borrow()
                .maps
                .get(&(name.to_owned(), key.to_vec(), map_key.to_vec()))
                .cloned()
        }),
    }
}

fn host_map_entries(
    name: &str,
    key: &[u8],
    after: Option<&[u8]>,
    limit: u32,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    match HOST.get() {
        Some(h) => (h.map_entries)(name, key, after, limit),
        None => LOCAL.with(|l| {
            l.borrow()
                .maps
                .iter()
                .filter(|((n, k, mk), _)| {
                    n == name && k == key && after.is_none_or(|a| mk.as_slice() > a)
                })
                .take(limit as usize)
                .map(|((_, _, mk), v)| (mk.clone(), v.clone()))
                .collect()
        }),
    }
}

fn host_keys(name: &str, after: Option<&[u8]>, limit: u32) -> Vec<Vec<u8>> {
    match HOST.get() {
        Some(h) => (h.keys)(name, after, limit),
        None => LOCAL.with(|l| {
            let l = l.borrow();
            let mut keys: Vec<Vec<u8>> = l
                .values
                .keys()
                .filter(|(n, _)| n == name)
                .map(|(_, k)| k.clone())
                .chain(
                    l.maps
                        .keys()
                        .filter(|(n, _, _)| n == name)
                        .map(|(_, k, _)| k.clone()),
                )
                .filter(|k| after.is_none_or(|a| k.as_slice() > a))
                .collect();
            keys.sort();
            keys.dedup();
            keys.truncate(limit as usize);
            keys
        }),
    }
}

fn host_apply(changes: Vec<Change>) {
    if changes.is_empty() {
        return;
    }
    match HOST.get() {
        Some(h) => (h.apply)(changes),
        None => LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            for c in changes {
                match c {
                    Change::Set(n, k, v) => {
                        l.values.insert((n, k), v);
                    }
                    Change::Clear(n, k) => {
                        l.values.remove(&(n.clone(), k.clone()));
                        l.maps.retain(|(mn, mk, _), _| !(*mn == n && *mk == k));
                    }
                    Change::Put(n, k, mk, v) => {
                        l.maps.insert((n, k, mk), v);
                    }
                    Change::Remove(n, k, mk) => {
                        l.maps.remove(&(n, k, mk));
                    }
                }
            }
        }),
    }
}

/// What each call into the plugin has to know of the others.
struct Calls {
    /// A call failed: the cache was dropped with the writes it held, so the instance must
    /// not be used again.
    failed: bool,
    /// When (processing time, ms) the writes last went to the host.
    last_flush: i64,
}

thread_local! {
    static CALLS: RefCell<Calls> = const {
        RefCell::new(Calls { failed: false, last_flush: i64::MIN })
    };
}

/// Refuse a call into an instance whose earlier call failed.
#[doc(hidden)]
pub fn usable() -> std::result::Result<(), String> {
    if CALLS.with(|c| c.borrow().failed) {
        return Err("this instance failed a call earlier and dropped the keyed-state writes it had not sent: it cannot go on (the host replaces it)".into());
    }
    Ok(())
}

/// A state handle's cache, as the calls' ends and flushes see it.
trait Pending {
    /// Move the writes into `out`, encoded (the entries stay cached, clean).
    fn drain(&self, out: &mut Vec<Change>) -> Result<()>;
    /// (entries, about the bytes) cached.
    fn held(&self) -> (usize, usize);
    /// Forget every cached entry (all sent, or to be lost).
    fn discard(&self);
}

fn register(handle: Rc<dyn Pending>) {
    HANDLES.with(|h| {
        let mut h = h.borrow_mut();
        h.retain(|w| w.strong_count() > 0);
        h.push(Rc::downgrade(&handle));
    });
}

fn handles() -> Vec<Rc<dyn Pending>> {
    HANDLES.with(|h| h.borrow().iter().filter_map(Weak::upgrade).collect())
}

/// Send every handle's writes to the host in one call.
fn send(handles: &[Rc<dyn Pending>]) -> Result<()> {
    let mut changes = Vec::new();
    for h in handles {
        h.drain(&mut changes)?;
    }
    host_apply(changes);
    CALLS.with(|c| c.borrow_mut().last_flush = time::processing_time());
    Ok(())
}

/// Send the writes now, in the middle of a call (before listing keys or map entries).
fn flush_in_call() -> Result<()> {
    send(&handles())
}

/// Send every write to the host now: called before a snapshot, so that the host's keyed
/// checkpoint holds every call that came before the barrier. Refused after a failed call.
#[doc(hidden)]
pub fn flush() -> std::result::Result<(), String> {
    usable()?;
    let handles = handles();
    send(&handles).map_err(|e| format!("{e:#}"))?;
    evict_if_full(&handles);
    Ok(())
}

/// Whether a cache holds more than either bound.
fn full(h: &Rc<dyn Pending>) -> bool {
    let (entries, bytes) = h.held();
    entries > CACHE_ENTRIES || bytes > CACHE_BYTES
}

/// Past either bound, a cache is emptied (after a flush: every entry is clean).
fn evict_if_full(handles: &[Rc<dyn Pending>]) {
    for h in handles.iter().filter(|h| full(h)) {
        h.discard();
    }
}

/// Called by the generated code at the end of every call into the plugin: a failed call drops
/// the cache (and the instance's use, see [`usable`]); after a successful one the writes go to
/// the host when a flush is due.
#[doc(hidden)]
pub fn end_call(ok: bool) -> std::result::Result<(), String> {
    let handles = handles();
    if !ok {
        CALLS.with(|c| c.borrow_mut().failed = true);
        for h in &handles {
            h.discard();
        }
        return Ok(());
    }
    let now = time::processing_time();
    let since = CALLS.with(|c| c.borrow().last_flush);
    if handles.iter().any(full) || now.saturating_sub(since) >= FLUSH_EVERY_MS {
        return flush();
    }
    Ok(())
}

/// How many bytes `v` takes in JSON, counted without keeping them (0 if it does not encode:
/// the flush reports that).
fn json_len<T: Serialize>(v: &Option<T>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    match v {
        Some(v) => serde_json::to_writer(&mut n, v).map_or(0, |_| n.0),
        None => 0,
    }
}

fn encode<T: Serialize>(name: &str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).with_context(|| format!("cannot encode a value of keyed state {name:?}"))
}

fn decode<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).with_context(|| {
        format!(
            "the stored value of keyed state {name:?} does not decode into this type (written by an incompatible build?): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        )
    })
}

struct ValueCache<T> {
    name: String,
    slots: RefCell<Slots<Vec<u8>, T>>,
}

impl<T: Serialize> Pending for ValueCache<T> {
    fn drain(&self, out: &mut Vec<Change>) -> Result<()> {
        self.slots.borrow_mut().drain(|k, v| {
            Ok(match v {
                Some(v) => {
                    let encoded = encode(&self.name, v)?;
                    let size = k.len() + encoded.len();
                    out.push(Change::Set(self.name.clone(), k.clone(), encoded));
                    size
                }
                None => {
                    out.push(Change::Clear(self.name.clone(), k.clone()));
                    k.len()
                }
            })
        })
    }

    fn held(&self) -> (usize, usize) {
        self.slots.borrow().held()
    }

    fn discard(&self) {
        self.slots.borrow_mut().clear();
    }
}

/// One value per key.
pub struct ValueState<T> {
    cache: Rc<ValueCache<T>>,
}

impl<T: Serialize + DeserializeOwned + Clone + 'static> ValueState<T> {
    /// The value state called `name` (at most 255 bytes; unique among the plugin's states).
    pub fn new(name: &str) -> Self {
        let cache = Rc::new(ValueCache {
            name: name.to_owned(),
            slots: RefCell::new(Slots::default()),
        });
        register(cache.clone());
        ValueState { cache }
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.cache.name
    }

    /// The value for `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Result<Option<T>> {
        if let Some(slot) = self.cache.slots.borrow().get(key) {
            return Ok(slot.value.clone());
        }
        let (v, size) = match host_get(&self.cache.name, key) {
            Some(bytes) => (Some(decode(&self.cache.name, &bytes)?), bytes.len()),
            None => (None, 0),
        };
        let size = if size == 0 { 0 } else { key.len() + size };
        self.cache
            .slots
            .borrow_mut()
            .load(key.to_vec(), v.clone(), size);
        Ok(v)
    }

    /// Set the value for `key`.
    pub fn set(&self, key: &[u8], value: T) {
        let mut slots = self.cache.slots.borrow_mut();
        slots.set(key, Some(value));
        slots.measure(key, |v| key.len() + json_len(v));
    }

    /// Change the value for `key` in place (`f` sees `None` when it has none, and may set it
    /// to `None` to clear it): one lookup and no copy of the value, where `get` then `set`
    /// copy it.
    pub fn update<R>(&self, key: &[u8], f: impl FnOnce(&mut Option<T>) -> R) -> Result<R> {
        if self.cache.slots.borrow().get(key).is_none() {
            self.get(key)?;
        }
        let mut slots = self.cache.slots.borrow_mut();
        let r = f(slots.write(key).expect("cached just now"));
        slots.measure(key, |v| key.len() + json_len(v));
        Ok(r)
    }

    /// Forget the value for `key`.
    pub fn clear(&self, key: &[u8]) {
        self.cache.slots.borrow_mut().set(key, None);
    }

    /// Every key this subtask holds a value for (the writes of the current call included).
    pub fn keys(&self) -> Result<Keys> {
        keys(&self.cache.name)
    }
}

impl<T> Serialize for ValueState<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.cache.name)
    }
}

impl<'de, T: Serialize + DeserializeOwned + Clone + 'static> Deserialize<'de> for ValueState<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(ValueState::new(&name))
    }
}

/// A list per key (stored as one value: suited to lists read whole, like a window's records).
pub struct ListState<T> {
    inner: ValueState<Vec<T>>,
}

impl<T: Serialize + DeserializeOwned + Clone + 'static> ListState<T> {
    pub fn new(name: &str) -> Self {
        ListState {
            inner: ValueState::new(name),
        }
    }

    /// The list of `key` (empty if it has none).
    pub fn get(&self, key: &[u8]) -> Result<Vec<T>> {
        Ok(self.inner.get(key)?.unwrap_or_default())
    }

    /// Append `value` to the list of `key`.
    pub fn add(&self, key: &[u8], value: T) -> Result<()> {
        let mut list = self.get(key)?;
        list.push(value);
        self.inner.set(key, list);
        Ok(())
    }

    /// Replace the list of `key`.
    pub fn set(&self, key: &[u8], values: Vec<T>) {
        self.inner.set(key, values);
    }

    /// Forget the list of `key`.
    pub fn clear(&self, key: &[u8]) {
        self.inner.clear(key);
    }

    /// Every key this subtask holds a list for.
    pub fn keys(&self) -> Result<Keys> {
        self.inner.keys()
    }
}

impl<T> Serialize for ListState<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned + Clone + 'static> Deserialize<'de> for ListState<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(ListState {
            inner: ValueState::deserialize(d)?,
        })
    }
}

/// (key, map key)
type MapSlotKey = (Vec<u8>, Vec<u8>);

struct MapCache<V> {
    name: String,
    slots: RefCell<Slots<MapSlotKey, V>>,
    /// Keys whose whole map was cleared since the last flush.
    cleared: RefCell<HashSet<Vec<u8>>>,
}

impl<V: Serialize> Pending for MapCache<V> {
    fn drain(&self, out: &mut Vec<Change>) -> Result<()> {
        for k in self.cleared.borrow_mut().drain() {
            out.push(Change::Clear(self.name.clone(), k));
        }
        self.slots.borrow_mut().drain(|(k, mk), v| {
            Ok(match v {
                Some(v) => {
                    let encoded = encode(&self.name, v)?;
                    let size = k.len() + mk.len() + encoded.len();
                    out.push(Change::Put(
                        self.name.clone(),
                        k.clone(),
                        mk.clone(),
                        encoded,
                    ));
                    size
                }
                None => {
                    out.push(Change::Remove(self.name.clone(), k.clone(), mk.clone()));
                    k.len() + mk.len()
                }
            })
        })
    }

    fn held(&self) -> (usize, usize) {
        self.slots.borrow().held()
    }

    fn discard(&self) {
        self.slots.borrow_mut().clear();
        self.cleared.borrow_mut().clear();
    }
}

/// A map per key: entries read and written one at a time (any number of them).
pub struct MapState<V> {
    cache: Rc<MapCache<V>>,
}

impl<V: Serialize + DeserializeOwned + Clone + 'static> MapState<V> {
    pub fn new(name: &str) -> Self {
        let cache = Rc::new(MapCache {
            name: name.to_owned(),
            slots: RefCell::new(Slots::default()),
            cleared: RefCell::new(HashSet::new()),
        });
        register(cache.clone());
        MapState { cache }
    }

    /// Entry `map_key` of the map of `key`.
    pub fn get(&self, key: &[u8], map_key: &[u8]) -> Result<Option<V>> {
        let slot = (key.to_vec(), map_key.to_vec());
        if let Some(s) = self.cache.slots.borrow().get(&slot) {
            return Ok(s.value.clone());
        }
        if self.cache.cleared.borrow().contains(key) {
            // Cleared since the last flush: whatever the host still holds is gone.
            return Ok(None);
        }
        let (v, size) = match host_map_get(&self.cache.name, key, map_key) {
            Some(bytes) => (Some(decode(&self.cache.name, &bytes)?), bytes.len()),
            None => (None, 0),
        };
        let size = if size == 0 {
            0
        } else {
            key.len() + map_key.len() + size
        };
        self.cache.slots.borrow_mut().load(slot, v.clone(), size);
        Ok(v)
    }

    /// Put entry `map_key` in the map of `key`.
    pub fn put(&self, key: &[u8], map_key: &[u8], value: V) {
        let slot = (key.to_vec(), map_key.to_vec());
        let mut slots = self.cache.slots.borrow_mut();
        slots.set(&slot, Some(value));
        slots.measure(&slot, |v| key.len() + map_key.len() + json_len(v));
    }

    /// Remove entry `map_key` from the map of `key`.
    pub fn remove(&self, key: &[u8], map_key: &[u8]) {
        let slot = (key.to_vec(), map_key.to_vec());
        self.cache.slots.borrow_mut().set(&slot, None);
    }

    /// Every entry of the map of `key`, in map-key order.
    pub fn entries(&self, key: &[u8]) -> Result<Vec<(Vec<u8>, V)>> {
        flush_in_call()?;
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = host_map_entries(&self.cache.name, key, after.as_deref(), PAGE);
            let full = page.len() == PAGE as usize;
            for (mk, v) in page {
                after = Some(mk.clone());
                out.push((mk, decode(&self.cache.name, &v)?));
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Forget the whole map of `key`.
    pub fn clear(&self, key: &[u8]) {
        self.cache
            .slots
            .borrow_mut()
            .remove_where(|(k, _)| k == key);
        self.cache.cleared.borrow_mut().insert(key.to_vec());
    }

    /// Every key this subtask holds a map for.
    pub fn keys(&self) -> Result<Keys> {
        keys(&self.cache.name)
    }
}

impl<V> Serialize for MapState<V> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.cache.name)
    }
}

impl<'de, V: Serialize + DeserializeOwned + Clone + 'static> Deserialize<'de> for MapState<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(MapState::new(&name))
    }
}

/// The keys a subtask holds a state for, fetched from the host a page at a time.
pub struct Keys {
    name: String,
    page: std::vec::IntoIter<Vec<u8>>,
    after: Option<Vec<u8>>,
    done: bool,
}

/// Every key this subtask holds state `name` for (the current call's writes included).
pub fn keys(name: &str) -> Result<Keys> {
    flush_in_call()?;
    Ok(Keys {
        name: name.to_owned(),
        page: Vec::new().into_iter(),
        after: None,
        done: false,
    })
}

impl Iterator for Keys {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(k) = self.page.next() {
                self.after = Some(k.clone());
                return Some(k);
            }
            if self.done {
                return None;
            }
            let page = host_keys(&self.name, self.after.as_deref(), PAGE);
            self.done = page.len() < PAGE as usize;
            self.page = page.into_iter();
        }
    }
}

/// Keyed state in a plugin's native tests (outside a host).
pub mod testing {
    /// End a successful call, as the host's glue does (its writes go to the local store when a
    /// flush is due: use [`flush`] to send them now).
    pub fn end_call() {
        super::end_call(true).expect("writes encode");
    }

    /// Send every write to the local store, as a checkpoint does.
    pub fn flush() {
        super::flush().expect("writes encode");
    }

    /// Forget everything the local store and the caches hold.
    pub fn reset() {
        super::LOCAL.with(|l| *l.borrow_mut() = super::Local::default());
        super::CALLS.with(|c| c.borrow_mut().failed = false);
        for h in super::handles() {
            h.discard();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_and_maps_reach_the_store_at_a_flush() {
        testing::reset();
        let counts: ValueState<u64> = ValueState::new("counts");
        let seen: ListState<String> = ListState::new("seen");
        let last: MapState<i64> = MapState::new("last");
        testing::end_call(); // the first call's end flushes (and starts the clock)
        counts.set(b"a", 2);
        seen.add(b"a", "x".into()).unwrap();
        last.put(b"a", b"m", 7);
        testing::end_call();
        assert_eq!(host_get("counts", b"a"), None, "not before a flush");
        assert_eq!(counts.get(b"a").unwrap(), Some(2), "the cache answers");
        testing::flush();
        assert_eq!(host_get("counts", b"a"), Some(b"2".to_vec()));
        assert_eq!(seen.get(b"a").unwrap(), vec!["x".to_string()]);
        assert_eq!(last.entries(b"a").unwrap(), vec![(b"m".to_vec(), 7)]);
        counts.set(b"b", 1);
        assert_eq!(
            counts.keys().unwrap().collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec()],
            "listing keys sends the writes first"
        );
        testing::end_call();
    }

    #[test]
    fn a_failed_call_drops_the_unsent_writes_and_ends_the_instance() {
        testing::reset();
        let counts: ValueState<u64> = ValueState::new("counts");
        counts.set(b"a", 1);
        testing::flush(); // a checkpoint
        counts.set(b"a", 2);
        testing::end_call();
        counts.set(b"c", 9);
        end_call(false).unwrap();
        assert_eq!(
            host_get("counts", b"a"),
            Some(b"1".to_vec()),
            "as of the checkpoint"
        );
        assert_eq!(host_get("counts", b"c"), None);
        let e = flush().unwrap_err();
        assert!(e.contains("failed a call earlier"), "{e}");
        assert!(usable().is_err());
        assert_eq!(
            host_get("counts", b"a"),
            Some(b"1".to_vec()),
            "no snapshot sends them"
        );
    }

    #[test]
    fn a_cache_full_of_new_values_is_flushed_at_the_end_of_a_call() {
        testing::reset();
        let blobs: ValueState<String> = ValueState::new("blobs");
        testing::end_call(); // the first call's end flushes (and starts the clock)
        let blob = "x".repeat(1000);
        let mut first_sent = None;
        for i in 0..10_000u32 {
            blobs.set(&i.to_be_bytes(), blob.clone());
            testing::end_call();
            if first_sent.is_none() && host_get("blobs", &0u32.to_be_bytes()).is_some() {
                first_sent = Some(i);
            }
        }
        let at = first_sent.expect("the writes reached the store without a snapshot");
        assert!(
            (at as usize) * 1000 <= CACHE_BYTES + 2000,
            "held about {} KB before sending",
            at
        );
    }

    #[test]
    fn a_cleared_map_reads_empty_before_the_clear_reaches_the_store() {
        testing::reset();
        let last: MapState<i64> = MapState::new("last");
        last.put(b"k", b"m", 1);
        testing::flush();
        let fresh: MapState<i64> = MapState::new("last");
        fresh.clear(b"k");
        testing::end_call();
        assert_eq!(host_map_get("last", b"k", b"m"), Some(b"1".to_vec()));
        assert_eq!(fresh.get(b"k", b"m").unwrap(), None);
        testing::flush();
        assert_eq!(host_map_get("last", b"k", b"m"), None);
    }

    #[test]
    fn a_handle_serialises_as_its_name() {
        let v: ValueState<u64> = ValueState::new("counts");
        let bytes = postcard::to_allocvec(&v).unwrap();
        let back: ValueState<u64> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.name(), "counts");
    }
}
