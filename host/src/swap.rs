//! Live plugin swap: a new build of one operator replaces the old in a running job, at a
//! savepoint, its state handed over; and the record of swaps that outlives the process.
//!
//! How: the new component is saved in the state directory (`plugins/<sha256>.wasm`), loaded,
//! checked (an operator, like the node) and opened once on trial with the node's config; then the
//! job stops with a savepoint, and the next attempt restores that savepoint with the new build
//! in the node. The swap succeeds when that attempt completes its first checkpoint (every
//! subtask took the state); if the new build refuses the state, the job resumes from the same
//! savepoint with the old build. `swaps.json` remembers the swapped builds, so a restart after a
//! crash runs them too.
//!
//! Invariant: a swap never loses or duplicates a record: it is a savepoint and a restore, the
//! same path every restart takes; and a swap that fails leaves the job running the old build.

use crate::config::NodeKind;
use crate::plugin::{LoadedPlugin, PluginHost, PluginOrigin};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The record of swaps of one job: node uid → the build it runs now.
const RECORD: &str = "swaps.json";

/// A swapped-in build, as recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Swapped {
    /// The component, in the state directory.
    pub plugin: PathBuf,
    /// The savepoint the new build took over from.
    pub savepoint: u64,
}

/// A new build ready to swap in: loaded, tried, and saved in the state directory.
pub struct Prepared {
    pub plugin: LoadedPlugin,
    /// Where it was saved.
    pub path: PathBuf,
    /// The job's state directory, where the swap is recorded once it holds.
    pub state_dir: PathBuf,
}

/// Save `bytes` as `<dir>/plugins/<sha256>.wasm` (whole or not at all) and return its path.
pub fn save_component(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let name: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = plugins.join(format!("{name}.wasm"));
    if !path.exists() {
        let tmp = plugins.join(format!(".{name}.{}.tmp", std::process::id()));
        crate::protected::write_new(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// The swaps recorded in state directory `dir`.
pub fn recorded(dir: &Path) -> Result<BTreeMap<String, Swapped>, String> {
    match std::fs::read(dir.join(RECORD)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} does not decode: {e}", dir.join(RECORD).display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", dir.join(RECORD).display())),
    }
}

/// Record that node `uid` now runs `swapped` (written to a new file, then renamed over).
pub fn record(dir: &Path, uid: &str, swapped: Swapped) -> Result<(), String> {
    let mut all = recorded(dir)?;
    all.insert(uid.to_owned(), swapped);
    let tmp = dir.join(format!(".{RECORD}.{}.tmp", std::process::id()));
    let bytes = serde_json::to_vec_pretty(&all).expect("swaps serialise");
    crate::protected::write_new(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, dir.join(RECORD)))
        .map_err(|e| format!("cannot record the swap in {}: {e}", dir.display()))
}

/// Forget every recorded swap (`weir run --fresh`).
pub fn forget(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(RECORD)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Load the component at `path` for node `uid` (of `kind`), refusing another kind.
pub fn load(
    host: &PluginHost,
    path: &Path,
    uid: &str,
    kind: NodeKind,
) -> Result<LoadedPlugin, String> {
    let plugin = host
        .load(&PluginOrigin::File(path.to_owned()))
        .map_err(|e| e.to_string())?;
    if plugin.kind != kind {
        return Err(format!(
            "the new build is a {} plugin, but node `{uid}` is a {kind}: a swap keeps the node's kind",
            plugin.kind
        ));
    }
    Ok(plugin)
}
