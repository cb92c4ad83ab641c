//! The on-disk cache of compiled components, so a second start does not recompile.
//!
//! Key: SHA-256 of the component bytes + a hash of everything in the engine that makes compiled
//! code incompatible (wasmtime version, target, settings). Invariant: an entry is only ever
//! written whole (temp file + rename), and one that fails to load is recompiled and replaced,
//! never trusted.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    /// `None` when no cache directory could be found or made: compile every time.
    dir: Option<PathBuf>,
    engine_key: String,
}

impl ComponentCache {
    /// The cache lives in `$WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`.
    pub fn new(engine: &Engine) -> Self {
        let dir = std::env::var_os("WEIR_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("weir")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/weir")))
            .map(|d| d.join("components"))
            .filter(|d| std::fs::create_dir_all(d).is_ok());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        ComponentCache {
            dir,
            engine_key: format!("{:016x}", h.finish()),
        }
    }

    /// The cache directory, if there is one.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// The compiled form of `bytes` (the component `what`): from the cache when present and
    /// loadable, else compiled (and stored). Errors are compile errors, as text.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        what: &dyn std::fmt::Display,
    ) -> Result<Component, String> {
        let Some(dir) = &self.dir else {
            return compile(
                engine,
                bytes,
                what,
                "no cache directory: every run compiles it",
            );
        };
        let digest = Sha256::digest(bytes);
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{name}-{}.cwasm", self.engine_key));
        if is_plain_file(&path) {
            match deserialize(engine, &path) {
                Ok(c) => {
                    tracing::debug!("compiled component from cache {}", path.display());
                    return Ok(c);
                }
                Err(e) => tracing::warn!("ignoring unusable cache entry {}: {e}", path.display()),
            }
        }
        let later = format!("later runs load it from {}", dir.display());
        let component = compile(engine, bytes, what, &later)?;
        if let Ok(serialized) = component.serialize() {
            let tmp = dir.join(format!(
                ".{name}-{}.{}.tmp",
                self.engine_key,
                std::process::id()
            ));
            if crate::protected::write_new(&tmp, &serialized).is_ok()
                && std::fs::rename(&tmp, &path).is_err()
            {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok(component)
    }
}

/// Components this large (a Python or JavaScript runtime inside) take seconds to compile: the
/// user is told, not left looking at a silent terminal.
const SAY_ABOVE: usize = 2 << 20;

/// Compile `bytes` to native code, saying so for a large component (`later`: what happens on the
/// next run).
fn compile(
    engine: &Engine,
    bytes: &[u8],
    what: &dyn std::fmt::Display,
    later: &str,
) -> Result<Component, String> {
    let large = bytes.len() > SAY_ABOVE;
    if large {
        tracing::info!(
            "compiling {what} ({} MB) to native code, once: this takes a while ({later})",
            bytes.len() >> 20
        );
    }
    let started = std::time::Instant::now();
    let ticker = large.then(|| Ticker::start(what.to_string()));
    let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"));
    drop(ticker);
    let component = component?;
    if large {
        tracing::info!(
            "compiled {what} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        tracing::debug!("compiled {what} in {:?}", started.elapsed());
    }
    Ok(component)
}

/// On a terminal, the seconds a compile has taken so far, on one line rewritten every second
/// and cleared when it is dropped. Elsewhere (logs, tests) nothing.
struct Ticker {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(what: String) -> Self {
        use std::io::{IsTerminal, Write};
        if !std::io::stderr().is_terminal() {
            return Ticker {
                done: None,
                thread: None,
            };
        }
        let (done, stop) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stop.recv_timeout(std::time::Duration::from_secs(1))
            {
                let secs = started.elapsed().as_secs();
                let _ = write!(std::io::stderr(), "\r  compiling {what}: {secs} s ");
            }
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        });
        Ticker {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A regular file, not a link to one: a planted link is never loaded as compiled code.
fn is_plain_file(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &std::path::Path) -> wasmtime::Result<Component> {
    // SAFETY: the file is one this cache wrote with `Component::serialize` (whole, via rename)
    // for an engine with the same compatibility hash; wasmtime checks the header and version.
    unsafe { Component::deserialize_file(engine, path) }
}
