//! Built-in `file` sink: appends each record's value as a line to a file in a granted directory.
//!
//! Delivery: exactly-once, by two-phase commit with the host's checkpoints. A fresh start (no
//! restored state) replaces the output file at its first commit: running a job again from the
//! beginning never appends a second copy.
//! - `write` appends to `<path>.inprogress` (never visible as output);
//! - `prepare(n)` flushes it, syncs it and renames it to `<path>.pending.<n>`;
//! - `commit(n)` appends every pending file up to `n`, in order, to `<path>` and deletes it.
//!
//! Invariant: the state records the length of `<path>` before each pending file is appended, so
//! a commit repeated after a crash (the host re-commits the restored checkpoint) first truncates
//! `<path>` to that length and never appends the same data twice; and the first commit after a
//! restore cuts `<path>` back to what the restored checkpoint committed, so output of any later
//! checkpoint (restored from an older one after corruption) is not duplicated by the replay.
//! With parallelism N > 1 each subtask i writes its own file `<path>.<i>`. When a resumed job's
//! parallelism changes, a subtask takes over the state of the old one of its index (the host
//! finishes the transactions of dropped ones); an added subtask keeps what its file holds
//! (committed by the job before) and appends.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use weir_sdk::{Config, Context, Record, Result, Sink, anyhow, bail, sink};

#[derive(Serialize, Deserialize)]
struct FileSink {
    /// The published output file.
    path: PathBuf,
    /// Length of `path` once every committed checkpoint is appended.
    committed_len: u64,
    /// Prepared, not yet committed: (checkpoint id, bytes).
    pending: Vec<(u64, u64)>,
    /// Opened fresh, not restored: the first commit replaces whatever `path` held, so a job
    /// run again from the beginning never appends a second copy of its output. (A restored
    /// sink instead cuts `path` back to its state's `committed_len`.)
    #[serde(skip)]
    replace: bool,
    #[serde(skip)]
    writer: Option<BufWriter<File>>,
    #[serde(skip)]
    written: u64,
    #[serde(skip)]
    settled: bool,
    /// Set by `restore`: the next commit also cuts `path` back to what the restored state
    /// committed, dropping output of checkpoints after it (their records are replayed).
    #[serde(skip)]
    trim_after_commit: bool,
}

impl FileSink {
    fn with_suffix(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }

    fn in_progress(&self) -> PathBuf {
        self.with_suffix(".inprogress")
    }

    fn pending_file(&self, checkpoint: u64) -> PathBuf {
        self.with_suffix(&format!(".pending.{checkpoint}"))
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>> {
        if self.writer.is_none() {
            let path = self.in_progress();
            // No writer means nothing of this run is in the file: what is there is a crashed
            // run's data after its last checkpoint, which the sources replay. It goes.
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| {
                    // The grant hint only where a missing grant is a possible cause.
                    let hint = match e.kind() {
                        io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound => {
                            " (is its directory granted read-write?)"
                        }
                        _ => "",
                    };
                    anyhow!("cannot write {}: {e}{hint}", path.display())
                })?;
            self.written = file.metadata()?.len();
            self.writer = Some(BufWriter::with_capacity(256 * 1024, file));
        }
        Ok(self.writer.as_mut().expect("opened above"))
    }

    /// Delete `<path>.inprogress`: data after the last checkpoint, which the sources replay.
    fn discard_in_progress(&mut self) -> Result<()> {
        self.writer = None;
        self.written = 0;
        remove_if_exists(&self.in_progress())?;
        Ok(())
    }

    /// Delete every pending file the state does not know: prepared for a checkpoint that never
    /// completed. Done once, at restore or at the first prepare of a fresh start.
    fn discard_unknown_pending(&mut self) -> Result<()> {
        self.settled = true;
        if self.writer.is_none() {
            self.discard_in_progress()?;
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = format!(
            "{}.pending.",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        // Other subtasks' files come and go in the same directory while this one looks.
        let entries =
            weir_sdk::dir::list(&dir).map_err(|e| anyhow!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let name = entry.name;
            let Some(id) = name.strip_prefix(&stem).and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            if !self.pending.iter().any(|(p, _)| *p == id) {
                remove_if_exists(&dir.join(&name))?;
            }
        }
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn file_len(path: &Path) -> io::Result<u64> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

#[sink]
impl Sink for FileSink {
    fn open(config: &Config, ctx: &Context) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            path: PathBuf,
        }
        let Settings { mut path } = config.read()?;
        if ctx.parallelism > 1 {
            path = PathBuf::from(format!("{}.{}", path.display(), ctx.subtask));
        }
        let sink = FileSink {
            path,
            committed_len: 0,
            pending: Vec::new(),
            replace: true,
            writer: None,
            written: 0,
            settled: false,
            trim_after_commit: false,
        };
        // Nothing touches the disk at open (weir validate opens every plugin once): leftovers
        // of a crashed run go when this run first writes, prepares or restores.
        Ok(sink)
    }

    fn write(&mut self, batch: Vec<Record>) -> Result<()> {
        let w = self.writer()?;
        let mut n = 0u64;
        for r in &batch {
            w.write_all(&r.value)?;
            w.write_all(b"\n")?;
            n += r.value.len() as u64 + 1;
        }
        self.written += n;
        Ok(())
    }

    fn prepare(&mut self, checkpoint: u64) -> Result<()> {
        if !self.settled {
            self.discard_unknown_pending()?;
        }
        let len = match self.writer.take() {
            Some(w) => {
                let file = w.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                self.written
            }
            None => 0,
        };
        if len > 0 {
            fs::rename(self.in_progress(), self.pending_file(checkpoint))?;
        }
        self.written = 0;
        self.pending.push((checkpoint, len));
        Ok(())
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        if self.replace && !self.settled && self.pending.is_empty() {
            // A commit before any prepare, without restored state: this subtask was added to
            // a resumed job (its parallelism grew). What `path` holds was committed by the job
            // before (an earlier subtask of this index): keep it and append.
            self.committed_len = file_len(&self.path)?;
            self.replace = false;
        }
        if self.replace {
            if file_len(&self.path)? > 0 {
                OpenOptions::new()
                    .write(true)
                    .open(&self.path)?
                    .set_len(0)?;
            }
            self.replace = false;
        }
        while let Some(&(id, len)) = self.pending.first() {
            if id > checkpoint {
                break;
            }
            if len > 0 {
                let pending = self.pending_file(id);
                let target = self.committed_len + len;
                let current = file_len(&self.path)?;
                if pending.exists() {
                    let out = OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(false)
                        .open(&self.path)?;
                    // A repeated commit: drop whatever an interrupted one appended, then append.
                    out.set_len(self.committed_len)?;
                    drop(out);
                    let mut out = OpenOptions::new().append(true).open(&self.path)?;
                    io::copy(&mut File::open(&pending)?, &mut out)?;
                    out.sync_all()?;
                    fs::remove_file(&pending)?;
                } else if current < target {
                    bail!(
                        "cannot commit checkpoint {id}: {} is gone and {} has {current} bytes, expected at least {target}",
                        pending.display(),
                        self.path.display()
                    );
                }
                self.committed_len = target;
            }
            self.pending.remove(0);
        }
        if self.trim_after_commit {
            self.trim_after_commit = false;
            if file_len(&self.path)? > self.committed_len {
                let out = OpenOptions::new().write(true).open(&self.path)?;
                out.set_len(self.committed_len)?;
                out.sync_all()?;
            }
        }
        Ok(())
    }

    fn abort(&mut self, checkpoint: u64) {
        if let Some(i) = self.pending.iter().position(|(id, _)| *id == checkpoint) {
            let _ = remove_if_exists(&self.pending_file(checkpoint));
            self.pending.remove(i);
        }
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let saved: FileSink = weir_sdk::state::decode(state)?;
        // The file the state describes (written at the parallelism the state was taken at).
        self.writer = None;
        self.path = saved.path;
        self.committed_len = saved.committed_len;
        self.pending = saved.pending;
        self.replace = false;
        self.trim_after_commit = true;
        self.discard_in_progress()?;
        self.discard_unknown_pending()
    }
}
