//! Keyed state: values, maps and lists per (state name, key), owned by the host, grouped into
//! key groups ([`groups`]), kept on disk while the job runs ([`backend`]: a redb B-tree per
//! subtask behind a cache, so state is bounded by the disk, not a guest's memory), and
//! checkpointed incrementally as immutable pieces ([`piece`]) that each subtask writes itself.
//!
//! Invariants: a key's state lives in exactly one subtask, the one its key group belongs to
//! (`hash` edges route by the same groups); a checkpoint's pieces are in the store before its
//! subtask acks the barrier, and the coordinator's flush makes them durable with the manifest.

pub mod backend;
pub mod layout;
pub mod live;
pub mod live_tree;
pub mod piece;
pub mod query;

pub use backend::{KeyedBackend, SharedKeyed};
pub use piece::{Chain, KeyedManifest, PieceMeta};
pub use weir_core::groups::{DEFAULT_MAX_PARALLELISM, KeyGroup};

use std::path::Path;
use weir_core::checksum::Checksum;

/// Failure of keyed state.
#[derive(Debug, thiserror::Error)]
pub enum KeyedError {
    #[error("keyed state storage: {0}")]
    Storage(String),
    #[error(
        "keyed state of key {key} was used in subtask {subtask}, but the key belongs to subtask {owner}: a keyed operator needs its input on a `hash` edge (partition = \"hash\") keyed by the same key"
    )]
    NotOurs {
        key: String,
        subtask: u32,
        owner: u32,
    },
    #[error("state name {0:?} is too long (at most 255 bytes)")]
    Name(String),
    #[error("keyed state is only for operators")]
    NotAnOperator,
    #[error("{0}")]
    Piece(String),
}

impl KeyedError {
    /// A use of keyed state the plugin's code makes the same way on the same input (not a
    /// failure of the storage under it): no restart cures it.
    pub fn is_misuse(&self) -> bool {
        matches!(
            self,
            KeyedError::NotOurs { .. } | KeyedError::Name(_) | KeyedError::NotAnOperator
        )
    }
}

impl From<sled::Error> for KeyedError {
    fn from(e: sled::Error) -> Self {
        KeyedError::Storage(e.to_string())
    }
}

/// The stored pieces, in the checkpoint store's sled database (so one flush makes a
/// checkpoint's pieces and its manifest durable together).
#[derive(Clone)]
pub struct Pieces {
    pieces: sled::Tree,
    /// Names of the stored pieces (reading them from `pieces` would read their bytes).
    index: sled::Tree,
}

/// Where keyed state is kept: the pieces, and the live trees the running subtasks work in
/// (scratch, rebuilt from pieces on every restore).
#[derive(Clone)]
pub struct Store {
    pub pieces: Pieces,
    /// Where the subtasks' live trees are (one file each).
    live: std::path::PathBuf,
    /// The running subtasks' state, for live queries.
    pub registry: live::Registry,
    /// A temporary store's directory, deleted with the last clone.
    _temporary: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// Memory each subtask's live tree may use for its pages (host memory, outside every plugin's
/// ceiling; state beyond it stays on disk).
const LIVE_CACHE: usize = 128 << 20;

impl Store {
    /// Live trees in a fresh database at `live_dir` (deleted first: what a previous run left
    /// there is scratch) beside `pieces`.
    pub fn open(pieces: Pieces, live_dir: &Path) -> Result<Self, KeyedError> {
        if live_dir.exists() {
            std::fs::remove_dir_all(live_dir).map_err(|e| {
                KeyedError::Storage(format!("cannot clear {}: {e}", live_dir.display()))
            })?;
        }
        std::fs::create_dir_all(live_dir).map_err(|e| {
            KeyedError::Storage(format!("cannot create {}: {e}", live_dir.display()))
        })?;
        Ok(Store {
            pieces,
            live: live_dir.to_owned(),
            registry: live::Registry::default(),
            _temporary: None,
        })
    }

    /// A store for a run without checkpoints: everything in a temporary directory.
    pub fn temporary() -> Result<Self, KeyedError> {
        let dir = tempfile::Builder::new()
            .prefix("weir-keyed-")
            .tempdir()
            .map_err(|e| KeyedError::Storage(format!("cannot make a temporary directory: {e}")))?;
        let db = sled::Config::new()
            .path(dir.path().join("pieces"))
            .temporary(true)
            .open()?;
        let mut store = Self::open(Pieces::open(&db)?, &dir.path().join("live"))?;
        store._temporary = Some(std::sync::Arc::new(dir));
        Ok(store)
    }

    /// A fresh live tree for subtask `subtask` of `node` (its file named by the node's name
    /// in hex: any name makes a file name).
    fn live_tree(&self, node: &str, subtask: u32) -> Result<live_tree::LiveTree, KeyedError> {
        let hex: String = node.bytes().map(|b| format!("{b:02x}")).collect();
        live_tree::LiveTree::create(&self.live.join(format!("{hex}-{subtask}.redb")), LIVE_CACHE)
    }
}

impl Pieces {
    /// The pieces kept in `db`.
    pub fn open(db: &sled::Db) -> Result<Self, KeyedError> {
        Ok(Pieces {
            pieces: db.open_tree("pieces")?,
            index: db.open_tree("piece-index")?,
        })
    }

    /// Where `piece` of `group` is stored: its own key, or its segment's.
    fn stored_key(node: &str, group: KeyGroup, piece: &PieceMeta) -> Vec<u8> {
        match piece.segment {
            None => Self::piece_key(node, group, piece.checkpoint),
            Some((first, _)) => Self::piece_key(node, SEGMENT | first, piece.checkpoint),
        }
    }

    fn piece_key(node: &str, group: KeyGroup, checkpoint: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(node.len() + 11);
        k.extend_from_slice(node.as_bytes());
        k.push(0);
        k.extend_from_slice(&group.to_be_bytes());
        k.extend_from_slice(&checkpoint.to_be_bytes());
        k
    }

    /// Store a piece (not yet durable: the checkpoint's flush makes it so).
    pub fn put_piece(
        &self,
        node: &str,
        group: KeyGroup,
        checkpoint: u64,
        bytes: &[u8],
        full: bool,
        entries: u64,
    ) -> Result<PieceMeta, KeyedError> {
        let key = Self::piece_key(node, group, checkpoint);
        self.pieces.insert(&key, bytes)?;
        self.index.insert(&key, &[])?;
        let sum = Checksum::of(bytes);
        Ok(PieceMeta {
            checkpoint,
            len: sum.len,
            crc32: sum.crc32,
            full,
            entries,
            segment: None,
        })
    }

    /// Store `parts` (group, bytes, entries: deltas of one subtask's checkpoint) as one
    /// segment named by `first` (the first group of the subtask's range); their metadata.
    pub fn put_segment(
        &self,
        node: &str,
        first: KeyGroup,
        checkpoint: u64,
        parts: &[(KeyGroup, Vec<u8>, u64)],
    ) -> Result<Vec<(KeyGroup, PieceMeta)>, KeyedError> {
        let mut value = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
        let mut metas = Vec::with_capacity(parts.len());
        for (g, bytes, entries) in parts {
            let sum = Checksum::of(bytes);
            metas.push((
                *g,
                PieceMeta {
                    checkpoint,
                    len: sum.len,
                    crc32: sum.crc32,
                    full: false,
                    entries: *entries,
                    segment: Some((first, value.len() as u64)),
                },
            ));
            value.extend_from_slice(bytes);
        }
        let key = Self::piece_key(node, SEGMENT | first, checkpoint);
        self.pieces.insert(&key, value)?;
        self.index.insert(&key, &[])?;
        Ok(metas)
    }

    /// Store what [`Pieces::read_piece`] read, where `piece` says it lives (importing a
    /// savepoint): a piece of a segment goes to its offset in that segment.
    pub fn put_at(
        &self,
        node: &str,
        group: KeyGroup,
        piece: &PieceMeta,
        bytes: &[u8],
    ) -> Result<(), KeyedError> {
        let key = Self::stored_key(node, group, piece);
        let value = match piece.segment {
            None => bytes.to_vec(),
            Some((_, offset)) => {
                let mut v = self
                    .pieces
                    .get(&key)?
                    .map(|v| v.to_vec())
                    .unwrap_or_default();
                let (at, end) = (offset as usize, offset as usize + bytes.len());
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[at..end].copy_from_slice(bytes);
                v
            }
        };
        self.pieces.insert(&key, value)?;
        self.index.insert(&key, &[])?;
        Ok(())
    }

    /// A piece's bytes, checked against its length and checksum.
    pub fn read_piece(
        &self,
        node: &str,
        group: KeyGroup,
        piece: &PieceMeta,
    ) -> Result<Vec<u8>, KeyedError> {
        self.read_piece_via(node, group, piece, &mut SegmentCache::default())
    }

    /// [`Pieces::read_piece`], keeping the last segment read in `cache` (the pieces of one
    /// segment are read one after the other by a restore).
    pub fn read_piece_via(
        &self,
        node: &str,
        group: KeyGroup,
        piece: &PieceMeta,
        cache: &mut SegmentCache,
    ) -> Result<Vec<u8>, KeyedError> {
        let what = || {
            format!(
                "piece {}/{group}@{} of {node}'s keyed state",
                node, piece.checkpoint
            )
        };
        let key = Self::stored_key(node, group, piece);
        let stored = match &cache.0 {
            Some((k, v)) if piece.segment.is_some() && *k == key => v.clone(),
            _ => {
                let v = self
                    .pieces
                    .get(&key)?
                    .ok_or_else(|| KeyedError::Piece(format!("{} is missing", what())))?;
                if piece.segment.is_some() {
                    cache.0 = Some((key, v.clone()));
                }
                v
            }
        };
        let bytes: &[u8] = match piece.segment {
            None => &stored,
            Some((_, offset)) => stored
                .get(offset as usize..(offset + piece.len) as usize)
                .ok_or_else(|| KeyedError::Piece(format!("{} is cut short", what())))?,
        };
        if let Err(e) = piece.sum().check(bytes) {
            return Err(KeyedError::Piece(format!("{} {e}", what())));
        }
        Ok(bytes.to_vec())
    }

    /// Delete every piece no manifest in `keep` names, except those of checkpoints after
    /// `newest_complete` (still being written).
    pub fn prune(
        &self,
        keep: &[(&str, &KeyedManifest)],
        newest_complete: u64,
    ) -> Result<usize, KeyedError> {
        let named: std::collections::HashSet<Vec<u8>> = keep
            .iter()
            .flat_map(|(node, m)| m.pieces().map(|(g, p)| Self::stored_key(node, g, p)))
            .collect();
        let mut deleted = 0;
        for item in self.index.iter() {
            let (k, _) = item?;
            let checkpoint = k
                .len()
                .checked_sub(8)
                .map(|at| u64::from_be_bytes(k[at..].try_into().expect("8 bytes")))
                .unwrap_or(0);
            if checkpoint <= newest_complete && !named.contains(k.as_ref()) {
                self.pieces.remove(&k)?;
                self.index.remove(&k)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Damage a piece, as a failing disk would (tests of the fallback).
    #[doc(hidden)]
    pub fn corrupt_piece(&self, node: &str, group: KeyGroup, piece: &PieceMeta) -> bool {
        let key = Self::stored_key(node, group, piece);
        let at = piece.segment.map_or(0, |(_, offset)| offset as usize);
        match self.pieces.get(&key) {
            Ok(Some(v)) if v.len() > at => {
                let mut v = v.to_vec();
                v[at] ^= 0xff;
                self.pieces.insert(key, v).is_ok()
            }
            _ => false,
        }
    }
}

/// The segment a restore read last.
#[derive(Default)]
pub struct SegmentCache(Option<(Vec<u8>, sled::IVec)>);

/// Marks a segment's name among group ids (which stay below 32 768).
const SEGMENT: KeyGroup = 0x8000;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("keyed::Store")
    }
}
