//! The sandbox of one plugin instance: its WASI context (only what the pipeline grants), its
//! memory ceiling, its handle limit and what it says.
//!
//! Invariants: a plugin gets no directory, environment variable, stdout, stderr or TCP address
//! unless its node's `grants` name it (`connect` allows exactly the listed IP:port pairs, nothing
//! else; no UDP, no name lookup); all its memories and tables together stay under one ceiling,
//! and a refused growth is remembered so the trap that follows is reported as out-of-memory;
//! everything it logs or writes to stderr reaches the host log escaped, attributed and rate
//! limited ([`super::text`]).

use super::bindings::{Record, host_log, v2, v3};
use super::text::{self, LogBudget, StderrLines};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use weir_core::time::timers::{Domain, Timer, TimerQueue};

/// Most bytes of randomness one `get-random-bytes` call may ask for (wasmtime's default is
/// 64 MiB of host memory per call).
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// What the pipeline grants one node.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    /// (host dir, guest path, writable)
    pub dirs: Vec<(PathBuf, String, bool)>,
    /// Environment variables passed through (name, value).
    pub env: Vec<(String, String)>,
    pub stdout: bool,
    /// Raw standard error; without it stderr becomes warning lines in the host log.
    pub stderr: bool,
    /// TCP addresses the plugin may connect to.
    pub connect: Vec<std::net::SocketAddr>,
    /// Memory ceiling in bytes, per instance, all memories and tables together.
    pub memory: u64,
    /// Most WASI handles (files, directories, sockets, streams, pollables) held at once.
    pub handles: usize,
    /// The node's log line budget, shared by its subtasks.
    pub log: LogBudget,
    /// The job's cancel flag: once set, every call into the plugin stops at its next epoch
    /// tick or, when blocked in the host, at once.
    pub cancel: Arc<AtomicBool>,
}

/// Default WASI handles an instance may hold at once.
pub const DEFAULT_HANDLES: usize = 256;

impl Default for SandboxSpec {
    fn default() -> Self {
        SandboxSpec {
            dirs: Vec::new(),
            env: Vec::new(),
            stdout: false,
            stderr: false,
            connect: Vec::new(),
            memory: super::instance::Limits::default().memory,
            handles: DEFAULT_HANDLES,
            log: LogBudget::default(),
            cancel: Arc::default(),
        }
    }
}

/// The data of one plugin's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryCeiling,
    /// `node[subtask]`, for log lines.
    pub label: String,
    log: LogBudget,
    stderr: Option<StderrLines>,
    /// The panic message the guest logged during the current call, escaped.
    pub panic: Option<String>,
    /// When the current call began (the epoch callback measures the time budget from it).
    pub call_started: Instant,
    /// What the plugin does with event time (0.2.0 worlds): timers, late records, watermarks.
    pub time: GuestTime,
    /// The subtask's keyed state (operators), shared by its instances.
    pub keyed: Option<crate::keyed::SharedKeyed>,
    /// Why the plugin's last use of keyed state failed: the call fails with it.
    pub keyed_error: Option<crate::keyed::KeyedError>,
}

/// Event time as one instance sees and changes it through the 0.2.0 imports.
#[derive(Default)]
pub struct GuestTime {
    pub timers: TimerQueue,
    /// The subtask's watermark, as `current-watermark` reports it.
    pub watermark: i64,
    /// Records sent to `<node>.late` during the current call.
    pub late: Vec<weir_core::Record>,
    /// The newest watermark a source emitted during the current call.
    pub emitted: Option<i64>,
    /// Set when the plugin went past a limit through these imports: the call fails with it.
    pub over: Option<String>,
    /// Most timers an instance may hold, and most late records one call may send.
    pub max_timers: usize,
    pub max_late: usize,
}

/// Most timers one operator subtask may hold at once by default.
pub const DEFAULT_MAX_TIMERS: usize = 10_000_000;

impl HostState {
    pub fn new(spec: &SandboxSpec, label: String) -> anyhow::Result<Self> {
        let mut b = WasiCtxBuilder::new();
        let stderr = if spec.stderr {
            b.inherit_stderr();
            None
        } else {
            let lines = StderrLines::new(&label, spec.log.clone());
            b.stderr(lines.clone());
            Some(lines)
        };
        if spec.stdout {
            b.inherit_stdout();
        }
        for (k, v) in &spec.env {
            b.env(k, v);
        }
        for (host, guest, writable) in &spec.dirs {
            let perms = if *writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            b.preopened_dir(host, guest, perms).map_err(|e| {
                anyhow::anyhow!("cannot grant directory {} as {guest}: {e}", host.display())
            })?;
        }
        b.allow_udp(false).allow_ip_name_lookup(false);
        b.max_random_size(MAX_RANDOM_BYTES);
        if spec.connect.is_empty() {
            b.allow_tcp(false);
        } else {
            let allowed = spec.connect.clone();
            b.allow_tcp(true).socket_addr_check(move |addr, usage| {
                let ok = match usage {
                    SocketAddrUse::TcpConnect => allowed.contains(&addr),
                    // The implicit bind that precedes a connect asks for the wildcard address.
                    SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                    _ => false,
                };
                Box::pin(async move { ok })
            });
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(spec.handles);
        Ok(HostState {
            wasi: b.build(),
            table,
            limiter: MemoryCeiling {
                max: spec.memory,
                in_use: 0,
                refused: None,
                grown_to: 0,
            },
            label,
            log: spec.log.clone(),
            stderr,
            panic: None,
            call_started: Instant::now(),
            time: GuestTime {
                watermark: i64::MIN,
                max_timers: DEFAULT_MAX_TIMERS,
                max_late: super::instance::ReplyLimits::default().records,
                ..GuestTime::default()
            },
            keyed: None,
            keyed_error: None,
        })
    }

    /// A call into the plugin begins: forget what the previous one left.
    pub fn begin_call(&mut self) {
        self.panic = None;
        self.keyed_error = None;
        self.limiter.refused = None;
        self.call_started = Instant::now();
    }

    /// A call ended other than by the trap a panic causes: a "panic" it logged was only words,
    /// and is shown as the plugin's own error line; a partial stderr line is shown too.
    pub fn end_call(&mut self) {
        if let Some(p) = self.panic.take() {
            text::log_line(
                &self.label,
                &self.log,
                host_log::Level::Error,
                &format!("panic: {p}"),
            );
        }
        if let Some(s) = &self.stderr {
            s.flush();
        }
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        if let Some(s) = &self.stderr {
            s.flush();
        }
        let dropped = self.log.take_dropped();
        if dropped > 0 {
            text::report_dropped(&self.label, &self.log, dropped);
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Most keys or map entries one `keys` or `map-entries` call returns.
const MAX_KEYED_PAGE: u32 = 65_536;

impl HostState {
    /// Run `f` on the subtask's keyed state; a failure is kept for the call to fail with.
    fn keyed<R>(
        &mut self,
        f: impl FnOnce(&mut crate::keyed::KeyedBackend) -> Result<R, crate::keyed::KeyedError>,
    ) -> Option<R> {
        if self.keyed_error.is_some() {
            return None;
        }
        let Some(shared) = &self.keyed else {
            self.keyed_error = Some(crate::keyed::KeyedError::NotAnOperator);
            return None;
        };
        let mut backend = shared.lock().unwrap_or_else(|p| p.into_inner());
        match f(&mut backend) {
            Ok(r) => Some(r),
            Err(e) => {
                drop(backend);
                self.keyed_error = Some(e);
                None
            }
        }
    }
}

/// A timer of version `$v`'s bindings as the host keeps it.
macro_rules! timer_of {
    ($v:ident, $t:expr) => {{
        let t = $t;
        Timer {
            domain: match t.domain {
                $v::timers::TimeDomain::EventTime => Domain::EventTime,
                $v::timers::TimeDomain::ProcessingTime => Domain::ProcessingTime,
            },
            key: t.key,
            timestamp: t.timestamp,
        }
    }};
}

/// The event-time imports of contract version `$v` (0.2.0, and 0.3.0 which has the same
/// calls): written once, so the two versions cannot drift apart.
macro_rules! event_time_imports {
    ($v:ident) => {
        impl $v::host_log::Host for HostState {
            fn log(&mut self, level: $v::host_log::Level, msg: String) {
                use host_log::Level as L;
                use $v::host_log::Level as V;
                let level = match level {
                    V::Trace => L::Trace,
                    V::Debug => L::Debug,
                    V::Info => L::Info,
                    V::Warn => L::Warn,
                    V::Error => L::Error,
                };
                host_log::Host::log(self, level, msg)
            }
        }

        impl $v::timers::Host for HostState {
            fn register(&mut self, t: $v::timers::Timer) {
                if self.time.timers.len() >= self.time.max_timers {
                    self.time.over.get_or_insert_with(|| {
                        format!(
                            "held more than {} timers at once (delete the timers of closed windows)",
                            self.time.max_timers
                        )
                    });
                    return;
                }
                self.time.timers.register(timer_of!($v, t));
            }

            fn delete(&mut self, t: $v::timers::Timer) {
                self.time.timers.delete(&timer_of!($v, t));
            }

            fn current_watermark(&mut self) -> i64 {
                self.time.watermark
            }

            fn current_processing_time(&mut self) -> i64 {
                weir_core::time::timers::wall_clock_ms()
            }
        }

        impl $v::keyed_state::Host for HostState {
            fn get(&mut self, scope: $v::keyed_state::Scope) -> Option<Vec<u8>> {
                self.keyed(|b| b.get(&scope.state, &scope.key)).flatten()
            }

            fn map_get(&mut self, scope: $v::keyed_state::Scope, map_key: Vec<u8>) -> Option<Vec<u8>> {
                self.keyed(|b| b.map_get(&scope.state, &scope.key, &map_key))
                    .flatten()
            }

            fn map_entries(
                &mut self,
                scope: $v::keyed_state::Scope,
                after: Option<Vec<u8>>,
                limit: u32,
            ) -> Vec<(Vec<u8>, Vec<u8>)> {
                let limit = limit.min(MAX_KEYED_PAGE) as usize;
                self.keyed(|b| b.map_entries(&scope.state, &scope.key, after.as_deref(), limit))
                    .unwrap_or_default()
            }

            fn keys(&mut self, state: String, after: Option<Vec<u8>>, limit: u32) -> Vec<Vec<u8>> {
                let limit = limit.min(MAX_KEYED_PAGE) as usize;
                self.keyed(|b| b.keys(&state, after.as_deref(), limit))
                    .unwrap_or_default()
            }

            fn apply(&mut self, changes: Vec<$v::keyed_state::Change>) {
                use $v::keyed_state::Change;
                self.keyed(|b| {
                    for c in changes {
                        match c {
                            Change::Set((s, v)) => b.set(&s.state, &s.key, Some(v))?,
                            Change::Clear(s) => b.clear(&s.state, &s.key)?,
                            Change::Put((s, k, v)) => b.map_set(&s.state, &s.key, &k, Some(v))?,
                            Change::Remove((s, k)) => b.map_set(&s.state, &s.key, &k, None)?,
                        }
                    }
                    Ok(())
                });
            }
        }

        impl $v::late::Host for HostState {
            fn emit(&mut self, records: Vec<Record>) {
                if self.time.late.len() + records.len() > self.time.max_late {
                    self.time.over.get_or_insert_with(|| {
                        format!(
                            "sent more than {} late records in one call (raise the node's `max_reply_records` if the output is real)",
                            self.time.max_late
                        )
                    });
                    return;
                }
                self.time
                    .late
                    .extend(records.into_iter().map(super::convert::from_wit));
            }
        }

        impl $v::watermarks::Host for HostState {
            fn emit(&mut self, ts: i64) {
                self.time.emitted = Some(self.time.emitted.map_or(ts, |e| e.max(ts)));
            }
        }
    };
}

event_time_imports!(v2);
event_time_imports!(v3);

/// A timer as the plugin sees it.
pub fn timer_to_guest(t: Timer) -> v2::timers::Timer {
    v2::timers::Timer {
        domain: match t.domain {
            Domain::EventTime => v2::timers::TimeDomain::EventTime,
            Domain::ProcessingTime => v2::timers::TimeDomain::ProcessingTime,
        },
        key: t.key,
        timestamp: t.timestamp,
    }
}

impl host_log::Host for HostState {
    fn log(&mut self, level: host_log::Level, msg: String) {
        // The SDKs' panic hooks log "panic: <message>" just before the instance traps; it is
        // held for the trap (and shown as a plain line if no trap follows).
        if level == host_log::Level::Error
            && let Some(p) = msg.strip_prefix("panic: ")
            && self.panic.is_none()
        {
            self.panic = Some(text::escape(p, text::MAX_TEXT));
            return;
        }
        text::log_line(&self.label, &self.log, level, &msg);
    }
}

impl wasmtime_wasi::cli::IsTerminal for StderrLines {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for StderrLines {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for StderrLines {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.flush();
        std::task::Poll::Ready(Ok(()))
    }
}

/// Bytes one table element is counted as against the memory ceiling (a function reference or
/// a resource handle is a pointer or two on the host).
pub const TABLE_ELEMENT_BYTES: u64 = 16;
/// Most core instances, linear memories and tables one plugin instance may create. A Rust,
/// C, Python or JavaScript component needs a handful of each; the format allows far more.
pub const MAX_CORE_INSTANCES: usize = 200;
pub const MAX_MEMORIES: usize = 32;
pub const MAX_TABLES: usize = 64;

/// One memory ceiling for a whole plugin instance: every linear memory and every table of every
/// core instance inside the component counts against it, and the growth it refused is
/// remembered so the trap that follows is reported as out-of-memory.
pub struct MemoryCeiling {
    pub max: u64,
    /// Bytes of all memories and tables together.
    pub in_use: u64,
    /// (in use, asked for) bytes of the first refused growth since [`MemoryCeiling::clear`].
    pub refused: Option<(u64, u64)>,
    /// The most this instance has held at once, in bytes.
    pub grown_to: u64,
}

impl MemoryCeiling {
    fn grow(&mut self, current: u64, desired: u64) -> bool {
        let after = self.in_use - current.min(self.in_use) + desired;
        if after > self.max {
            self.refused.get_or_insert((self.in_use, after));
            return false;
        }
        self.in_use = after;
        self.grown_to = self.grown_to.max(after);
        true
    }
}

impl ResourceLimiter for MemoryCeiling {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current as u64, desired as u64))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(
            current as u64 * TABLE_ELEMENT_BYTES,
            desired as u64 * TABLE_ELEMENT_BYTES,
        ))
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_counts_every_memory_and_table_together() {
        let mut m = MemoryCeiling {
            max: 64 << 20,
            in_use: 0,
            refused: None,
            grown_to: 0,
        };
        // Twelve memories of 5 MiB fit under 64 MiB; a thirteenth growth past it does not.
        for _ in 0..12 {
            assert!(m.memory_growing(0, 5 << 20, None).unwrap());
        }
        assert!(!m.memory_growing(5 << 20, 10 << 20, None).unwrap());
        assert_eq!(m.refused, Some((60 << 20, 65 << 20)));
        assert!(m.table_growing(0, 1000, None).unwrap());
        assert!(!m.table_growing(1000, 1 << 20, None).unwrap());
        assert_eq!(m.in_use, (60 << 20) + 1000 * TABLE_ELEMENT_BYTES);
    }

    /// In a real engine: a module with 13 memories, each asking for 60 MiB, gets one 60 MiB
    /// memory under a 64 MiB ceiling; the rest are refused (memory.grow returns -1).
    #[test]
    fn many_memories_share_one_ceiling_in_wasmtime() {
        let mut wat = String::from("(module\n");
        for i in 0..13 {
            wat.push_str(&format!("(memory $m{i} 0)\n"));
        }
        wat.push_str("(func (export \"grow\") (result i32) (local $ok i32)\n");
        for i in 0..13 {
            wat.push_str(&format!(
                "(local.set $ok (i32.add (local.get $ok) (i32.ne (memory.grow $m{i} (i32.const 960)) (i32.const -1))))\n"
            ));
        }
        wat.push_str("(local.get $ok)))");
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wat::parse_str(&wat).unwrap()).unwrap();
        let spec = SandboxSpec {
            memory: 64 << 20,
            ..SandboxSpec::default()
        };
        let mut store =
            wasmtime::Store::new(&engine, HostState::new(&spec, "t[0]".into()).unwrap());
        store.limiter(|s| &mut s.limiter);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let grow = instance
            .get_typed_func::<(), i32>(&mut store, "grow")
            .unwrap();
        assert_eq!(
            grow.call(&mut store, ()).unwrap(),
            1,
            "only one 60 MiB memory fits"
        );
        assert!(store.data().limiter.in_use <= 64 << 20);
        assert!(store.data().limiter.refused.is_some());
    }
}
