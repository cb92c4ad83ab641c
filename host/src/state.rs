//! Checkpoint storage in sled: each subtask's state blob keyed by (checkpoint, node uid,
//! subtask), the pieces of keyed state (written by the subtasks themselves, see
//! [`crate::keyed`]), and one metadata record per checkpoint naming its blobs and, per keyed
//! node, the chain of pieces of every key group (pieces are shared between checkpoints).
//!
//! Invariants: a checkpoint is `Complete` only once its blobs, pieces and metadata are flushed
//! to disk; every blob's and piece's length and CRC-32 are in the metadata and are checked
//! before a restore, so a corrupt or partial checkpoint is never restored: the newest intact
//! one is, with a warning. Retention deletes a piece only once no kept checkpoint names it.

use crate::keyed::KeyedManifest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weir_core::checksum::Checksum;

/// Failure of the checkpoint store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the checkpoint store in {dir}: {reason}")]
    Open { dir: PathBuf, reason: String },
    #[error("checkpoint store {dir}: {reason}")]
    Io { dir: PathBuf, reason: String },
    #[error("checkpoint store {dir}: metadata of checkpoint {id} is unreadable: {message}")]
    Meta {
        dir: PathBuf,
        id: u64,
        message: String,
    },
}

/// Where a checkpoint is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum Status {
    InProgress,
    Complete,
    Failed(String),
}

/// One state blob of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlobMeta {
    pub node: String,
    pub subtask: u32,
    pub len: u64,
    pub crc32: u32,
}

impl BlobMeta {
    pub fn sum(&self) -> Checksum {
        Checksum {
            len: self.len,
            crc32: self.crc32,
        }
    }
}

/// A checkpoint whose every acknowledgement came in, as the store takes it.
#[derive(Clone, Copy)]
pub struct Completion<'a> {
    pub id: u64,
    pub started: SystemTime,
    pub duration: Duration,
    /// The job ends with it: at the end of its input, or (with `savepoint`) on a stop.
    pub last: bool,
    pub savepoint: bool,
    /// (node uid, subtask, state bytes)
    pub states: &'a [(String, u32, Vec<u8>)],
    /// node uid → its keyed state (the pieces are in the keyed store already).
    pub keyed: &'a BTreeMap<String, KeyedManifest>,
}

/// Everything known about one checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub id: u64,
    #[serde(flatten)]
    pub status: Status,
    /// Unix time in ms when it was triggered.
    pub started_ms: u64,
    pub duration_ms: u64,
    /// The job ended with it: at the end of its input (`finished`) or on a savepoint.
    pub last: bool,
    pub finished: bool,
    pub savepoint: bool,
    pub blobs: Vec<BlobMeta>,
    /// node uid → its keyed state: per key group the pieces it is rebuilt from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keyed: BTreeMap<String, KeyedManifest>,
}

impl CheckpointMeta {
    /// Bytes this checkpoint wrote: its blobs and its own pieces.
    pub fn bytes(&self) -> u64 {
        let blobs: u64 = self.blobs.iter().map(|b| b.len).sum();
        let own: u64 = self
            .keyed
            .values()
            .map(|m| m.bytes_written_by(self.id))
            .sum();
        blobs + own
    }

    /// Bytes of the pieces it shares with older checkpoints (named, not written again).
    pub fn shared_bytes(&self) -> u64 {
        self.keyed
            .values()
            .map(|m| m.bytes() - m.bytes_written_by(self.id))
            .sum()
    }
}

/// A checkpoint read back and verified.
#[derive(Debug)]
pub struct Restorable {
    pub meta: CheckpointMeta,
    /// (node uid, subtask) → state bytes.
    pub states: HashMap<(String, u32), Vec<u8>>,
}

/// The sled database of one pipeline's checkpoints.
pub struct StateStore {
    dir: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    blobs: sled::Tree,
    pieces: crate::keyed::Pieces,
}

fn blob_key(id: u64, node: &str, subtask: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + node.len() + 5);
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(node.as_bytes());
    k.push(0);
    k.extend_from_slice(&subtask.to_be_bytes());
    k
}

/// What went wrong with the store in `dir`, and what to do: sled's own text carries debug
/// output (`backtrace ()`, `Os { code: .. }`), and one hint does not fit every cause.
fn explain(e: &sled::Error, dir: &Path) -> String {
    match e {
        sled::Error::Corruption { .. } => damaged(dir),
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "permission denied ({io}): the user running weir must be able to read and write {}",
            dir.display()
        ),
        sled::Error::Io(io) => match io.raw_os_error() {
            Some(28) => format!("{io}: the disk is full; free space and run again"),
            _ => io.to_string(),
        },
        sled::Error::Unsupported(m) | sled::Error::ReportableBug(m) => m.clone(),
        sled::Error::CollectionNotFound(_) => "a tree of the store is missing".into(),
    }
}

/// The store in `dir` is damaged: what to do.
fn damaged(dir: &Path) -> String {
    format!(
        "its files are damaged. Resume from a savepoint (weir run --from-savepoint DIR; savepoints are kept in {}), or start over with weir run --fresh --yes (which deletes the store)",
        dir.join("savepoints").display()
    )
}

/// ms since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

impl StateStore {
    /// Open (or create) the store in `dir`. Every tree is read through once here, inside
    /// [`crate::contained::contain`]: sled 0.34 panics on some damaged files instead of
    /// reporting them, and damage found now is the clear "damaged" error, never a panic later.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let open_err = |source: sled::Error| StateError::Open {
            dir: dir.to_owned(),
            reason: explain(&source, dir),
        };
        crate::protected::ensure_real_dir(dir).map_err(|e| open_err(sled::Error::Io(e)))?;
        let opened = crate::contained::contain(|| Self::open_sled(dir))
            .map_err(|panic| {
                tracing::debug!("sled panicked opening {}: {panic}", dir.display());
                StateError::Open {
                    dir: dir.to_owned(),
                    reason: damaged(dir),
                }
            })?
            .map_err(open_err)?;
        let (db, meta, blobs) = opened;
        let pieces = crate::keyed::Pieces::open(&db).map_err(|e| StateError::Open {
            dir: dir.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(StateStore {
            dir: dir.to_owned(),
            db,
            meta,
            blobs,
            pieces,
        })
    }

    /// sled's database in `dir` with its trees, each read through once.
    fn open_sled(dir: &Path) -> Result<(sled::Db, sled::Tree, sled::Tree), sled::Error> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(64 << 20)
            .open()?;
        for name in db.tree_names() {
            for item in db.open_tree(name)?.iter() {
                item?;
            }
        }
        let meta = db.open_tree("meta")?;
        let blobs = db.open_tree("blobs")?;
        Ok((db, meta, blobs))
    }

    /// The pieces of keyed state kept in this store.
    pub fn pieces(&self) -> &crate::keyed::Pieces {
        &self.pieces
    }

    /// Where a run's operators keep keyed state: pieces here, live trees in `live/` beside
    /// the store (scratch: emptied now).
    pub fn keyed_store(&self) -> Result<crate::keyed::Store, StateError> {
        crate::keyed::Store::open(self.pieces.clone(), &self.dir.join("live")).map_err(|e| {
            StateError::Io {
                dir: self.dir.clone(),
                reason: e.to_string(),
            }
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, source: sled::Error) -> StateError {
        StateError::Io {
            dir: self.dir.clone(),
            reason: explain(&source, &self.dir),
        }
    }

    /// Every checkpoint's metadata, oldest first.
    pub fn list(&self) -> Result<Vec<CheckpointMeta>, StateError> {
        let mut out = Vec::new();
        for item in self.meta.iter() {
            let (k, v) = item.map_err(|e| self.io(e))?;
            let id = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
            let meta: CheckpointMeta =
                serde_json::from_slice(&v).map_err(|e| StateError::Meta {
                    dir: self.dir.clone(),
                    id,
                    message: e.to_string(),
                })?;
            out.push(meta);
        }
        Ok(out)
    }

    pub fn get(&self, id: u64) -> Result<Option<CheckpointMeta>, StateError> {
        Ok(self.list()?.into_iter().find(|m| m.id == id))
    }

    /// The id after every checkpoint this store has seen.
    pub fn next_id(&self) -> Result<u64, StateError> {
        let last = self.meta.last().map_err(|e| self.io(e))?;
        Ok(last
            .map(|(k, _)| u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])) + 1)
            .unwrap_or(1))
    }

    fn put_meta(&self, meta: &CheckpointMeta) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(meta).expect("metadata serialises");
        self.meta
            .insert(meta.id.to_be_bytes(), bytes)
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    /// Record that checkpoint `id` was triggered.
    pub fn started(&self, id: u64, started: SystemTime) -> Result<(), StateError> {
        self.put_meta(&CheckpointMeta {
            id,
            status: Status::InProgress,
            started_ms: unix_ms(started),
            duration_ms: 0,
            last: false,
            finished: false,
            savepoint: false,
            blobs: Vec::new(),
            keyed: BTreeMap::new(),
        })
    }

    /// Store every blob, then the metadata marked complete, then flush: only after the flush
    /// returns is the checkpoint complete. Returns its metadata.
    pub fn complete(&self, cp: &Completion) -> Result<CheckpointMeta, StateError> {
        let Completion {
            id,
            started,
            duration,
            last,
            savepoint,
            states,
            keyed,
        } = *cp;
        let mut blobs = Vec::with_capacity(states.len());
        for (node, subtask, bytes) in states {
            self.blobs
                .insert(blob_key(id, node, *subtask), bytes.as_slice())
                .map_err(|e| self.io(e))?;
            let sum = Checksum::of(bytes);
            blobs.push(BlobMeta {
                node: node.clone(),
                subtask: *subtask,
                len: sum.len,
                crc32: sum.crc32,
            });
        }
        let meta = CheckpointMeta {
            id,
            status: Status::Complete,
            started_ms: unix_ms(started),
            duration_ms: duration.as_millis() as u64,
            last,
            finished: last && !savepoint,
            savepoint,
            blobs,
            keyed: keyed.clone(),
        };
        self.put_meta(&meta)?;
        self.db.flush().map_err(|e| self.io(e))?;
        Ok(meta)
    }

    /// Make everything written so far durable.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map_err(|e| self.io(e))?;
        Ok(())
    }

    /// Mark `id` failed (it will never complete).
    pub fn failed(&self, id: u64, reason: &str) -> Result<(), StateError> {
        if let Some(mut meta) = self.get(id)?
            && meta.status == Status::InProgress
        {
            meta.status = Status::Failed(reason.to_owned());
            self.put_meta(&meta)?;
        }
        Ok(())
    }

    /// Keep the newest `retain` complete checkpoints; delete older ones (and older failed ones).
    pub fn prune(&self, retain: usize) -> Result<(), StateError> {
        let all = self.list()?;
        let complete: Vec<u64> = all
            .iter()
            .filter(|m| m.status == Status::Complete)
            .map(|m| m.id)
            .collect();
        if complete.len() > retain {
            let oldest_kept = complete[complete.len() - retain.max(1)];
            for m in all.iter().filter(|m| m.id < oldest_kept) {
                self.delete(m.id)?;
            }
        }
        // Pieces no kept checkpoint names (of deleted, failed or abandoned checkpoints).
        let kept = self.list()?;
        let named: Vec<(&str, &KeyedManifest)> = kept
            .iter()
            .flat_map(|m| m.keyed.iter().map(|(n, k)| (n.as_str(), k)))
            .collect();
        let newest = complete.last().copied().unwrap_or(0);
        self.pieces
            .prune(&named, newest)
            .map_err(|e| StateError::Io {
                dir: self.dir.clone(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    fn delete(&self, id: u64) -> Result<(), StateError> {
        for item in self.blobs.scan_prefix(id.to_be_bytes()) {
            let (k, _) = item.map_err(|e| self.io(e))?;
            self.blobs.remove(k).map_err(|e| self.io(e))?;
        }
        self.meta.remove(id.to_be_bytes()).map_err(|e| self.io(e))?;
        Ok(())
    }

    /// Read checkpoint `meta`'s blobs and check each against its length and CRC-32.
    pub fn read(&self, meta: &CheckpointMeta) -> Result<Restorable, String> {
        let mut states = HashMap::new();
        for b in &meta.blobs {
            let bytes = self
                .blobs
                .get(blob_key(meta.id, &b.node, b.subtask))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the state of {}[{}] is missing", b.node, b.subtask))?;
            b.sum()
                .check(&bytes)
                .map_err(|e| format!("the state of {}[{}] {e}", b.node, b.subtask))?;
            states.insert((b.node.clone(), b.subtask), bytes.to_vec());
        }
        for (node, m) in &meta.keyed {
            let mut segments: BTreeMap<u64, crate::keyed::SegmentCache> = BTreeMap::new();
            for (g, p) in m.pieces() {
                let cache = segments.entry(p.checkpoint).or_default();
                self.pieces
                    .read_piece_via(node, g, p, cache)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(Restorable {
            meta: meta.clone(),
            states,
        })
    }

    /// The newest complete checkpoint whose every blob verifies. A newer one that does not is
    /// skipped with a warning naming it and why.
    pub fn latest_restorable(&self) -> Result<Option<Restorable>, StateError> {
        let all = self.list()?;
        for meta in all.iter().rev().filter(|m| m.status == Status::Complete) {
            match self.read(meta) {
                Ok(r) => return Ok(Some(r)),
                Err(why) => {
                    tracing::warn!(
                        "checkpoint {} is corrupt or partial: {why}; falling back to the previous complete checkpoint",
                        meta.id
                    );
                }
            }
        }
        Ok(None)
    }

    /// Checkpoints after `id` that never completed: sinks abort what they prepared for them.
    pub fn incomplete_after(&self, id: u64) -> Result<Vec<u64>, StateError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|m| m.id > id && m.status != Status::Complete)
            .map(|m| m.id)
            .collect())
    }
}

#[cfg(test)]
mod tests {

    /// A checkpoint that neither ends the job nor is a savepoint.
    fn plain(id: u64, states: &[(String, u32, Vec<u8>)]) -> Completion<'_> {
        static NO_KEYED: BTreeMap<String, KeyedManifest> = BTreeMap::new();
        Completion {
            id,
            started: SystemTime::now(),
            duration: Duration::ZERO,
            last: false,
            savepoint: false,
            states,
            keyed: &NO_KEYED,
        }
    }
    #[test]
    fn store_errors_say_what_to_do_without_debug_text() {
        let dir = Path::new("/x/.weir/p");
        let denied = explain(
            &sled::Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
            dir,
        );
        assert!(
            denied.contains("permission denied") && denied.contains("/x/.weir/p"),
            "{denied}"
        );
        assert!(!denied.contains("another weir run"), "{denied}");
        let full = explain(&sled::Error::Io(std::io::Error::from_raw_os_error(28)), dir);
        assert!(full.contains("the disk is full"), "{full}");
        assert!(!full.contains("Os {"), "{full}");
    }

    use super::*;

    /// Flip the first byte of one stored blob, as a damaged disk would.
    fn corrupt_blob(store: &StateStore, id: u64, node: &str, subtask: u32) {
        let key = blob_key(id, node, subtask);
        let mut v = store
            .blobs
            .get(&key)
            .unwrap()
            .expect("the blob exists")
            .to_vec();
        v[0] ^= 0xff;
        store.blobs.insert(key, v).unwrap();
    }

    fn states(tag: u8) -> Vec<(String, u32, Vec<u8>)> {
        vec![
            ("a".into(), 0, vec![tag; 10]),
            ("b".into(), 1, vec![tag; 3]),
        ]
    }

    #[test]
    fn complete_checkpoints_read_back_and_prune_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        for id in 1..=4u64 {
            store.started(id, SystemTime::now()).unwrap();
            store.complete(&plain(id, &states(id as u8))).unwrap();
        }
        store.prune(2).unwrap();
        let ids: Vec<u64> = store.list().unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![3, 4]);
        let r = store.latest_restorable().unwrap().unwrap();
        assert_eq!(r.meta.id, 4);
        assert_eq!(r.states[&("a".to_string(), 0)], vec![4u8; 10]);
        assert_eq!(store.next_id().unwrap(), 5);
    }

    #[test]
    fn a_corrupt_blob_falls_back_to_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        for id in 1..=2u64 {
            store.complete(&plain(id, &states(id as u8))).unwrap();
        }
        corrupt_blob(&store, 2, "b", 1);
        let r = store.latest_restorable().unwrap().unwrap();
        assert_eq!(r.meta.id, 1);
    }

    #[test]
    fn a_missing_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut meta = store.complete(&plain(1, &states(1))).unwrap();
        meta.blobs.push(BlobMeta {
            node: "c".into(),
            subtask: 0,
            len: 1,
            crc32: 0,
        });
        assert!(store.read(&meta).unwrap_err().contains("missing"));
    }

    #[test]
    fn failed_and_in_progress_checkpoints_are_listed_after_a_restore_point() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.complete(&plain(1, &states(1))).unwrap();
        store.started(2, SystemTime::now()).unwrap();
        store.failed(2, "timeout").unwrap();
        store.started(3, SystemTime::now()).unwrap();
        assert_eq!(store.incomplete_after(1).unwrap(), vec![2, 3]);
        assert_eq!(
            store.get(2).unwrap().unwrap().status,
            Status::Failed("timeout".into())
        );
    }
}
