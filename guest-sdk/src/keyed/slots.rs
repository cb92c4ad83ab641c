//! The plugin-side cache of one keyed-state handle: entries read from the host, and writes held
//! until the next flush, each call's writes undoable until the call ends.
//!
//! Invariant: an entry that is not dirty holds what the host holds; a dirty entry holds what
//! the host will hold after the next flush; `rollback` puts back exactly what the current call
//! changed, so a failed call leaves the cache as the call found it. The undo costs nothing on
//! the way (an entry keeps what it held before the call that last wrote it); only a rollback,
//! which is rare, looks at every entry.

use std::collections::HashMap;
use std::hash::Hash;

/// One cached entry.
pub(crate) struct Slot<V> {
    /// The value (`None`: the key holds none).
    pub value: Option<V>,
    /// Written since the last flush.
    pub dirty: bool,
    /// The call that last wrote it (0: read from the host, never written).
    stamp: u64,
    /// About the bytes it stands for: key and encoded value, as last encoded or read.
    size: usize,
    /// What it held before call `stamp` first wrote it (`None`: it was not cached).
    before: Option<Box<Before<V>>>,
}

/// A slot as it was before a call wrote it.
struct Before<V> {
    value: Option<V>,
    dirty: bool,
    stamp: u64,
}

/// Cached entries by `K`.
pub(crate) struct Slots<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Entries the current call dropped (a whole map cleared), to put back on a rollback.
    dropped: Vec<(K, Slot<V>)>,
    bytes: usize,
}

impl<K: Eq + Hash + Clone, V> Default for Slots<K, V> {
    fn default() -> Self {
        Slots {
            map: HashMap::new(),
            dropped: Vec::new(),
            bytes: 0,
        }
    }
}

impl<K: Eq + Hash + Clone, V> Slots<K, V> {
    pub fn get<Q>(&self, key: &Q) -> Option<&Slot<V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.map.get(key)
    }

    /// How many entries, and about how many bytes they stand for.
    pub fn held(&self) -> (usize, usize) {
        (self.map.len(), self.bytes)
    }

    /// Cache what the host holds for `key` (`size`: the bytes it came as; 0 for nothing, to be
    /// measured when it is first written).
    pub fn load(&mut self, key: K, value: Option<V>, size: usize) {
        self.bytes += size;
        let slot = Slot {
            value,
            dirty: false,
            stamp: 0,
            size,
            before: None,
        };
        if let Some(old) = self.map.insert(key, slot) {
            self.bytes -= old.size;
        }
    }

    /// The value of `key`, to change in place during call `call` (the key must be cached);
    /// what it held before the call is kept for a rollback.
    pub fn write<Q>(&mut self, key: &Q, call: u64) -> &mut Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
        V: Clone,
    {
        if !self.map.contains_key(key) {
            let slot = Slot {
                value: None,
                dirty: true,
                stamp: call,
                size: 0,
                before: None,
            };
            self.map.insert(key.to_owned(), slot);
        }
        let slot = self.map.get_mut(key).expect("cached just now");
        if slot.stamp != call {
            slot.before = Some(Box::new(Before {
                value: slot.value.clone(),
                dirty: slot.dirty,
                stamp: slot.stamp,
            }));
            slot.stamp = call;
            slot.dirty = true;
        }
        &mut slot.value
    }

    /// Set `key` to `value` during call `call`.
    pub fn set<Q>(&mut self, key: &Q, value: Option<V>, call: u64)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        match self.map.get_mut(key) {
            Some(slot) if slot.stamp == call => slot.value = value,
            Some(slot) => {
                let before = Before {
                    value: std::mem::replace(&mut slot.value, value),
                    dirty: std::mem::replace(&mut slot.dirty, true),
                    stamp: std::mem::replace(&mut slot.stamp, call),
                };
                slot.before = Some(Box::new(before));
            }
            None => {
                let slot = Slot {
                    value,
                    dirty: true,
                    stamp: call,
                    size: 0,
                    before: None,
                };
                self.map.insert(key.to_owned(), slot);
            }
        }
    }

    /// Count the bytes of `key`'s entry with `measure` if they are not known yet (a new entry):
    /// a cache full of values never sent must still pass its bounds.
    pub fn measure<Q>(&mut self, key: &Q, measure: impl FnOnce(&Option<V>) -> usize)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Some(slot) = self.map.get_mut(key)
            && slot.size == 0
        {
            slot.size = measure(&slot.value);
            self.bytes += slot.size;
        }
    }

    /// Drop the entries whose key passes `pick` (a whole map cleared) during call `call`.
    pub fn remove_where(&mut self, pick: impl Fn(&K) -> bool) {
        let keys: Vec<K> = self.map.keys().filter(|k| pick(k)).cloned().collect();
        for k in keys {
            let slot = self.map.remove(&k).expect("listed just now");
            self.bytes -= slot.size;
            self.dropped.push((k, slot));
        }
    }

    /// Every dirty entry, to `send` (key, value), then clean; `send` says how many bytes the
    /// sent value is.
    pub fn drain<E>(
        &mut self,
        mut send: impl FnMut(&K, &Option<V>) -> Result<usize, E>,
    ) -> Result<(), E> {
        for (k, slot) in self.map.iter_mut().filter(|(_, s)| s.dirty) {
            let size = send(k, &slot.value)?;
            self.bytes = self.bytes + size - slot.size;
            slot.size = size;
            slot.dirty = false;
            slot.before = None;
        }
        Ok(())
    }

    /// The current call succeeded: its writes stay.
    pub fn commit(&mut self) {
        self.dropped.clear();
    }

    /// Call `call` failed: every entry back to what it held before it.
    pub fn rollback(&mut self, call: u64) {
        for (k, slot) in self.dropped.drain(..).rev() {
            self.bytes += slot.size;
            self.map.insert(k, slot);
        }
        let mut bytes = self.bytes;
        self.map.retain(|_, slot| {
            if slot.stamp != call {
                return true;
            }
            match slot.before.take() {
                Some(b) => {
                    (slot.value, slot.dirty, slot.stamp) = (b.value, b.dirty, b.stamp);
                    true
                }
                None => {
                    bytes -= slot.size;
                    false
                }
            }
        });
        self.bytes = bytes;
    }

    /// Forget every entry (all clean, or the writes are to be lost).
    pub fn clear(&mut self) {
        self.map.clear();
        self.dropped.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &Slots<Vec<u8>, u32>, k: &[u8]) -> Option<(Option<u32>, bool)> {
        s.get(k).map(|s| (s.value, s.dirty))
    }

    #[test]
    fn a_rollback_restores_what_the_call_found_and_keeps_earlier_calls() {
        let mut s: Slots<Vec<u8>, u32> = Slots::default();
        s.load(b"a".to_vec(), Some(1), 10);
        s.set(&b"a"[..], Some(2), 1);
        s.set(&b"b"[..], Some(5), 1);
        s.commit();
        s.set(&b"a"[..], Some(3), 2);
        s.set(&b"a"[..], None, 2);
        s.set(&b"c"[..], Some(7), 2);
        *s.write(&b"b"[..], 2) = Some(6);
        s.remove_where(|k| k == b"b");
        s.rollback(2);
        assert_eq!(value(&s, b"a"), Some((Some(2), true)));
        assert_eq!(value(&s, b"b"), Some((Some(5), true)));
        assert_eq!(value(&s, b"c"), None);
        assert_eq!(s.held(), (2, 10));
    }

    #[test]
    fn a_drain_sends_dirty_entries_once_and_counts_their_bytes_once() {
        let mut s: Slots<Vec<u8>, u32> = Slots::default();
        s.set(&b"a"[..], Some(1), 1);
        s.set(&b"b"[..], None, 1);
        s.commit();
        let mut sent = Vec::new();
        s.drain(|k, v| {
            sent.push((k.clone(), *v));
            Ok::<_, ()>(4)
        })
        .unwrap();
        sent.sort();
        assert_eq!(sent, vec![(b"a".to_vec(), Some(1)), (b"b".to_vec(), None)]);
        *s.write(&b"a"[..], 2) = Some(2);
        s.commit();
        s.drain(|_, _| Ok::<_, ()>(6)).unwrap();
        assert_eq!(s.held(), (2, 10), "a rewritten key counted once");
        s.drain(|_, _| -> Result<usize, ()> { panic!("nothing is dirty") })
            .unwrap();
    }
}
