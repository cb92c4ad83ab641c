//! Queryable state: what a node's keyed state holds for one key, or for the keys starting with
//! a prefix, read from a checkpoint (its pieces replayed) or from a running subtask.
//!
//! Invariant: a query only reads; it never writes a piece or a live tree, so asking a running
//! job or its store cannot change what the job computes.

use super::layout;
use super::piece::{self, KeyedManifest};
use super::{KeyedError, Pieces};
use std::collections::BTreeMap;
use weir_core::groups::{self, KeyGroup};

/// One piece of state a key holds: which state, the map key for a map entry, the bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    pub state: String,
    pub map_key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Keys with what they hold, in key order.
pub type Found = BTreeMap<Vec<u8>, Vec<Held>>;

/// Collect the entries of storage `(key, value)` pairs whose key passes `want`.
pub fn collect<'a>(
    entries: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    want: &dyn Fn(&[u8]) -> bool,
    found: &mut Found,
) {
    for (k, v) in entries {
        let Some(parts) = layout::parse(k) else {
            continue;
        };
        if !want(parts.key) {
            continue;
        }
        found.entry(parts.key.to_vec()).or_default().push(Held {
            state: parts.name.to_owned(),
            map_key: parts.map_key.map(<[u8]>::to_vec),
            value: v.to_vec(),
        });
    }
}

/// Key group `g` of `node` as checkpoint `manifest` holds it.
fn replay(
    store: &Pieces,
    node: &str,
    manifest: &KeyedManifest,
    g: KeyGroup,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, KeyedError> {
    let mut state = BTreeMap::new();
    for p in manifest.groups.get(&g).into_iter().flatten() {
        let bytes = store.read_piece(node, g, p)?;
        for (k, v) in piece::decode(&bytes).map_err(KeyedError::Piece)? {
            match v {
                Some(v) => state.insert(k, v),
                None => state.remove(&k),
            };
        }
    }
    Ok(state)
}

/// What `key` holds in `node`'s keyed state of checkpoint `manifest`.
pub fn lookup(
    store: &Pieces,
    node: &str,
    manifest: &KeyedManifest,
    key: &[u8],
) -> Result<Vec<Held>, KeyedError> {
    let g = groups::group_of(key, manifest.max_parallelism);
    let state = replay(store, node, manifest, g)?;
    let mut found = Found::new();
    collect(
        state.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
        &|k| k == key,
        &mut found,
    );
    Ok(found.remove(key).unwrap_or_default())
}

/// The first `limit` keys (in key order) starting with `prefix` in `node`'s keyed state of
/// checkpoint `manifest`, with what they hold.
pub fn scan(
    store: &Pieces,
    node: &str,
    manifest: &KeyedManifest,
    prefix: &[u8],
    limit: usize,
) -> Result<Found, KeyedError> {
    let mut found = Found::new();
    for g in manifest.groups.keys() {
        let state = replay(store, node, manifest, *g)?;
        collect(
            state.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
            &|k| k.starts_with(prefix),
            &mut found,
        );
        // Keep the smallest `limit` keys seen so far.
        while found.len() > limit {
            found.pop_last();
        }
    }
    Ok(found)
}
