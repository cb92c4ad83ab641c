//! Live queries: a running job answers `weir state get|scan` from its subtasks' keyed state,
//! over a Unix socket in its state directory (`query.sock`, owner-only, where no plugin grant
//! may reach). One request per connection, one JSON line each way.
//!
//! Invariant: a query holds a subtask's state lock only for one lookup or one scan of its own
//! groups, and only reads; the job computes the same with or without queries.

use super::backend::{KeyedBackend, SharedKeyed};
use super::query::Found;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use weir_core::groups;

/// (node, subtask, parallelism, its backend)
type Entry = (String, u32, u32, Weak<Mutex<KeyedBackend>>);

/// The subtasks' keyed state of the running job: (node, subtask, parallelism) → its backend.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Vec<Entry>>>,
}

impl Registry {
    /// A subtask's keyed state came to life (a restart replaces the earlier one).
    pub fn add(&self, node: &str, subtask: u32, parallelism: u32, backend: &SharedKeyed) {
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|(n, s, _, w)| w.strong_count() > 0 && !(n == node && *s == subtask));
        all.push((
            node.to_owned(),
            subtask,
            parallelism,
            Arc::downgrade(backend),
        ));
    }

    fn of(&self, node: &str) -> Vec<(u32, u32, SharedKeyed)> {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter(|(n, ..)| n == node)
            .filter_map(|(_, s, p, w)| w.upgrade().map(|b| (*s, *p, b)))
            .collect()
    }

    /// Answer one query from the running subtasks' keyed state.
    pub fn answer(&self, q: &Request) -> Result<Found, String> {
        let subtasks = self.of(&q.node);
        if subtasks.is_empty() {
            return Err(format!(
                "the running job has no operator `{}` (or it has not started yet)",
                q.node
            ));
        }
        let mut found = Found::new();
        match &q.key {
            Some(key) => {
                let (_, parallelism, first) = &subtasks[0];
                let max = first.lock().map_err(|_| "poisoned")?.max_parallelism();
                let owner = groups::subtask_of(groups::group_of(key, max), max, *parallelism);
                let (_, _, b) = subtasks
                    .iter()
                    .find(|(s, ..)| *s == owner)
                    .ok_or("the subtask holding that key is not running")?;
                let held = b
                    .lock()
                    .map_err(|_| "poisoned")?
                    .lookup(key)
                    .map_err(|e| e.to_string())?;
                if !held.is_empty() {
                    found.insert(key.clone(), held);
                }
            }
            None => {
                for (_, _, b) in &subtasks {
                    let part = b
                        .lock()
                        .map_err(|_| "poisoned")?
                        .scan(&q.prefix, q.limit)
                        .map_err(|e| e.to_string())?;
                    found.extend(part);
                }
                while found.len() > q.limit {
                    found.pop_last();
                }
            }
        }
        Ok(found)
    }
}

/// What `weir state` asks: one key, or a scan by prefix.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub node: String,
    pub key: Option<Vec<u8>>,
    #[serde(default)]
    pub prefix: Vec<u8>,
    #[serde(default)]
    pub limit: usize,
}

/// The socket of the job whose state directory is `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("query.sock")
}

/// While alive, queries are served; dropped, the socket file goes (a thread still accepting
/// on it ends with the process).
pub struct Serving {
    path: PathBuf,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serve queries on `dir`'s socket (the caller holds the state directory's lock, so a socket
/// file there is a dead run's).
pub fn serve(dir: &Path, registry: Registry) -> std::io::Result<Serving> {
    let path = socket_path(dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    std::thread::Builder::new()
        .name("state-queries".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = answer(conn, &registry);
            }
        })?;
    Ok(Serving { path })
}

fn answer(conn: UnixStream, registry: &Registry) -> std::io::Result<()> {
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let reply: Result<Found, String> = serde_json::from_str::<Request>(&line)
        .map_err(|e| format!("bad request: {e}"))
        .and_then(|q| registry.answer(&q));
    let mut out = serde_json::to_vec(&reply.map(|f| f.into_iter().collect::<Vec<_>>()))
        .expect("replies serialise");
    out.push(b'\n');
    (&conn).write_all(&out)
}

/// Ask the job running in `dir`; `None` if no job is serving there.
pub fn ask(dir: &Path, q: &Request) -> Option<Result<Found, String>> {
    let conn = UnixStream::connect(socket_path(dir)).ok()?;
    let mut req = serde_json::to_vec(q).expect("requests serialise");
    req.push(b'\n');
    (&conn).write_all(&req).ok()?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).ok()?;
    type Reply = Result<Vec<(Vec<u8>, Vec<super::query::Held>)>, String>;
    let reply: Reply = serde_json::from_str(&line).ok()?;
    Some(reply.map(|v| v.into_iter().collect()))
}
