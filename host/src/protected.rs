//! The host's own files, which no directory grant may reach: the job's state directory and the
//! compiled-component cache (nothing under a grant at all), and the pipeline file, the plugin
//! files and the `weir` binary (nothing under a read-write grant).
//!
//! Invariant: nothing a plugin can write steers what the host later writes, reads as trusted,
//! or executes. Paths are compared after resolving symbolic links, so a grant cannot reach a
//! protected path through a link, and a protected path that does not exist yet is compared by
//! its nearest existing ancestor.

use std::path::{Path, PathBuf};

/// Why the host keeps a path to itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Checkpoints, savepoints, locks: a plugin that reads them sees other nodes' state, one
    /// that writes them (or plants links in them) redirects the host's writes.
    StateDir,
    /// Compiled native code the host loads without recompiling.
    ComponentCache,
    /// Trusted input: the pipeline file (its grants), plugin files (other nodes' code), the
    /// `weir` binary. Readable, never writable.
    TrustedFile,
}

impl Why {
    fn describe(self) -> &'static str {
        match self {
            Why::StateDir => {
                "the job's state directory (checkpoints and savepoints): a plugin could read other nodes' state or redirect the host's writes"
            }
            Why::ComponentCache => {
                "weir's compiled-component cache: a plugin could plant native code the host runs"
            }
            Why::TrustedFile => {
                "a file weir trusts (the pipeline file, a plugin or the weir binary): a plugin could grant itself more or change another node's code"
            }
        }
    }

    /// Whether a grant of `writable` mode may not cover a path kept for this reason.
    fn forbids(self, writable: bool) -> bool {
        match self {
            Why::StateDir | Why::ComponentCache => true,
            Why::TrustedFile => writable,
        }
    }
}

/// The paths one pipeline keeps from its plugins.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    paths: Vec<(PathBuf, Why, PathBuf)>,
}

impl Protected {
    /// Keep `path` (shown to the user as given) for `why`.
    pub fn add(&mut self, path: &Path, why: Why) {
        self.paths.push((real_path(path), why, path.to_owned()));
    }

    /// If granting `dir` (in `writable` mode) would reach a protected path, which and why.
    pub fn conflict(&self, dir: &Path, writable: bool) -> Option<String> {
        let grant = real_path(dir);
        self.paths.iter().find_map(|(real, why, shown)| {
            let overlaps = real.starts_with(&grant)
                || (matches!(why, Why::StateDir | Why::ComponentCache) && grant.starts_with(real));
            (overlaps && why.forbids(writable))
                .then(|| format!("it reaches {} — {}", shown.display(), why.describe()))
        })
    }
}

/// `p` made absolute with every symbolic link resolved; for a path that does not exist (yet),
/// its nearest existing ancestor resolved and the rest appended.
pub fn real_path(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let mut rest = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            return rest.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                at = parent;
            }
            _ => return abs,
        }
    }
}

/// Fail unless `dir` is a real directory (not a symbolic link), creating it (and its parents)
/// if missing. For directories the host writes into, so a planted link cannot redirect it.
pub fn ensure_real_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(std::io::Error::other(format!(
            "{} is a symbolic link; weir writes state only into real directories (remove the link)",
            dir.display()
        ))),
        Ok(m) if !m.is_dir() => Err(std::io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir),
        Err(e) => Err(e),
    }
}

/// Create `path` with `bytes`, synced to disk. The file must not exist yet, not even as a
/// link (`O_EXCL`): a name a plugin prepared is never written through.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_above_inside_or_linked_to_the_state_dir_conflict() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        std::fs::create_dir_all(base.join("data")).unwrap();
        std::fs::write(base.join("p.toml"), "").unwrap();
        let mut p = Protected::default();
        // The state directory does not exist yet: compared by its nearest existing ancestor.
        p.add(&base.join(".weir/p"), Why::StateDir);
        p.add(&base.join("p.toml"), Why::TrustedFile);
        assert!(
            p.conflict(base, false).is_some(),
            "the pipeline dir covers .weir"
        );
        assert!(p.conflict(&base.join("data"), true).is_none());
        std::fs::create_dir_all(base.join(".weir/p/savepoints")).unwrap();
        assert!(
            p.conflict(&base.join(".weir/p/savepoints"), false)
                .is_some()
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join(".weir"), base.join("data/link")).unwrap();
            assert!(p.conflict(&base.join("data/link"), false).is_some());
        }
    }

    #[test]
    fn trusted_files_may_be_read_but_not_written() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("job");
        std::fs::create_dir_all(base.join("plugins")).unwrap();
        std::fs::write(base.join("plugins/op.wasm"), "").unwrap();
        let mut p = Protected::default();
        p.add(&base.join("plugins/op.wasm"), Why::TrustedFile);
        assert!(p.conflict(&base, false).is_none());
        let why = p.conflict(&base, true).unwrap();
        assert!(why.contains("op.wasm"), "{why}");
        assert!(p.conflict(&base.join("elsewhere"), true).is_none());
    }

    #[test]
    fn a_linked_state_dir_is_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("real")).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.path().join("real"), root.path().join("link")).unwrap();
            let e = ensure_real_dir(&root.path().join("link")).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        ensure_real_dir(&root.path().join("new/deeper")).unwrap();
        assert!(root.path().join("new/deeper").is_dir());
    }
}
