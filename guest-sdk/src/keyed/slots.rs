//! The plugin-side cache of one keyed-state handle: entries read from the host, and writes held
//! until the next flush.
//!
//! Invariant: an entry that is not dirty holds what the host holds; a dirty entry holds what
//! the host will hold after the next flush; the bytes counted are each entry's once, at its
//! size when last read, measured or sent.

use std::collections::HashMap;
use std::hash::Hash;

/// One cached entry.
pub(crate) struct Slot<V> {
    /// The value (`None`: the key holds none).
    pub value: Option<V>,
    /// Written since the last flush.
    pub dirty: bool,
    /// About the bytes it stands for: key and encoded value (0: not known yet).
    size: usize,
}

/// Cached entries by `K`.
pub(crate) struct Slots<K, V> {
    map: HashMap<K, Slot<V>>,
    bytes: usize,
}

impl<K: Eq + Hash + Clone, V> Default for Slots<K, V> {
    fn default() -> Self {
        Slots {
            map: HashMap::new(),
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
            size,
        };
        if let Some(old) = self.map.insert(key, slot) {
            self.bytes -= old.size;
        }
    }

    /// The value of cached `key`, to change in place (it is then dirty).
    pub fn write<Q>(&mut self, key: &Q) -> Option<&mut Option<V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let slot = self.map.get_mut(key)?;
        slot.dirty = true;
        Some(&mut slot.value)
    }

    /// Set `key` to `value`.
    pub fn set<Q>(&mut self, key: &Q, value: Option<V>)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        match self.map.get_mut(key) {
            Some(slot) => {
                slot.value = value;
                slot.dirty = true;
            }
            None => {
                let slot = Slot {
                    value,
                    dirty: true,
                    size: 0,
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

    /// Drop the entries whose key passes `pick` (a whole map cleared).
    pub fn remove_where(&mut self, pick: impl Fn(&K) -> bool) {
        let mut bytes = self.bytes;
        self.map.retain(|k, slot| {
            let keep = !pick(k);
            if !keep {
                bytes -= slot.size;
            }
            keep
        });
        self.bytes = bytes;
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
        }
        Ok(())
    }

    /// Forget every entry (all clean, or the writes are to be lost).
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_sends_dirty_entries_once_and_counts_their_bytes_once() {
        let mut s: Slots<Vec<u8>, u32> = Slots::default();
        s.set(&b"a"[..], Some(1));
        s.set(&b"b"[..], None);
        s.load(b"c".to_vec(), Some(3), 5);
        let mut sent = Vec::new();
        s.drain(|k, v| {
            sent.push((k.clone(), *v));
            Ok::<_, ()>(4)
        })
        .unwrap();
        sent.sort();
        assert_eq!(sent, vec![(b"a".to_vec(), Some(1)), (b"b".to_vec(), None)]);
        assert_eq!(s.held(), (3, 13));
        *s.write(&b"a"[..]).unwrap() = Some(2);
        s.drain(|_, _| Ok::<_, ()>(6)).unwrap();
        assert_eq!(s.held(), (3, 15), "a rewritten key counted once");
        s.drain(|_, _| -> Result<usize, ()> { panic!("nothing is dirty") })
            .unwrap();
        s.remove_where(|k| k == b"c");
        assert_eq!(s.held(), (2, 10));
    }
}
