//! Who a state directory belongs to: the job's identity (created at its first start, kept
//! across restores, renewed by `--fresh`), the pipeline file that owns it, whether the job ever
//! completed a checkpoint, and the lock that keeps two runs of one pipeline apart.
//!
//! Invariants: while a run holds [`StateLock`] no other run of the same state directory starts
//! (checkpoints on or off); two pipeline files never share a state directory by accident; a
//! job that completed a checkpoint is never silently started over because its store is gone
//! (`job.json` lives beside the store, written once per job and on its first checkpoint).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const FILE: &str = "job.json";
const LOCK: &str = "lock";

/// The identity of one job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobIdentity {
    /// 16 hex digits, unique per job (not per run).
    pub id: String,
    /// `[pipeline] name` when the job was created.
    pub pipeline: String,
    /// The file name of the pipeline file that owns the state directory.
    pub file: String,
    pub created_ms: u64,
    /// The job completed at least one checkpoint: its outputs may hold committed data.
    #[serde(default)]
    pub checkpointed: bool,
    /// Key groups of the job's keyed state (`[pipeline] max_parallelism`), fixed for its life.
    #[serde(default)]
    pub max_parallelism: Option<u32>,
}

/// A problem with a state directory's identity or lock.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "another `weir run` of this pipeline holds {dir} (its state directory): wait for it to end or stop it (SIGTERM stops it with a savepoint)"
    )]
    Locked { dir: PathBuf },
    #[error(
        "the state directory {dir} belongs to pipeline file {owner:?} (job {id}), not to {this:?}: two pipeline files with the same [pipeline] name would share checkpoints and outputs. Give this pipeline its own name ([pipeline] name = ...) or its own [checkpoint] dir; if the file was renamed, rename it back or start over with --fresh --yes"
    )]
    OtherFile {
        dir: PathBuf,
        owner: String,
        this: String,
        id: String,
    },
    #[error("{path}: {message} (delete it to start over; checkpoints in the store stay)")]
    Unreadable { path: PathBuf, message: String },
    #[error("state directory {dir}: {error}")]
    Io {
        dir: PathBuf,
        // Not `source`: the message already carries it, and a source would print it twice.
        error: std::io::Error,
    },
}

/// An exclusive lock on a state directory, held until dropped (or the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

/// Lock `dir` (creating it), or say that another run holds it.
pub fn lock(dir: &Path) -> Result<StateLock, IdentityError> {
    let io = |error| IdentityError::Io {
        dir: dir.to_owned(),
        error,
    };
    crate::protected::ensure_real_dir(dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(IdentityError::Locked {
            dir: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// The identity stored in `dir`, if any.
pub fn read(dir: &Path) -> Result<Option<JobIdentity>, IdentityError> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| IdentityError::Unreadable {
                    path,
                    message: format!("not a job identity: {e}"),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(IdentityError::Io {
            dir: dir.to_owned(),
            error,
        }),
    }
}

/// The identity of the job in `dir`, created if it has none; refused if another pipeline file
/// owns it. The flag says whether it was created now.
pub fn load_or_create(
    dir: &Path,
    pipeline: &str,
    pipeline_file: &Path,
) -> Result<(JobIdentity, bool), IdentityError> {
    let file = file_name(pipeline_file);
    if let Some(id) = read(dir)? {
        if id.file != file {
            return Err(IdentityError::OtherFile {
                dir: dir.to_owned(),
                owner: id.file,
                this: file,
                id: id.id,
            });
        }
        return Ok((id, false));
    }
    let id = JobIdentity {
        id: new_id(dir, pipeline),
        pipeline: pipeline.to_owned(),
        file,
        created_ms: crate::state::unix_ms(std::time::SystemTime::now()),
        checkpointed: false,
        max_parallelism: None,
    };
    write(dir, &id)?;
    Ok((id, true))
}

/// Store `id` in `dir` (whole or not at all: temporary file, synced, renamed).
pub fn write(dir: &Path, id: &JobIdentity) -> Result<(), IdentityError> {
    let io = |error| IdentityError::Io {
        dir: dir.to_owned(),
        error,
    };
    let tmp = dir.join(format!("{FILE}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let json = serde_json::to_vec_pretty(id).expect("identity serialises");
    crate::protected::write_new(&tmp, &json).map_err(io)?;
    std::fs::rename(&tmp, dir.join(FILE)).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// Forget the job in `dir` (`--fresh`): the next start creates a new identity.
pub fn forget(dir: &Path) -> Result<(), IdentityError> {
    match std::fs::remove_file(dir.join(FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(IdentityError::Io {
            dir: dir.to_owned(),
            error: e,
        }),
        _ => Ok(()),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// 16 hex digits from the time, the process, the place and the name: unique per job, not secret.
fn new_id(dir: &Path, pipeline: &str) -> String {
    use sha2::{Digest, Sha256};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(dir.as_os_str().as_encoded_bytes());
    h.update(pipeline.as_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_kept_and_another_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_create(dir.path(), "p", Path::new("/x/p.toml")).unwrap();
        assert!(created && a.id.len() == 16);
        let (b, created) = load_or_create(dir.path(), "p", Path::new("/moved/p.toml")).unwrap();
        assert!(!created);
        assert_eq!(a.id, b.id, "the same file, moved, keeps its job");
        let e = load_or_create(dir.path(), "p", Path::new("/x/q.toml")).unwrap_err();
        assert!(
            e.to_string()
                .contains("belongs to pipeline file \"p.toml\""),
            "{e}"
        );
        forget(dir.path()).unwrap();
        let (c, created) = load_or_create(dir.path(), "p", Path::new("/x/q.toml")).unwrap();
        assert!(created && c.id != a.id);
    }

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let e = lock(dir.path()).unwrap_err();
        assert!(matches!(e, IdentityError::Locked { .. }), "{e}");
        drop(held);
        lock(dir.path()).unwrap();
    }
}
