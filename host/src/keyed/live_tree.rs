//! One subtask's live keyed state on disk: a redb B-tree file (scratch: created empty for every
//! run and attempt, rebuilt from the checkpoint's pieces), with a second table of keys changed
//! since the last checkpoint that left the cache. Writes are not durable (nothing needs them to
//! be: the checkpoint's pieces are); memory stays within the tree's page cache.
//!
//! The file is made at the first write: a subtask that never keeps keyed state (a stateless
//! operator) costs no file and no start-up work.
//!
//! Invariant: the file belongs to one subtask of one run; nothing else opens it.

use super::KeyedError;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// Key → its value when it left the cache: `0` removed, `1` followed by the value.
const CHANGED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("changed");

fn storage(e: impl std::fmt::Display) -> KeyedError {
    KeyedError::Storage(e.to_string())
}

/// A subtask's live tree; its file goes with it.
pub struct LiveTree {
    /// Made at the first write; until then the tree is empty.
    db: std::cell::OnceCell<Database>,
    path: std::path::PathBuf,
    cache_bytes: usize,
}

impl Drop for LiveTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl LiveTree {
    /// A fresh, empty tree in file `path` (replacing what a previous run left).
    pub fn create(path: &Path, cache_bytes: usize) -> Result<Self, KeyedError> {
        if path.exists() {
            std::fs::remove_file(path).map_err(storage)?;
        }
        Ok(LiveTree {
            db: std::cell::OnceCell::new(),
            path: path.to_owned(),
            cache_bytes,
        })
    }

    /// The database, made on first use.
    fn db(&self) -> Result<&Database, KeyedError> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let db = Database::builder()
            .set_cache_size(self.cache_bytes)
            .create(&self.path)
            .map_err(storage)?;
        Ok(self.db.get_or_init(|| db))
    }

    /// Run `f` in one write transaction on both tables.
    fn write(
        &self,
        f: impl FnOnce(
            &mut redb::Table<&[u8], &[u8]>,
            &mut redb::Table<&[u8], &[u8]>,
        ) -> Result<(), KeyedError>,
    ) -> Result<(), KeyedError> {
        let mut tx = self.db()?.begin_write().map_err(storage)?;
        tx.set_durability(Durability::None).map_err(storage)?;
        {
            let mut values = tx.open_table(VALUES).map_err(storage)?;
            let mut changed = tx.open_table(CHANGED).map_err(storage)?;
            f(&mut values, &mut changed)?;
        }
        tx.commit().map_err(storage)
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KeyedError> {
        let Some(db) = self.db.get() else {
            return Ok(Default::default());
        };
        let tx = db.begin_read().map_err(storage)?;
        let t = tx.open_table(VALUES).map_err(storage)?;
        Ok(t.get(key).map_err(storage)?.map(|v| v.value().to_vec()))
    }

    /// Set (`Some`) or remove (`None`) each key, in the order given (sorted is fastest).
    pub fn apply<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), KeyedError> {
        self.write(|values, _| {
            for (k, v) in writes {
                match v {
                    Some(v) => values.insert(k, v).map_err(storage)?,
                    None => values.remove(k).map_err(storage)?,
                };
            }
            Ok(())
        })
    }

    /// Visit entries from `start` on while they begin with `prefix` and `f` says go on.
    pub fn scan(
        &self,
        start: &[u8],
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KeyedError> {
        let Some(db) = self.db.get() else {
            return Ok(());
        };
        let tx = db.begin_read().map_err(storage)?;
        let t = tx.open_table(VALUES).map_err(storage)?;
        for item in t.range(start..).map_err(storage)? {
            let (k, v) = item.map_err(storage)?;
            if !k.value().starts_with(prefix) || !f(k.value(), v.value()) {
                break;
            }
        }
        Ok(())
    }

    /// Note keys as changed since the last checkpoint, with their values now (`None`:
    /// removed), so the checkpoint reads them in order instead of looking each one up.
    pub fn note_changed<'a>(
        &self,
        keys: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), KeyedError> {
        self.write(|_, changed| {
            let mut buf = Vec::new();
            for (k, v) in keys {
                buf.clear();
                match v {
                    None => buf.push(0),
                    Some(v) => {
                        buf.push(1);
                        buf.extend_from_slice(v);
                    }
                }
                changed.insert(k, buf.as_slice()).map_err(storage)?;
            }
            Ok(())
        })
    }

    /// The keys noted as changed with their noted values, forgotten.
    pub fn take_changed(&self) -> Result<Vec<super::piece::Entry>, KeyedError> {
        let mut keys = Vec::new();
        {
            let Some(db) = self.db.get() else {
                return Ok(Default::default());
            };
            let tx = db.begin_read().map_err(storage)?;
            let t = tx.open_table(CHANGED).map_err(storage)?;
            for item in t.iter().map_err(storage)? {
                let (k, v) = item.map_err(storage)?;
                let value = match v.value().split_first() {
                    Some((1, rest)) => Some(rest.to_vec()),
                    _ => None,
                };
                keys.push((k.value().to_vec(), value));
            }
        }
        if !keys.is_empty() {
            self.write(|_, changed| {
                changed.retain(|_, _| false).map_err(storage)?;
                Ok(())
            })?;
        }
        Ok(keys)
    }
}
