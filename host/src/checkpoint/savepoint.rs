//! Savepoints: self-contained directories holding one checkpoint's state, to stop a job and
//! resume it later, elsewhere, or with new plugin builds.
//!
//! Layout: `_metadata.json` (pipeline, checkpoint id, nodes, per blob its file, length and
//! CRC-32, and per keyed node its manifest) plus one `<node>.<subtask>.state` file per subtask
//! and one `<node>.<group>.<checkpoint>.piece` file per piece of keyed state the savepoint's
//! checkpoint names (so it is self-contained; resuming imports the pieces into the store). Invariants: a savepoint directory
//! appears whole (built under a temporary name, renamed into place) and is never written through
//! a name or link that existed before; every blob is verified against the metadata when read.

use crate::keyed::{KeyGroup, KeyedManifest, PieceMeta, Pieces};
use crate::protected::write_new;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use weir_core::checksum::Checksum;

const METADATA: &str = "_metadata.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct SavepointMeta {
    pub format: u32,
    pub pipeline: String,
    /// The job's identity (missing in savepoints of weir before job identities).
    #[serde(default)]
    pub job: Option<String>,
    pub checkpoint: u64,
    pub created_ms: u64,
    pub blobs: Vec<BlobFile>,
    /// node uid → its keyed state (the pieces are files beside this one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keyed: BTreeMap<String, KeyedManifest>,
}

fn piece_file(node: &str, group: KeyGroup, piece: &PieceMeta) -> String {
    format!("{node}.{group}.{}.piece", piece.checkpoint)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BlobFile {
    pub node: String,
    pub subtask: u32,
    pub file: String,
    pub len: u64,
    pub crc32: u32,
}

/// A savepoint read back and verified.
#[derive(Debug)]
pub struct Savepoint {
    pub meta: SavepointMeta,
    pub states: HashMap<(String, u32), Vec<u8>>,
    dir: PathBuf,
}

/// Write the states of checkpoint `id` as a savepoint directory under `parent`.
///
/// The directory is built under a temporary name that must not exist, every file is created
/// fresh (never opened through an existing name or link), and the whole is renamed into place
/// under a name nobody holds: nothing planted in `parent` beforehand can redirect a write or
/// be overwritten, and an older savepoint with the same id is kept.
pub fn write(
    parent: &Path,
    pipeline: &str,
    job: &str,
    id: u64,
    states: &[(String, u32, Vec<u8>)],
    keyed: &BTreeMap<String, KeyedManifest>,
    pieces: Option<&Pieces>,
) -> std::io::Result<PathBuf> {
    crate::protected::ensure_real_dir(parent)?;
    let tmp = parent.join(format!(".savepoint-{id}.tmp-{}", std::process::id()));
    match std::fs::symlink_metadata(&tmp) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&tmp)?,
        Ok(_) => std::fs::remove_file(&tmp)?,
        Err(_) => {}
    }
    std::fs::create_dir(&tmp)?;
    let mut blobs = Vec::new();
    for (node, subtask, bytes) in states {
        let file = format!("{node}.{subtask}.state");
        write_new(&tmp.join(&file), bytes)?;
        let sum = Checksum::of(bytes);
        blobs.push(BlobFile {
            node: node.clone(),
            subtask: *subtask,
            file,
            len: sum.len,
            crc32: sum.crc32,
        });
    }
    for (node, m) in keyed {
        let pieces = pieces.ok_or_else(|| std::io::Error::other("no store holds the pieces"))?;
        for (g, p) in m.pieces() {
            let bytes = pieces
                .read_piece(node, g, p)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            write_new(&tmp.join(piece_file(node, g, p)), &bytes)?;
        }
    }
    let meta = SavepointMeta {
        format: 1,
        pipeline: pipeline.to_owned(),
        job: Some(job.to_owned()),
        checkpoint: id,
        created_ms: crate::state::unix_ms(std::time::SystemTime::now()),
        blobs,
        keyed: keyed.clone(),
    };
    let json = serde_json::to_vec_pretty(&meta).expect("metadata serialises");
    write_new(&tmp.join(METADATA), &json)?;
    let dir = (0..)
        .map(|n| match n {
            0 => parent.join(format!("savepoint-{id}")),
            n => parent.join(format!("savepoint-{id}-{n}")),
        })
        .find(|d| std::fs::symlink_metadata(d).is_err())
        .expect("some name is free");
    std::fs::rename(&tmp, &dir)?;
    std::fs::File::open(parent)?.sync_all()?;
    Ok(std::path::absolute(&dir).unwrap_or(dir))
}

/// Read and verify the savepoint in `dir`.
pub fn read(dir: &Path) -> Result<Savepoint, String> {
    let text = std::fs::read(dir.join(METADATA)).map_err(|e| {
        format!(
            "{} is not a savepoint: cannot read {METADATA}: {e}",
            dir.display()
        )
    })?;
    let meta: SavepointMeta = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: {METADATA} is unreadable: {e}", dir.display()))?;
    let mut states = HashMap::new();
    for b in &meta.blobs {
        let bytes = std::fs::read(dir.join(&b.file))
            .map_err(|e| format!("{}: cannot read {}: {e}", dir.display(), b.file))?;
        Checksum {
            len: b.len,
            crc32: b.crc32,
        }
        .check(&bytes)
        .map_err(|e| {
            format!(
                "{}: {} {e}: the savepoint is corrupt",
                dir.display(),
                b.file
            )
        })?;
        states.insert((b.node.clone(), b.subtask), bytes);
    }
    for (node, m) in &meta.keyed {
        for (g, p) in m.pieces() {
            let file = piece_file(node, g, p);
            let bytes = std::fs::read(dir.join(&file))
                .map_err(|e| format!("{}: cannot read {file}: {e}", dir.display()))?;
            p.sum()
                .check(&bytes)
                .map_err(|e| format!("{}: {file} {e}: the savepoint is corrupt", dir.display()))?;
        }
    }
    Ok(Savepoint {
        meta,
        states,
        dir: dir.to_owned(),
    })
}

impl Savepoint {
    /// Copy the savepoint's pieces of keyed state into `pieces` (the store a job resumed from
    /// it keeps its checkpoints in), checked again on the way.
    pub fn import_pieces(&self, pieces: &Pieces) -> Result<(), String> {
        for (node, m) in &self.meta.keyed {
            for (g, p) in m.pieces() {
                let file = piece_file(node, g, p);
                let bytes = std::fs::read(self.dir.join(&file))
                    .map_err(|e| format!("{}: cannot read {file}: {e}", self.dir.display()))?;
                p.sum().check(&bytes).map_err(|e| {
                    format!(
                        "{}: {file} {e}: the savepoint is corrupt",
                        self.dir.display()
                    )
                })?;
                pieces
                    .put_at(node, g, p, &bytes)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_savepoint_round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let states = vec![("count".to_string(), 0, b"state bytes".to_vec())];
        let sp = write(dir.path(), "wc", "j", 7, &states, &BTreeMap::new(), None).unwrap();
        let back = read(&sp).unwrap();
        assert_eq!(back.meta.checkpoint, 7);
        assert_eq!(back.states[&("count".to_string(), 0)], b"state bytes");
        std::fs::write(sp.join("count.0.state"), b"tampered!!!").unwrap();
        assert!(read(&sp).unwrap_err().contains("checksum"));
        assert!(read(dir.path()).unwrap_err().contains("not a savepoint"));
        // The same id again keeps the first savepoint and writes beside it.
        let again = write(dir.path(), "wc", "j", 7, &states, &BTreeMap::new(), None).unwrap();
        assert_ne!(again, sp);
        assert_eq!(
            std::fs::read(sp.join("count.0.state")).unwrap(),
            b"tampered!!!"
        );
    }

    #[cfg(unix)]
    #[test]
    fn planted_links_are_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("savepoints");
        let victim = root.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        // A directory planted where the savepoint will go, with links named like its files.
        let planted = parent.join("savepoint-3");
        std::fs::create_dir_all(&planted).unwrap();
        std::os::unix::fs::symlink(&victim, planted.join("count.0.state")).unwrap();
        std::os::unix::fs::symlink(root.path().join("new.txt"), planted.join("_metadata.json"))
            .unwrap();
        let states = vec![("count".to_string(), 0, b"plugin bytes".to_vec())];
        let sp = write(&parent, "wc", "j", 3, &states, &BTreeMap::new(), None).unwrap();
        assert_ne!(sp, std::path::absolute(&planted).unwrap());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!root.path().join("new.txt").exists());
        assert_eq!(
            read(&sp).unwrap().states[&("count".to_string(), 0)],
            b"plugin bytes"
        );
        // A link in place of the savepoints directory itself is refused.
        let linked = root.path().join("linked");
        std::os::unix::fs::symlink(root.path(), &linked).unwrap();
        assert!(write(&linked, "wc", "j", 4, &states, &BTreeMap::new(), None).is_err());
    }
}
