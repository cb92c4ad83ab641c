//! Listing a directory that others change while it is read.
//!
//! Under WASI (wasmtime's host) every entry is looked up as the directory is listed, so an entry
//! that another writer renames or removes meanwhile fails the listing with "not found", though
//! the directory is fine: a sink whose parallel subtasks share a directory, or a source watching
//! a directory files are renamed into. Invariant: [`list`] returns only a listing that read
//! through without such an error (it lists again), so no entry that stays is ever missed.

use std::io::{ErrorKind, Result};
use std::path::{Path, PathBuf};

/// One entry of a listing.
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
    pub is_file: bool,
}

/// Listings tried before a directory that keeps changing under every one is reported.
const TRIES: usize = 1000;

/// Every entry of `dir`, listed again while entries vanish under the listing.
pub fn list(dir: &Path) -> Result<Vec<Entry>> {
    let mut tries = 1;
    loop {
        match list_once(dir) {
            Err(e) if e.kind() == ErrorKind::NotFound && tries < TRIES && dir.is_dir() => {
                tries += 1;
                // Past the first few, give the writers beside this one a moment.
                if tries > 10 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            other => return other,
        }
    }
}

fn list_once(dir: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        out.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            path: entry.path(),
            is_dir: kind.is_dir(),
            is_file: kind.is_file(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_and_directories_and_refuses_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("weir-sdk-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        let mut names: Vec<(String, bool)> = list(&dir)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_dir))
            .collect();
        names.sort();
        assert_eq!(names, [("a.txt".into(), false), ("sub".into(), true)]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            list(&dir).err().map(|e| e.kind()),
            Some(ErrorKind::NotFound)
        );
    }
}
