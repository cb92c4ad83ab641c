//! Savepoints: self-contained directories holding one checkpoint's state, to stop a job and
//! resume it later, elsewhere, or with new plugin builds.
//!
//! Layout: `_metadata.json` (pipeline, checkpoint id, nodes, and per blob its file, length and
//! CRC-32) plus one `<node>.<subtask>.state` file per subtask. Invariant: `_metadata.json` is
//! written last (temp file + rename), so a directory with it is whole; every blob is verified
//! against it when read.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const METADATA: &str = "_metadata.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct SavepointMeta {
    pub format: u32,
    pub pipeline: String,
    pub checkpoint: u64,
    pub created_ms: u64,
    pub blobs: Vec<BlobFile>,
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
}

/// Write the states of checkpoint `id` as a savepoint directory under `parent`.
pub fn write(
    parent: &Path,
    pipeline: &str,
    id: u64,
    states: &[(String, u32, Vec<u8>)],
) -> std::io::Result<PathBuf> {
    let dir = parent.join(format!("savepoint-{id}"));
    std::fs::create_dir_all(&dir)?;
    let mut blobs = Vec::new();
    for (node, subtask, bytes) in states {
        let file = format!("{node}.{subtask}.state");
        let mut f = std::fs::File::create(dir.join(&file))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        blobs.push(BlobFile {
            node: node.clone(),
            subtask: *subtask,
            file,
            len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        });
    }
    let meta = SavepointMeta {
        format: 1,
        pipeline: pipeline.to_owned(),
        checkpoint: id,
        created_ms: crate::state::unix_ms(std::time::SystemTime::now()),
        blobs,
    };
    let tmp = dir.join(format!("{METADATA}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(&meta).expect("metadata serialises"))?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(METADATA))?;
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
        if bytes.len() as u64 != b.len || crc32fast::hash(&bytes) != b.crc32 {
            return Err(format!(
                "{}: {} fails its checksum: the savepoint is corrupt",
                dir.display(),
                b.file
            ));
        }
        states.insert((b.node.clone(), b.subtask), bytes);
    }
    Ok(Savepoint { meta, states })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_savepoint_round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let states = vec![("count".to_string(), 0, b"state bytes".to_vec())];
        let sp = write(dir.path(), "wc", 7, &states).unwrap();
        let back = read(&sp).unwrap();
        assert_eq!(back.meta.checkpoint, 7);
        assert_eq!(back.states[&("count".to_string(), 0)], b"state bytes");
        std::fs::write(sp.join("count.0.state"), b"tampered!!!").unwrap();
        assert!(read(&sp).unwrap_err().contains("checksum"));
        assert!(read(dir.path()).unwrap_err().contains("not a savepoint"));
    }
}
