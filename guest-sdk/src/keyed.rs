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
//! Reads and writes go through a cache in the plugin; a call's writes reach the host once, at
//! its end, in one `apply`, so a call that fails leaves keyed state as it was (unless it listed
//! keys or map entries, which sends the writes before them). A state handle
//! serialises as its name alone: a plugin whose state is all keyed is rescalable.
//!
//! Outside a host (a plugin's native tests) the same calls work on a local store.
//!
//! Invariant: every write made during a call is applied by the host by the end of that call,
//! or, if the call fails before listing anything, by no one; the cache never answers with a value the host does not
//! hold or is not about to receive.

use anyhow::{Context as _, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::{Rc, Weak};
use std::sync::OnceLock;

/// Most cached entries, and about the most bytes of keys and encoded values, a state handle
/// keeps between calls (the cache is emptied past either: it must stay far below a plugin's
/// memory ceiling, whatever the size of the state).
const CACHE_ENTRIES: usize = 100_000;
const CACHE_BYTES: usize = 8 << 20;
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

/// A state handle's writes not yet sent to the host.
trait Pending {
    /// Move the writes into `out`, encoded (the entries stay cached, clean).
    fn drain(&self, out: &mut Vec<Change>) -> Result<()>;
    /// Forget every cached entry (the call failed; the host holds the truth).
    fn discard(&self);
}

fn register(handle: Rc<dyn Pending>) {
    HANDLES.with(|h| {
        let mut h = h.borrow_mut();
        h.retain(|w| w.strong_count() > 0);
        h.push(Rc::downgrade(&handle));
    });
}

/// Send every handle's writes to the host in one call.
fn flush() -> Result<()> {
    let handles: Vec<Rc<dyn Pending>> =
        HANDLES.with(|h| h.borrow().iter().filter_map(Weak::upgrade).collect());
    let mut changes = Vec::new();
    for h in &handles {
        h.drain(&mut changes)?;
    }
    host_apply(changes);
    Ok(())
}

/// Called by the generated code at the end of every call into the plugin: its writes go to
/// the host if it succeeded, are dropped if it failed.
#[doc(hidden)]
pub fn end_call(ok: bool) -> std::result::Result<(), String> {
    if ok {
        return flush().map_err(|e| format!("{e:#}"));
    }
    let handles: Vec<Rc<dyn Pending>> =
        HANDLES.with(|h| h.borrow().iter().filter_map(Weak::upgrade).collect());
    for h in handles {
        h.discard();
    }
    Ok(())
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

/// (value, written since the last flush)
type Slot<T> = (Option<T>, bool);

struct ValueCache<T> {
    name: String,
    slots: RefCell<HashMap<Vec<u8>, Slot<T>>>,
    /// About the bytes cached (keys and encoded values), counted as they come.
    bytes: std::cell::Cell<usize>,
}

impl<T: Serialize> Pending for ValueCache<T> {
    fn drain(&self, out: &mut Vec<Change>) -> Result<()> {
        let mut slots = self.slots.borrow_mut();
        let mut bytes = self.bytes.get();
        for (k, (v, dirty)) in slots.iter_mut().filter(|(_, (_, d))| *d) {
            out.push(match v {
                Some(v) => {
                    let encoded = encode(&self.name, v)?;
                    bytes += k.len() + encoded.len();
                    Change::Set(self.name.clone(), k.clone(), encoded)
                }
                None => Change::Clear(self.name.clone(), k.clone()),
            });
            *dirty = false;
        }
        if slots.len() > CACHE_ENTRIES || bytes > CACHE_BYTES {
            slots.clear();
            bytes = 0;
        }
        self.bytes.set(bytes);
        Ok(())
    }

    fn discard(&self) {
        self.slots.borrow_mut().clear();
        self.bytes.set(0);
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
            slots: RefCell::new(HashMap::new()),
            bytes: std::cell::Cell::new(0),
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
        if let Some((v, _)) = self.cache.slots.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = match host_get(&self.cache.name, key) {
            Some(bytes) => {
                self.cache
                    .bytes
                    .set(self.cache.bytes.get() + key.len() + bytes.len());
                Some(decode(&self.cache.name, &bytes)?)
            }
            None => None,
        };
        self.cache
            .slots
            .borrow_mut()
            .insert(key.to_vec(), (v.clone(), false));
        Ok(v)
    }

    /// Set the value for `key`.
    pub fn set(&self, key: &[u8], value: T) {
        let mut slots = self.cache.slots.borrow_mut();
        match slots.get_mut(key) {
            Some(slot) => *slot = (Some(value), true),
            None => {
                slots.insert(key.to_vec(), (Some(value), true));
            }
        }
    }

    /// Forget the value for `key`.
    pub fn clear(&self, key: &[u8]) {
        self.cache
            .slots
            .borrow_mut()
            .insert(key.to_vec(), (None, true));
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
    /// (key, map key) → slot
    slots: RefCell<HashMap<MapSlotKey, Slot<V>>>,
    /// Keys whose whole map was cleared during the current call.
    cleared: RefCell<Vec<Vec<u8>>>,
    bytes: std::cell::Cell<usize>,
}

impl<V: Serialize> Pending for MapCache<V> {
    fn drain(&self, out: &mut Vec<Change>) -> Result<()> {
        for k in self.cleared.borrow_mut().drain(..) {
            out.push(Change::Clear(self.name.clone(), k));
        }
        let mut slots = self.slots.borrow_mut();
        let mut bytes = self.bytes.get();
        for ((k, mk), (v, dirty)) in slots.iter_mut().filter(|(_, (_, d))| *d) {
            out.push(match v {
                Some(v) => {
                    let encoded = encode(&self.name, v)?;
                    bytes += k.len() + mk.len() + encoded.len();
                    Change::Put(self.name.clone(), k.clone(), mk.clone(), encoded)
                }
                None => Change::Remove(self.name.clone(), k.clone(), mk.clone()),
            });
            *dirty = false;
        }
        if slots.len() > CACHE_ENTRIES || bytes > CACHE_BYTES {
            slots.clear();
            bytes = 0;
        }
        self.bytes.set(bytes);
        Ok(())
    }

    fn discard(&self) {
        self.slots.borrow_mut().clear();
        self.cleared.borrow_mut().clear();
        self.bytes.set(0);
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
            slots: RefCell::new(HashMap::new()),
            cleared: RefCell::new(Vec::new()),
            bytes: std::cell::Cell::new(0),
        });
        register(cache.clone());
        MapState { cache }
    }

    /// Entry `map_key` of the map of `key`.
    pub fn get(&self, key: &[u8], map_key: &[u8]) -> Result<Option<V>> {
        let slot = (key.to_vec(), map_key.to_vec());
        if let Some((v, _)) = self.cache.slots.borrow().get(&slot) {
            return Ok(v.clone());
        }
        let v = match host_map_get(&self.cache.name, key, map_key) {
            Some(bytes) => {
                let held = self.cache.bytes.get() + key.len() + map_key.len() + bytes.len();
                self.cache.bytes.set(held);
                Some(decode(&self.cache.name, &bytes)?)
            }
            None => None,
        };
        self.cache
            .slots
            .borrow_mut()
            .insert(slot, (v.clone(), false));
        Ok(v)
    }

    /// Put entry `map_key` in the map of `key`.
    pub fn put(&self, key: &[u8], map_key: &[u8], value: V) {
        self.cache
            .slots
            .borrow_mut()
            .insert((key.to_vec(), map_key.to_vec()), (Some(value), true));
    }

    /// Remove entry `map_key` from the map of `key`.
    pub fn remove(&self, key: &[u8], map_key: &[u8]) {
        self.cache
            .slots
            .borrow_mut()
            .insert((key.to_vec(), map_key.to_vec()), (None, true));
    }

    /// Every entry of the map of `key`, in map-key order.
    pub fn entries(&self, key: &[u8]) -> Result<Vec<(Vec<u8>, V)>> {
        flush()?;
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
        self.cache.slots.borrow_mut().retain(|(k, _), _| k != key);
        self.cache.cleared.borrow_mut().push(key.to_vec());
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
    flush()?;
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
    /// Send the current writes to the local store, as the end of a call would.
    pub fn end_call() {
        super::end_call(true).expect("writes encode");
    }

    /// Forget everything the local store holds.
    pub fn reset() {
        super::LOCAL.with(|l| *l.borrow_mut() = super::Local::default());
        super::HANDLES.with(|h| {
            for w in h.borrow().iter() {
                if let Some(h) = w.upgrade() {
                    h.discard();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_and_maps_reach_the_store_at_the_end_of_a_call() {
        testing::reset();
        let counts: ValueState<u64> = ValueState::new("counts");
        let seen: ListState<String> = ListState::new("seen");
        let last: MapState<i64> = MapState::new("last");
        counts.set(b"a", 2);
        seen.add(b"a", "x".into()).unwrap();
        last.put(b"a", b"m", 7);
        assert_eq!(host_get("counts", b"a"), None, "not before the call ends");
        testing::end_call();
        assert_eq!(host_get("counts", b"a"), Some(b"2".to_vec()));
        assert_eq!(counts.get(b"a").unwrap(), Some(2));
        assert_eq!(seen.get(b"a").unwrap(), vec!["x".to_string()]);
        assert_eq!(last.entries(b"a").unwrap(), vec![(b"m".to_vec(), 7)]);
        counts.set(b"b", 1);
        assert_eq!(
            counts.keys().unwrap().collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        // A failed call's writes never arrive.
        counts.set(b"c", 9);
        end_call(false).unwrap();
        testing::end_call();
        assert_eq!(counts.get(b"c").unwrap(), None);
        last.clear(b"a");
        testing::end_call();
        assert!(last.entries(b"a").unwrap().is_empty());
    }

    #[test]
    fn a_handle_serialises_as_its_name() {
        let v: ValueState<u64> = ValueState::new("counts");
        let bytes = postcard::to_allocvec(&v).unwrap();
        let back: ValueState<u64> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.name(), "counts");
    }
}
