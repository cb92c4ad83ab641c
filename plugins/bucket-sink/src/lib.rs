//! Built-in `bucketed-file` sink: rolling part files in bucket directories, exactly-once.
//!
//! Layout: `<path>/<bucket>/<prefix>-<subtask>-<n><suffix>`. A part is written as the hidden
//! `.<name>.inprogress`; when it rolls (size `roll_size`, age `roll_interval`, no writes for
//! `inactivity`, or end of input) it becomes `.<name>.pending`; when the checkpoint after the
//! roll completes it is renamed to `<name>`, finished. Readers that skip dot-files never see a
//! half-written or uncommitted part.
//!
//! Invariants: the state holds, per open part, its length at the last checkpoint, and per
//! checkpoint the parts it will publish. Restoring cuts each part open at the checkpoint back to
//! its checkpointed length and rolls it into the restored checkpoint's parts (wherever a later
//! run left it: in progress, pending, or already finished); it deletes every in-progress or
//! pending file of this subtask the state does not know, and every finished part numbered after
//! the checkpoint (all of it is replayed). The host then re-commits the restored checkpoint,
//! which finishes its parts (a part already finished stays finished); a subtask a smaller
//! parallelism retired is restored and committed the same way, so its last parts are finished
//! too. So the concatenation of finished parts in part-number order is exactly the input,
//! through any number of crashes and restores from older checkpoints. The
//! subtasks of a parallel sink share the bucket directories: every listing goes through
//! `weir_sdk::dir::list`, which lists again when another subtask renames or deletes its own
//! files meanwhile (under WASI that fails a listing with "not found").

mod bucket;
mod writer;

use bucket::Assigner;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use weir_sdk::{Config, Context, Record, Result, Sink, anyhow, bail, sink};
use writer::{Format, PartWriter};

/// An open (in-progress) part.
#[derive(Clone, Serialize, Deserialize)]
struct Part {
    name: String,
    /// File length at the last checkpoint: what a restore truncates back to.
    valid_len: u64,
    /// Bytes written before compression (the size the roll policy counts).
    size: u64,
    opened_ms: i64,
    last_write_ms: i64,
}

/// A rolled part waiting for its checkpoint to complete.
#[derive(Clone, Serialize, Deserialize)]
struct Rolled {
    bucket: String,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct BucketSink {
    base: PathBuf,
    bucket_by: String,
    bucket_format: String,
    timezone: String,
    prefix: String,
    suffix: String,
    subtask: u32,
    roll_size: u64,
    roll_interval_ms: i64,
    inactivity_ms: i64,
    check_interval_ms: i64,
    format: Format,
    gzip: bool,
    /// Next part number of this subtask.
    counter: u64,
    /// Open part per bucket.
    open: BTreeMap<String, Part>,
    /// Rolled since the last checkpoint barrier.
    rolled: Vec<Rolled>,
    /// Per checkpoint, the parts its completion finishes.
    pending: Vec<(u64, Vec<Rolled>)>,
    #[serde(skip)]
    writers: HashMap<String, PartWriter>,
    #[serde(skip)]
    assigner: Option<Assigner>,
    #[serde(skip)]
    last_check_ms: i64,
    /// Uncommitted leftovers of an earlier run were dealt with (by `restore`, or on the first
    /// call of a fresh start).
    #[serde(skip)]
    settled: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `500ms`, `60s`, `15m`, `1h`.
fn parse_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: i64 = t[..split].parse().ok()?;
    let mult = match &t[split..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The bucketed sink's `config`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    path: PathBuf,
    /// "time" (the default) or a record header's name.
    bucket: Option<String>,
    bucket_format: Option<String>,
    #[serde(default)]
    format: Format,
    part_prefix: Option<String>,
    part_suffix: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    gzip: bool,
    roll_size: Option<weir_sdk::config::Size>,
    roll_interval: Option<String>,
    inactivity: Option<String>,
    check_interval: Option<String>,
}

/// Duration setting `key` in ms (`default` when not set).
fn setting(key: &str, value: Option<String>, default: &str) -> Result<i64> {
    let raw = value.as_deref().unwrap_or(default);
    parse_ms(raw)
        .ok_or_else(|| anyhow!("config `{key}` = {raw:?} is not a duration such as \"{default}\""))
}

impl BucketSink {
    fn dir(&self, bucket: &str) -> PathBuf {
        self.base.join(bucket)
    }

    fn in_progress(&self, bucket: &str, name: &str) -> PathBuf {
        self.dir(bucket).join(format!(".{name}.inprogress"))
    }

    fn pending_path(&self, bucket: &str, name: &str) -> PathBuf {
        self.dir(bucket).join(format!(".{name}.pending"))
    }

    fn assigner(&mut self) -> Result<&Assigner> {
        if self.assigner.is_none() {
            self.assigner = Some(Assigner::parse(
                &self.bucket_by,
                &self.bucket_format,
                &self.timezone,
            )?);
        }
        Ok(self.assigner.as_ref().expect("set above"))
    }

    /// The writer of `bucket`'s open part, opening a new part if there is none.
    fn writer(&mut self, bucket: &str, now: i64) -> Result<&mut PartWriter> {
        if !self.open.contains_key(bucket) {
            let name = format!(
                "{}-{}-{}{}",
                self.prefix, self.subtask, self.counter, self.suffix
            );
            self.counter += 1;
            fs::create_dir_all(self.dir(bucket)).map_err(|e| {
                anyhow!(
                    "cannot create bucket {}: {e} (is the base directory granted read-write?)",
                    self.dir(bucket).display()
                )
            })?;
            self.open.insert(
                bucket.to_owned(),
                Part {
                    name,
                    valid_len: 0,
                    size: 0,
                    opened_ms: now,
                    last_write_ms: now,
                },
            );
        }
        if !self.writers.contains_key(bucket) {
            let part = &self.open[bucket];
            let w = PartWriter::open(
                &self.in_progress(bucket, &part.name),
                self.format,
                self.gzip,
            )?;
            self.writers.insert(bucket.to_owned(), w);
        }
        Ok(self.writers.get_mut(bucket).expect("opened above"))
    }

    /// Close `bucket`'s open part and queue it for the next checkpoint.
    fn roll(&mut self, bucket: &str, why: &str) -> Result<()> {
        let Some(part) = self.open.remove(bucket) else {
            return Ok(());
        };
        if let Some(w) = self.writers.remove(bucket) {
            w.close()?;
        }
        let from = self.in_progress(bucket, &part.name);
        if from.exists() {
            rename(&from, &self.pending_path(bucket, &part.name))?;
            self.rolled.push(Rolled {
                bucket: bucket.to_owned(),
                name: part.name.clone(),
            });
            // Size rolls come often; the timed ones (at most one per bucket and interval) are
            // worth a line.
            match why {
                "inactive" => {
                    weir_sdk::info!("closed inactive bucket {bucket} (part {})", part.name)
                }
                "rollover interval" => weir_sdk::info!(
                    "rolled bucket {bucket} after roll_interval (part {})",
                    part.name
                ),
                _ => weir_sdk::debug!("rolled {bucket}/{} ({why})", part.name),
            }
        }
        Ok(())
    }

    /// Roll parts that are too old or idle, at most every `check_interval`.
    fn check_timers(&mut self, now: i64) -> Result<()> {
        if now - self.last_check_ms < self.check_interval_ms {
            return Ok(());
        }
        self.last_check_ms = now;
        let due: Vec<(String, &'static str)> = self
            .open
            .iter()
            .filter_map(|(b, p)| {
                if now - p.last_write_ms >= self.inactivity_ms {
                    Some((b.clone(), "inactive"))
                } else if now - p.opened_ms >= self.roll_interval_ms {
                    Some((b.clone(), "rollover interval"))
                } else {
                    None
                }
            })
            .collect();
        for (b, why) in due {
            self.roll(&b, why)?;
        }
        Ok(())
    }

    /// A fresh start (no restore came first): delete this subtask's uncommitted leftovers and
    /// number new parts after its finished ones, so none is overwritten.
    fn settle(&mut self) -> Result<()> {
        if self.settled {
            return Ok(());
        }
        self.settled = true;
        for (_, _, path) in self.own_uncommitted()? {
            remove(&path)?;
        }
        self.number_after_finished()
    }

    /// Number new parts after every finished part of this subtask: a part is never written
    /// over one that is already published.
    fn number_after_finished(&mut self) -> Result<()> {
        for (_, file, _) in self.files()? {
            if let Some(n) = self.number(&file) {
                self.counter = self.counter.max(n + 1);
            }
        }
        Ok(())
    }

    /// Every in-progress or pending file of this subtask under `base`: (bucket, part name,
    /// path).
    fn own_uncommitted(&self) -> Result<Vec<(String, String, PathBuf)>> {
        let stem = format!(".{}-{}-", self.prefix, self.subtask);
        let mut out = Vec::new();
        for (bucket, file, path) in self.files()? {
            if !file.starts_with(&stem) {
                continue;
            }
            for ext in [".inprogress", ".pending"] {
                if let Some(name) = file.strip_suffix(ext) {
                    out.push((bucket.clone(), name[1..].to_owned(), path.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Every file in every bucket: (bucket, file name, path). The subtasks of this sink share
    /// the bucket directories and rename and delete their own files in them while this one
    /// lists: [`weir_sdk::dir::list`] lists again until a listing reads through.
    fn files(&self) -> Result<Vec<(String, String, PathBuf)>> {
        let buckets = match weir_sdk::dir::list(&self.base) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => bail!("cannot list {}: {e}", self.base.display()),
        };
        let mut out = Vec::new();
        for bucket in buckets.into_iter().filter(|b| b.is_dir) {
            let files = weir_sdk::dir::list(&bucket.path)
                .map_err(|e| anyhow!("cannot list bucket {}: {e}", bucket.path.display()))?;
            for f in files.into_iter().filter(|f| f.is_file) {
                out.push((bucket.name.clone(), f.name, f.path));
            }
        }
        Ok(out)
    }
}

/// Delete `path`, naming it if that fails.
fn remove(path: &std::path::Path) -> Result<()> {
    fs::remove_file(path).map_err(|e| anyhow!("cannot delete {}: {e}", path.display()))
}

/// Rename `from` to `to`, naming both if that fails.
fn rename(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    fs::rename(from, to)
        .map_err(|e| anyhow!("cannot rename {} to {}: {e}", from.display(), to.display()))
}

#[sink]
impl Sink for BucketSink {
    fn open(config: &Config, ctx: &Context) -> Result<Self> {
        let c: Settings = config.read()?;
        let mut sink = BucketSink {
            base: c.path,
            bucket_by: c.bucket.unwrap_or_else(|| "time".into()),
            bucket_format: c.bucket_format.unwrap_or_else(|| "%Y-%m-%d--%H".into()),
            timezone: c.timezone.unwrap_or_else(|| "UTC".into()),
            prefix: c.part_prefix.unwrap_or_else(|| "part".into()),
            suffix: c.part_suffix.unwrap_or_default(),
            subtask: ctx.subtask,
            roll_size: c.roll_size.map_or(384_000_000, |s| s.0),
            roll_interval_ms: setting("roll_interval", c.roll_interval, "60s")?,
            inactivity_ms: setting("inactivity", c.inactivity, "60s")?,
            check_interval_ms: setting("check_interval", c.check_interval, "1s")?,
            format: c.format,
            gzip: c.gzip,
            counter: 0,
            open: BTreeMap::new(),
            rolled: Vec::new(),
            pending: Vec::new(),
            writers: HashMap::new(),
            assigner: None,
            last_check_ms: 0,
            settled: false,
        };
        if sink.prefix.contains('/') || sink.suffix.contains('/') {
            bail!("config `part_prefix` and `part_suffix` may not contain `/`");
        }
        sink.assigner()?;
        fs::create_dir_all(&sink.base).map_err(|e| {
            anyhow!(
                "cannot use {}: {e} (grant it read-write with grants.dirs)",
                sink.base.display()
            )
        })?;
        Ok(sink)
    }

    fn write(&mut self, batch: Vec<Record>) -> Result<()> {
        self.settle()?;
        let now = now_ms();
        let shared = self.assigner()?.batch_bucket(now);
        for r in &batch {
            let bucket = match &shared {
                Some(b) => b.clone(),
                None => self.assigner()?.bucket(r, now),
            };
            let n = self.writer(&bucket, now)?.write(&r.value)?;
            let part = self.open.get_mut(&bucket).expect("opened by writer()");
            part.size += n;
            part.last_write_ms = now;
            if part.size >= self.roll_size {
                self.roll(&bucket, "size")?;
            }
        }
        self.check_timers(now)
    }

    fn finish(&mut self) -> Result<()> {
        self.settle()?;
        let buckets: Vec<String> = self.open.keys().cloned().collect();
        for b in buckets {
            self.roll(&b, "end of input")?;
        }
        Ok(())
    }

    fn prepare(&mut self, checkpoint: u64) -> Result<()> {
        self.settle()?;
        self.check_timers(now_ms())?;
        let buckets: Vec<String> = self.open.keys().cloned().collect();
        for b in buckets {
            if let Some(w) = self.writers.get_mut(&b) {
                let len = w.checkpoint()?;
                self.open.get_mut(&b).expect("open").valid_len = len;
            }
        }
        let rolled = std::mem::take(&mut self.rolled);
        self.pending.push((checkpoint, rolled));
        Ok(())
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        while let Some((id, _)) = self.pending.first() {
            if *id > checkpoint {
                break;
            }
            let (_, parts) = self.pending.remove(0);
            for p in parts {
                let from = self.pending_path(&p.bucket, &p.name);
                let to = self.dir(&p.bucket).join(&p.name);
                // Idempotent: a part an earlier commit finished stays finished.
                if from.exists() {
                    rename(&from, &to)?;
                } else if !to.exists() {
                    bail!(
                        "cannot finish part {}/{}: neither {} nor the finished file exists (was it deleted outside weir? its records are lost to this job: restore the file, or start over with --fresh --yes)",
                        p.bucket,
                        p.name,
                        from.display()
                    );
                }
            }
        }
        Ok(())
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let saved: BucketSink = weir_sdk::state::decode(state)?;
        self.counter = saved.counter;
        self.pending = saved.pending;
        self.open = BTreeMap::new();
        self.rolled = Vec::new();
        self.writers.clear();
        self.settled = true;
        // Parts open at the checkpoint, cut back to it, are published with it.
        let mut closed = Vec::new();
        for (bucket, part) in saved.open {
            if self.close_at_checkpoint(&bucket, &part)? {
                closed.push(Rolled {
                    bucket,
                    name: part.name,
                });
            }
        }
        match self.pending.last_mut() {
            Some((_, parts)) => parts.extend(closed),
            // (a state is taken after `prepare`, so the checkpoint's own list is there)
            None => self.pending.push((0, closed)),
        }
        self.discard_after_checkpoint()
    }
}

impl BucketSink {
    /// Cut `bucket`'s `part`, open at the checkpoint, back to its checkpointed length, as a
    /// pending part (or, if a later run finished it already, in place). Returns whether it is
    /// to be published with the checkpoint (an empty part is not: it is deleted).
    fn close_at_checkpoint(&self, bucket: &str, part: &Part) -> Result<bool> {
        let pending = self.pending_path(bucket, &part.name);
        let finished = self.dir(bucket).join(&part.name);
        let found = [
            self.in_progress(bucket, &part.name),
            pending.clone(),
            finished,
        ]
        .into_iter()
        .find(|p| p.exists());
        let Some(path) = found else {
            if part.valid_len == 0 {
                return Ok(false);
            }
            bail!(
                "cannot restore part {bucket}/{}: it held {} bytes at the checkpoint, but no in-progress, pending or finished file of it is left (was it deleted outside weir? its records are lost to this job: restore the file, or start over with --fresh --yes)",
                part.name,
                part.valid_len
            );
        };
        let len = fs::metadata(&path)
            .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?
            .len();
        if len < part.valid_len {
            bail!(
                "cannot restore part {bucket}/{}: {} has {len} bytes, but the checkpoint recorded {} (was it truncated outside weir? its records are lost to this job: restore the file, or start over with --fresh --yes)",
                part.name,
                path.display(),
                part.valid_len
            );
        }
        if len > part.valid_len {
            if !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                weir_sdk::warn!(
                    "part {bucket}/{} was finished after the checkpoint this job resumes from: cut back to the {} bytes the checkpoint covers (the rest is written again from the replayed records)",
                    part.name,
                    part.valid_len
                );
            }
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(part.valid_len).map(|()| f))
                .and_then(|f| f.sync_all())
                .map_err(|e| {
                    anyhow!(
                        "cannot cut {} back to {} bytes: {e}",
                        path.display(),
                        part.valid_len
                    )
                })?;
        }
        if part.valid_len == 0 {
            remove(&path)?;
            return Ok(false);
        }
        if path != pending
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            rename(&path, &pending)?;
        }
        Ok(true)
    }

    /// Delete what this subtask wrote after the checkpoint: in-progress and pending files the
    /// state does not name, and finished parts numbered after it (their records are replayed).
    fn discard_after_checkpoint(&mut self) -> Result<()> {
        let known: Vec<(String, String)> = self
            .pending
            .iter()
            .flat_map(|(_, ps)| ps.iter().map(|p| (p.bucket.clone(), p.name.clone())))
            .collect();
        for (bucket, name, path) in self.own_uncommitted()? {
            let is_pending = path.extension().is_some_and(|e| e == "pending")
                && known.contains(&(bucket.clone(), name.clone()));
            if !is_pending {
                remove(&path)?;
            }
        }
        for (bucket, name, path) in self.own_finished()? {
            if self.number(&name).is_some_and(|n| n >= self.counter)
                && !known.contains(&(bucket.clone(), name.clone()))
            {
                weir_sdk::warn!(
                    "part {bucket}/{name} was finished after the checkpoint this job resumes from: deleted (its records are written again from the replayed input)"
                );
                remove(&path)?;
            }
        }
        self.number_after_finished()
    }

    /// The part number in a finished part's file name of this subtask.
    fn number(&self, file: &str) -> Option<u64> {
        file.strip_prefix(&format!("{}-{}-", self.prefix, self.subtask))
            .and_then(|rest| rest.strip_suffix(self.suffix.as_str()))
            .and_then(|n| n.parse::<u64>().ok())
    }

    /// Every finished part of this subtask: (bucket, file name, path).
    fn own_finished(&self) -> Result<Vec<(String, String, PathBuf)>> {
        Ok(self
            .files()?
            .into_iter()
            .filter(|(_, file, _)| self.number(file).is_some())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(weir_sdk::config::parse_size("384MB"), Some(384_000_000));
        assert_eq!(weir_sdk::config::parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_ms("60s"), Some(60_000));
        assert_eq!(parse_ms("250ms"), Some(250));
        assert_eq!(parse_ms("soon"), None);
    }
}
