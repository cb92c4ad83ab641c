//! Locks on a job's outputs: while a run writes a file (the built-in `file` sink) or a bucket
//! directory (`bucketed-file`), no other weir run may write the same one, whatever its pipeline
//! name or state directory. Two runs on one output would interleave lines, and each exactly-once
//! sink would cut back or delete what the other committed.
//!
//! Invariant: every output a built-in file sink writes is locked before the job starts and
//! stays locked until the run ends (the lock is an `flock` on a hidden `.<name>.weir-lock` beside
//! the output, released by the OS however the process ends). A run that ends removes its lock
//! file while still holding it; a locker checks after locking that the file it holds is still
//! the one at the path, so a removed lock file is never mistaken for a held one. Outputs of user
//! plugins are unknown to the host; their grants are theirs to share.

use crate::config::NodeKind;
use crate::graph::{JobGraph, Node, Plugin};
use crate::plugin::PluginOrigin;
use std::path::{Path, PathBuf};

/// Built-in sinks whose config `path` is the output they own.
const FILE_SINKS: &[&str] = &["file", "bucketed-file"];

/// A held output lock.
#[derive(Debug)]
pub struct OutputLock {
    /// The held lock file and its path; `None` when the output's directory does not exist.
    held: Option<(std::fs::File, PathBuf)>,
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        if let Some((_file, path)) = &self.held {
            // Still locked here: whoever opens the path next makes a new file and checks it.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Why an output could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "node `{node}` writes {output}, which another weir run is writing now (it holds {lock}): stop that run first, or give this one another output"
    )]
    Busy {
        node: String,
        output: PathBuf,
        lock: PathBuf,
    },
    #[error("node `{node}`: two sinks of this pipeline write {output}; give each its own `path`")]
    Twice { node: String, output: PathBuf },
    #[error("node `{node}`: cannot lock its output {output} ({lock}): {error}")]
    Io {
        node: String,
        output: PathBuf,
        lock: PathBuf,
        error: std::io::Error,
    },
}

/// Lock every output the built-in file sinks of `graph` write; the locks hold while returned.
pub fn lock(graph: &JobGraph) -> Result<Vec<OutputLock>, OutputError> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut locks = Vec::new();
    for node in &graph.nodes {
        let Some(output) = file_output(node) else {
            continue;
        };
        if seen.contains(&output) {
            return Err(OutputError::Twice {
                node: node.uid.clone(),
                output,
            });
        }
        locks.push(lock_one(&node.uid, &output)?);
        seen.push(output);
    }
    Ok(locks)
}

/// The host path a built-in file sink node writes: its config `path` through its grants.
fn file_output(node: &Node) -> Option<PathBuf> {
    let Plugin::Wasm(plugin) = &node.plugin else {
        return None;
    };
    let PluginOrigin::Builtin {
        kind: NodeKind::Sink,
        name,
    } = &plugin.origin
    else {
        return None;
    };
    if !FILE_SINKS.contains(name) {
        return None;
    }
    let guest = node
        .config
        .pairs
        .iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.as_str())?;
    host_path(node, guest)
}

/// `guest` as a host path, through the node's most specific writable grant holding it.
fn host_path(node: &Node, guest: &str) -> Option<PathBuf> {
    let guest = Path::new(guest);
    let (host, prefix) = node
        .sandbox
        .dirs
        .iter()
        .filter(|(_, _, writable)| *writable)
        .filter_map(|(host, g, _)| {
            guest
                .strip_prefix(g)
                .ok()
                .map(|rest| (host, Path::new(g).components().count(), rest))
        })
        .max_by_key(|(_, depth, _)| *depth)
        .map(|(host, _, rest)| (host.clone(), rest.to_owned()))?;
    let path = host.join(prefix);
    Some(std::path::absolute(&path).unwrap_or(path))
}

fn lock_one(node: &str, output: &Path) -> Result<OutputLock, OutputError> {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = output.parent().unwrap_or(Path::new("/"));
    let lock = dir.join(format!(".{name}.weir-lock"));
    let io = |error| OutputError::Io {
        node: node.to_owned(),
        output: output.to_owned(),
        lock: lock.clone(),
        error,
    };
    // A missing output directory is the sink's to report (with its grant hint) when it opens.
    if !dir.is_dir() {
        return Ok(OutputLock { held: None });
    }
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OutputError::Busy {
                    node: node.to_owned(),
                    output: output.to_owned(),
                    lock,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // The previous holder may have removed the file between our open and our lock.
        use std::os::unix::fs::MetadataExt;
        let ours = file.metadata().map_err(io)?;
        match std::fs::metadata(&lock) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {
                return Ok(OutputLock {
                    held: Some((file, lock)),
                });
            }
            _ => continue,
        }
    }
}
