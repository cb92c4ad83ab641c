//! The sandbox of one plugin instance: its WASI context (only what the pipeline grants), its
//! memory ceiling and what it logged.
//!
//! Invariant: a plugin gets no directory, environment variable, stdout or TCP address unless its
//! node's `grants` name it (`connect` allows exactly the listed IP:port pairs, nothing else); growing memory past the ceiling is refused and remembered, so the trap that
//! follows is reported as out-of-memory rather than as an anonymous `unreachable`.

use super::bindings::host_log;
use std::path::PathBuf;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What the pipeline grants one node.
#[derive(Clone, Debug, Default)]
pub struct SandboxSpec {
    /// (host dir, guest path, writable)
    pub dirs: Vec<(PathBuf, String, bool)>,
    /// Environment variables passed through (name, value).
    pub env: Vec<(String, String)>,
    pub stdout: bool,
    /// TCP addresses the plugin may connect to.
    pub connect: Vec<std::net::SocketAddr>,
    /// Memory ceiling in bytes, per instance.
    pub memory: u64,
}

/// The data of one plugin's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryCeiling,
    /// `node[subtask]`, for log lines.
    pub label: String,
    /// The last panic message the guest logged, attached to the trap that follows it.
    pub panic: Option<String>,
}

impl HostState {
    pub fn new(spec: &SandboxSpec, label: String) -> anyhow::Result<Self> {
        let mut b = WasiCtxBuilder::new();
        b.inherit_stderr();
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
        Ok(HostState {
            wasi: b.build(),
            table: ResourceTable::new(),
            limiter: MemoryCeiling {
                max: spec.memory,
                refused: None,
                grown_to: 0,
            },
            label,
            panic: None,
        })
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

impl host_log::Host for HostState {
    fn log(&mut self, level: host_log::Level, msg: String) {
        let who = &self.label;
        match level {
            host_log::Level::Trace => tracing::trace!(target: "weir::plugin", "{who}: {msg}"),
            host_log::Level::Debug => tracing::debug!(target: "weir::plugin", "{who}: {msg}"),
            host_log::Level::Info => tracing::info!(target: "weir::plugin", "{who}: {msg}"),
            host_log::Level::Warn => tracing::warn!(target: "weir::plugin", "{who}: {msg}"),
            host_log::Level::Error => {
                if let Some(p) = msg.strip_prefix("panic: ") {
                    self.panic = Some(p.to_owned());
                } else {
                    tracing::error!(target: "weir::plugin", "{who}: {msg}");
                }
            }
        }
    }
}

/// A memory ceiling that remembers the growth it refused.
pub struct MemoryCeiling {
    pub max: u64,
    /// (current, desired) bytes of the first refused growth.
    pub refused: Option<(usize, usize)>,
    /// The largest size a memory of this instance has grown to.
    pub grown_to: u64,
}

impl ResourceLimiter for MemoryCeiling {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max {
            self.refused.get_or_insert((current, desired));
            return Ok(false);
        }
        self.grown_to = self.grown_to.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
