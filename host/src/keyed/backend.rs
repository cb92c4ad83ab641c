//! One subtask's keyed state while the job runs: a B-tree on disk ([`super::live_tree`]; state
//! is bounded by the disk, not by memory) behind a write-back cache, and what changed since the last checkpoint,
//! so a checkpoint writes pieces only for what changed.
//!
//! Invariants: every change since the last checkpoint is either a `changed` slot of the cache
//! or a key in the `changed` tree, so the next checkpoint's deltas miss nothing; the cache
//! never holds more than its budget after an eviction; only key groups of this subtask's range
//! are ever touched (a key of another subtask is an error naming the missing `hash` edge).

use super::layout;
use super::piece::{self, Chain, Entry, KeyedManifest};
use super::{KeyedError, Store};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use weir_core::groups::{self, KeyGroup};

/// A subtask's keyed state, shared by its instances (a recycled or poison-isolating operator
/// replaces its instance, not its state).
pub type SharedKeyed = Arc<Mutex<KeyedBackend>>;

/// Default bytes of keys and values the cache holds before it writes back and empties.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
/// Most pieces in a key group's chain before a checkpoint writes the group whole again.
const MAX_CHAIN: usize = 32;
/// Per-slot overhead counted against the cache budget.
const SLOT_OVERHEAD: usize = 64;

struct Slot {
    /// `None`: removed.
    value: Option<Vec<u8>>,
    /// Not yet written to the live tree.
    dirty: bool,
    /// Changed since the last checkpoint.
    changed: bool,
}

/// (map key, value)
pub type MapEntry = (Vec<u8>, Vec<u8>);

/// One subtask's keyed state.
pub struct KeyedBackend {
    node: String,
    subtask: u32,
    parallelism: u32,
    max_parallelism: u32,
    range: Range<KeyGroup>,
    store: Store,
    /// On disk: the values, and the keys changed since the last checkpoint that left the cache.
    live: super::live_tree::LiveTree,
    cache: HashMap<Vec<u8>, Slot>,
    cache_bytes: usize,
    cache_limit: usize,
    chains: BTreeMap<KeyGroup, Chain>,
    /// Groups without pieces whose changes left the cache unnoted: written whole at the next
    /// checkpoint.
    unnoted: std::collections::BTreeSet<KeyGroup>,
}

impl KeyedBackend {
    /// Empty keyed state for `subtask` of `node`.
    pub fn new(
        store: &Store,
        node: &str,
        subtask: u32,
        parallelism: u32,
        max_parallelism: u32,
    ) -> Result<Self, KeyedError> {
        let live = store.live_tree(node, subtask)?;
        Ok(KeyedBackend {
            node: node.to_owned(),
            subtask,
            parallelism,
            max_parallelism,
            range: groups::range(subtask, parallelism, max_parallelism),
            store: store.clone(),
            live,
            cache: HashMap::new(),
            cache_bytes: 0,
            cache_limit: DEFAULT_CACHE_BYTES,
            chains: BTreeMap::new(),
            unnoted: Default::default(),
        })
    }

    /// Set the cache budget (bytes of keys and values).
    pub fn with_cache_limit(mut self, bytes: usize) -> Self {
        self.cache_limit = bytes;
        self
    }

    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    /// The key group of `key`, if it is this subtask's.
    pub fn group(&self, key: &[u8]) -> Result<KeyGroup, KeyedError> {
        let g = groups::group_of(key, self.max_parallelism);
        if !self.range.contains(&g) {
            return Err(KeyedError::NotOurs {
                key: weir_core::text::escape(&String::from_utf8_lossy(key), 80),
                subtask: self.subtask,
                owner: groups::subtask_of(g, self.max_parallelism, self.parallelism),
            });
        }
        Ok(g)
    }

    fn read(&mut self, storage_key: &[u8]) -> Result<Option<Vec<u8>>, KeyedError> {
        if let Some(slot) = self.cache.get(storage_key) {
            return Ok(slot.value.clone());
        }
        let value = self.live.get(storage_key)?;
        self.account(storage_key.len() + value.as_ref().map_or(0, Vec::len));
        self.cache.insert(
            storage_key.to_vec(),
            Slot {
                value: value.clone(),
                dirty: false,
                changed: false,
            },
        );
        self.evict_if_full()?;
        Ok(value)
    }

    fn write(&mut self, storage_key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), KeyedError> {
        let key_len = storage_key.len();
        self.account(key_len + value.as_ref().map_or(0, Vec::len));
        let slot = Slot {
            value,
            dirty: true,
            changed: true,
        };
        if let Some(old) = self.cache.insert(storage_key, slot) {
            // A key written again is counted once, at its new size.
            let old_bytes = key_len + old.value.as_ref().map_or(0, Vec::len) + SLOT_OVERHEAD;
            self.cache_bytes = self.cache_bytes.saturating_sub(old_bytes);
        }
        self.evict_if_full()
    }

    fn account(&mut self, bytes: usize) {
        self.cache_bytes += bytes + SLOT_OVERHEAD;
    }

    /// Over budget: write the cache back and empty it, keeping note of what changed.
    fn evict_if_full(&mut self) -> Result<(), KeyedError> {
        if self.cache_bytes <= self.cache_limit {
            return Ok(());
        }
        self.write_back()?;
        // Only groups with pieces need their changes noted: a group without any is written
        // whole at the next checkpoint (read back from the live tree).
        let mut changed: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for (k, slot) in self.cache.drain().filter(|(_, slot)| slot.changed) {
            let g = layout::group_of_storage_key(&k);
            if self.chains.contains_key(&g) {
                changed.push((k, slot.value));
            } else {
                self.unnoted.insert(g);
            }
        }
        changed.sort_unstable();
        self.live
            .note_changed(changed.iter().map(|(k, v)| (k.as_slice(), v.as_deref())))?;
        self.cache_bytes = 0;
        Ok(())
    }

    /// Write every dirty slot to the live tree (the slots stay, clean).
    fn write_back(&mut self) -> Result<(), KeyedError> {
        let mut dirty: Vec<(&Vec<u8>, &mut Slot)> =
            self.cache.iter_mut().filter(|(_, s)| s.dirty).collect();
        if dirty.is_empty() {
            return Ok(());
        }
        // In key order: the B-tree's pages are written once each.
        dirty.sort_unstable_by(|a, b| a.0.cmp(b.0));
        self.live.apply(
            dirty
                .iter()
                .map(|(k, slot)| (k.as_slice(), slot.value.as_deref())),
        )?;
        for (_, slot) in dirty {
            slot.dirty = false;
        }
        Ok(())
    }

    /// The value of state `name` for `key`.
    pub fn get(&mut self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KeyedError> {
        let g = self.group(key)?;
        self.read(&layout::value_key(g, name, key)?)
    }

    /// Set (`Some`) or remove (`None`) the value of state `name` for `key`.
    pub fn set(
        &mut self,
        name: &str,
        key: &[u8],
        value: Option<Vec<u8>>,
    ) -> Result<(), KeyedError> {
        let g = self.group(key)?;
        self.write(layout::value_key(g, name, key)?, value)
    }

    /// Map entry `map_key` of state `name` for `key`.
    pub fn map_get(
        &mut self,
        name: &str,
        key: &[u8],
        map_key: &[u8],
    ) -> Result<Option<Vec<u8>>, KeyedError> {
        let g = self.group(key)?;
        self.read(&layout::map_key(g, name, key, map_key)?)
    }

    /// Put (`Some`) or remove (`None`) map entry `map_key` of state `name` for `key`.
    pub fn map_set(
        &mut self,
        name: &str,
        key: &[u8],
        map_key: &[u8],
        value: Option<Vec<u8>>,
    ) -> Result<(), KeyedError> {
        let g = self.group(key)?;
        self.write(layout::map_key(g, name, key, map_key)?, value)
    }

    /// Up to `limit` map entries of state `name` for `key`, in map-key order, after `after`.
    pub fn map_entries(
        &mut self,
        name: &str,
        key: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<MapEntry>, KeyedError> {
        let g = self.group(key)?;
        let mut prefix = layout::scope_prefix(g, name, key)?;
        prefix.push(layout::MAP);
        self.write_back()?;
        let start = match after {
            Some(a) => {
                let mut s = prefix.clone();
                s.extend_from_slice(a);
                s.push(0);
                s
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        self.live.scan(&start, &prefix, |k, v| {
            if out.len() >= limit {
                return false;
            }
            out.push((k[prefix.len()..].to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// Forget everything state `name` holds for `key` (its value and map entries).
    pub fn clear(&mut self, name: &str, key: &[u8]) -> Result<(), KeyedError> {
        let g = self.group(key)?;
        let prefix = layout::scope_prefix(g, name, key)?;
        self.write_back()?;
        let mut doomed = Vec::new();
        self.live.scan(&prefix, &prefix, |k, _| {
            doomed.push(k.to_vec());
            true
        })?;
        for k in doomed {
            self.write(k, None)?;
        }
        Ok(())
    }

    /// Up to `limit` keys this subtask holds state `name` for, in (key group, key) order,
    /// after `after` (a key returned before).
    pub fn keys(
        &mut self,
        name: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KeyedError> {
        self.write_back()?;
        let mut out: Vec<Vec<u8>> = Vec::new();
        let first = match after {
            Some(a) => self.group(a)?,
            None => self.range.start,
        };
        for g in first..self.range.end {
            let prefix = layout::state_prefix(g, name)?;
            let start = match after.filter(|_| g == first) {
                // Past every storage key of `after`: its scope prefix, then 0xff.
                Some(a) => {
                    let mut s = layout::scope_prefix(g, name, a)?;
                    s.push(0xff);
                    s
                }
                None => prefix.clone(),
            };
            let mut full = false;
            self.live.scan(&start, &prefix, |k, _| {
                let Some(parts) = layout::parse(k) else {
                    return true;
                };
                if out.last().is_some_and(|l| l.as_slice() == parts.key) {
                    return true;
                }
                if out.len() >= limit {
                    full = true;
                    return false;
                }
                out.push(parts.key.to_vec());
                true
            })?;
            if full {
                return Ok(out);
            }
        }
        Ok(out)
    }

    /// What `key` holds now, in every state (a live query).
    pub fn lookup(&mut self, key: &[u8]) -> Result<Vec<super::query::Held>, KeyedError> {
        let g = self.group(key)?;
        self.write_back()?;
        let mut found = super::query::Found::new();
        let prefix = g.to_be_bytes();
        self.live.scan(&prefix, &prefix, |k, v| {
            super::query::collect(std::iter::once((k, v)), &|k| k == key, &mut found);
            true
        })?;
        Ok(found.remove(key).unwrap_or_default())
    }

    /// The first `limit` keys starting with `prefix` this subtask holds, with what they hold
    /// (a live query).
    pub fn scan(&mut self, prefix: &[u8], limit: usize) -> Result<super::query::Found, KeyedError> {
        self.write_back()?;
        let mut found = super::query::Found::new();
        for g in self.range.clone() {
            let group = g.to_be_bytes();
            self.live.scan(&group, &group, |k, v| {
                super::query::collect(
                    std::iter::once((k, v)),
                    &|key| key.starts_with(prefix),
                    &mut found,
                );
                true
            })?;
            while found.len() > limit {
                found.pop_last();
            }
        }
        Ok(found)
    }

    /// Write checkpoint `checkpoint`'s pieces: per key group that changed, a delta, or the
    /// group whole when it has none yet or its chain got long. Returns this subtask's part
    /// of the node's manifest.
    pub fn snapshot(&mut self, checkpoint: u64) -> Result<KeyedManifest, KeyedError> {
        // What changed, by storage key: keys that left the cache, with their values then (one
        // read back since holds the same; changed again, the cache's own change below
        // replaces it), then the cache's own changes.
        let mut changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for (k, value) in self.live.take_changed()? {
            changes.insert(k, value);
        }
        for (k, slot) in self.cache.iter_mut().filter(|(_, s)| s.changed) {
            changes.insert(k.clone(), slot.value.clone());
            slot.changed = false;
        }
        let mut by_group: BTreeMap<KeyGroup, Vec<Entry>> = BTreeMap::new();
        for (k, v) in changes {
            by_group
                .entry(layout::group_of_storage_key(&k))
                .or_default()
                .push((k, v));
        }
        // Groups without pieces whose changes left the cache unnoted are written whole, like
        // every group without pieces.
        for g in std::mem::take(&mut self.unnoted) {
            by_group.entry(g).or_default();
        }
        let mut deltas = Vec::new();
        for (g, entries) in by_group {
            let chain = self.chains.get(&g);
            let delta = chain.map(|_| piece::encode(&entries));
            let (entries, bytes, full) = match (chain, delta) {
                (Some(chain), Some(bytes))
                    if chain.len() < MAX_CHAIN
                        && chain.iter().skip(1).map(|p| p.len).sum::<u64>()
                            + bytes.len() as u64
                            <= chain[0].len =>
                {
                    (entries, bytes, false)
                }
                // No base yet, or the chain got long: the group is written whole.
                _ => {
                    let whole = self.whole_group(g)?;
                    let bytes = piece::encode(&whole);
                    (whole, bytes, true)
                }
            };
            if full && entries.is_empty() {
                self.chains.remove(&g);
                continue;
            }
            if !full {
                deltas.push((g, bytes, entries.len() as u64));
                continue;
            }
            let meta = self.store.pieces.put_piece(
                &self.node,
                g,
                checkpoint,
                &bytes,
                true,
                entries.len() as u64,
            )?;
            self.chains.insert(g, vec![meta]);
        }
        // Every delta of this checkpoint in one write.
        if !deltas.is_empty() {
            let metas =
                self.store
                    .pieces
                    .put_segment(&self.node, self.range.start, checkpoint, &deltas)?;
            for (g, meta) in metas {
                self.chains.entry(g).or_default().push(meta);
            }
        }
        Ok(KeyedManifest {
            max_parallelism: self.max_parallelism,
            groups: self.chains.clone(),
        })
    }

    /// Every entry of key group `g` as it is now.
    fn whole_group(&mut self, g: KeyGroup) -> Result<Vec<Entry>, KeyedError> {
        self.write_back()?;
        let mut out = Vec::new();
        let prefix = g.to_be_bytes();
        self.live.scan(&prefix, &prefix, |k, v| {
            out.push((k.to_vec(), Some(v.to_vec())));
            true
        })?;
        Ok(out)
    }

    /// Rebuild this subtask's key groups from `manifest` (written at any parallelism with the
    /// same key groups), reading its pieces from the store.
    pub fn restore(&mut self, manifest: &KeyedManifest) -> Result<(), KeyedError> {
        if manifest.max_parallelism != self.max_parallelism {
            return Err(KeyedError::Piece(format!(
                "the keyed state of {} was written with max_parallelism {}, the job now has {}",
                self.node, manifest.max_parallelism, self.max_parallelism
            )));
        }
        // Deltas of one checkpoint share a segment: read each segment once per run of groups.
        let mut segments: BTreeMap<u64, super::SegmentCache> = BTreeMap::new();
        for (g, chain) in manifest.groups.range(self.range.clone()) {
            for p in chain {
                let cache = segments.entry(p.checkpoint).or_default();
                let bytes = self.store.pieces.read_piece_via(&self.node, *g, p, cache)?;
                let entries = piece::decode(&bytes).map_err(|e| {
                    KeyedError::Piece(format!(
                        "piece {}/{g}@{} does not decode: {e}",
                        self.node, p.checkpoint
                    ))
                })?;
                // Pieces are in key order (a base is a scan; deltas come from a sorted map).
                self.live
                    .apply(entries.iter().map(|(k, v)| (k.as_slice(), v.as_deref())))?;
            }
            self.chains.insert(*g, chain.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(store: &Store, subtask: u32, parallelism: u32) -> KeyedBackend {
        KeyedBackend::new(store, "count", subtask, parallelism, 16).unwrap()
    }

    fn owner(key: &[u8], parallelism: u32) -> u32 {
        groups::subtask_of(groups::group_of(key, 16), 16, parallelism)
    }

    #[test]
    fn values_maps_and_keys_survive_eviction_and_checkpoints() {
        let store = Store::temporary().unwrap();
        let mut b = backend(&store, 0, 1).with_cache_limit(1024);
        for i in 0..500u32 {
            let k = format!("k{i}");
            b.set("count", k.as_bytes(), Some(i.to_be_bytes().to_vec()))
                .unwrap();
        }
        b.map_set("m", b"k1", b"b", Some(b"2".to_vec())).unwrap();
        b.map_set("m", b"k1", b"a", Some(b"1".to_vec())).unwrap();
        assert_eq!(
            b.get("count", b"k7").unwrap(),
            Some(7u32.to_be_bytes().to_vec())
        );
        assert_eq!(
            b.map_entries("m", b"k1", None, 10).unwrap(),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        assert_eq!(b.keys("count", None, 1000).unwrap().len(), 500);
        let m1 = b.snapshot(1).unwrap();
        assert!(m1.pieces().all(|(_, p)| p.full && p.checkpoint == 1));
        // One key changed: only its group gets a (small) delta.
        b.set("count", b"k3", Some(vec![9])).unwrap();
        b.clear("m", b"k1").unwrap();
        let m2 = b.snapshot(2).unwrap();
        let written = m2.bytes_written_by(2);
        assert!(
            written > 0 && written * 10 < m1.bytes(),
            "{written} of {}",
            m1.bytes()
        );
        // Restored elsewhere, at another parallelism, everything is back.
        let mut total = 0;
        for s in 0..3 {
            let mut r = backend(&store, s, 3);
            r.restore(&m2).unwrap();
            for k in r.keys("count", None, 1000).unwrap() {
                assert_eq!(owner(&k, 3), s);
                total += 1;
            }
            if owner(b"k3", 3) == s {
                assert_eq!(r.get("count", b"k3").unwrap(), Some(vec![9]));
                assert!(r.get("count", b"k4").is_err() || owner(b"k4", 3) == s);
            }
            if owner(b"k1", 3) == s {
                assert!(r.map_entries("m", b"k1", None, 10).unwrap().is_empty());
            }
        }
        assert_eq!(total, 500);
    }

    #[test]
    fn a_key_written_again_is_counted_once_in_the_cache() {
        let store = Store::temporary().unwrap();
        let mut b = backend(&store, 0, 1);
        b.set("count", b"k", Some(vec![0; 100])).unwrap();
        let once = b.cache_bytes;
        for _ in 0..1000 {
            b.set("count", b"k", Some(vec![1; 100])).unwrap();
        }
        assert_eq!(b.cache_bytes, once);
        b.set("count", b"k", Some(vec![1; 10])).unwrap();
        assert_eq!(b.cache_bytes, once - 90);
    }

    #[test]
    fn a_key_of_another_subtask_is_refused_with_the_fix() {
        let store = Store::temporary().unwrap();
        let key = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| owner(k.as_bytes(), 2) == 1)
            .unwrap();
        let mut b = backend(&store, 0, 2);
        let e = b.set("count", key.as_bytes(), Some(vec![1])).unwrap_err();
        assert!(e.to_string().contains("hash"), "{e}");
    }

    #[test]
    fn keys_pages_through_with_after() {
        let store = Store::temporary().unwrap();
        let mut b = backend(&store, 0, 1);
        for i in 0..50u32 {
            b.set("s", format!("k{i}").as_bytes(), Some(vec![1]))
                .unwrap();
            b.map_set("s", format!("k{i}").as_bytes(), b"x", Some(vec![2]))
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = b.keys("s", after.as_deref(), 7).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            seen.extend(page);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 50);
    }
}
