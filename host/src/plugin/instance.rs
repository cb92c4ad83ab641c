//! Running plugin instances: one `Store` each, every call under the node's time budget, every
//! failure turned into a [`PluginError::Call`] that names the node, the plugin and the cause.
//!
//! Invariant: a trap poisons only its own instance; the caller gets an error and drops it.

use super::bindings::{self, Context, Record};
use super::sandbox::{HostState, SandboxSpec};
use super::{EPOCH_TICK, LoadedPlugin, PluginError, PluginHost, PluginOrigin};
use std::time::Duration;
use wasmtime::Store;

/// Resource limits of one node's instances.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Memory ceiling per instance, bytes.
    pub memory: u64,
    /// Longest one call into the plugin may run.
    pub time_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 256 << 20,
            time_budget: Duration::from_secs(10),
        }
    }
}

/// Why a call into a plugin failed.
#[derive(Debug)]
pub enum Cause {
    /// The plugin returned an error.
    Error(String),
    /// The plugin panicked (message from its panic hook).
    Panic(String),
    /// The plugin asked for more memory than its ceiling.
    OutOfMemory { requested: u64, ceiling: u64 },
    /// One call ran longer than the time budget.
    Timeout(Duration),
    /// Any other trap.
    Trap(String),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: u64 = 1 << 20;
        match self {
            Cause::Error(m) => write!(f, "failed: {m}"),
            Cause::Panic(m) => write!(f, "panicked: {m}"),
            Cause::OutOfMemory { requested, ceiling } => write!(
                f,
                "ran out of memory: it asked for {} MiB but its ceiling is {} MiB (raise `memory` on the node if it really needs more)",
                requested.div_ceil(MIB),
                ceiling / MIB
            ),
            Cause::Timeout(budget) => write!(
                f,
                "timed out: one call ran longer than its time budget of {budget:?} (an endless loop? raise `time_budget` on the node if the work is real)"
            ),
            Cause::Trap(m) => write!(f, "trapped: {m}"),
        }
    }
}

/// The sandboxed store plus who it is, shared by the three instance kinds.
struct Sandboxed {
    store: Store<HostState>,
    node: String,
    subtask: u32,
    origin: PluginOrigin,
    budget_ticks: u64,
    budget: Duration,
}

impl Sandboxed {
    fn new(
        host: &PluginHost,
        plugin: &LoadedPlugin,
        node: &str,
        subtask: u32,
        sandbox: &SandboxSpec,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        let state = HostState::new(sandbox, format!("{node}[{subtask}]")).map_err(|e| {
            PluginError::Instantiate {
                node: node.to_owned(),
                origin: plugin.origin.clone(),
                message: format!("{e:#}"),
            }
        })?;
        let mut store = Store::new(host.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        let ticks = limits
            .time_budget
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1) as u64;
        store.set_epoch_deadline(ticks);
        Ok(Sandboxed {
            store,
            node: node.to_owned(),
            subtask,
            origin: plugin.origin.clone(),
            budget_ticks: ticks,
            budget: limits.time_budget,
        })
    }

    fn instantiate_error(&self, e: wasmtime::Error) -> PluginError {
        PluginError::Instantiate {
            node: self.node.clone(),
            origin: self.origin.clone(),
            message: format!("{e:#}"),
        }
    }

    /// Run one export call under the time budget and classify its failure.
    fn call<T, B>(
        &mut self,
        bindings: &B,
        call: &'static str,
        f: impl FnOnce(&B, &mut Store<HostState>) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<T, PluginError> {
        self.store.set_epoch_deadline(self.budget_ticks);
        let outcome = f(bindings, &mut self.store);
        let cause = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(msg)) => match self.store.data_mut().limiter.refused.take() {
                // A runtime that survives a refused allocation (CPython's MemoryError, say)
                // reports it as an error: it is still the ceiling that stopped it.
                Some((_, desired)) => Cause::OutOfMemory {
                    requested: desired as u64,
                    ceiling: self.store.data().limiter.max,
                },
                None => Cause::Error(msg),
            },
            Err(trap) => self.classify(trap),
        };
        Err(PluginError::Call {
            node: self.node.clone(),
            subtask: self.subtask,
            origin: self.origin.clone(),
            call,
            cause,
        })
    }

    /// The largest linear memory of this instance, in bytes.
    fn memory_bytes(&self) -> u64 {
        self.store.data().limiter.grown_to
    }

    fn classify(&mut self, trap: wasmtime::Error) -> Cause {
        let data = self.store.data_mut();
        if let Some((_, desired)) = data.limiter.refused.take() {
            return Cause::OutOfMemory {
                requested: desired as u64,
                ceiling: data.limiter.max,
            };
        }
        if let Some(msg) = data.panic.take() {
            return Cause::Panic(msg);
        }
        if matches!(
            trap.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        ) {
            return Cause::Timeout(self.budget);
        }
        Cause::Trap(format!("{trap:#}"))
    }

    fn context(&self, parallelism: u32) -> Context {
        Context {
            node: self.node.clone(),
            subtask: self.subtask,
            parallelism,
        }
    }
}

/// What one source poll produced.
pub enum Polled {
    Batch(Vec<Record>),
    Idle,
    End,
}

macro_rules! state_calls {
    () => {
        /// The plugin's state bytes.
        pub fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
            self.sandbox.call(&self.bindings, "snapshot", |b, s| {
                b.weir_plugin_state().call_snapshot(s)
            })
        }

        /// Give the plugin back state bytes a `snapshot` returned.
        pub fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
            self.sandbox.call(&self.bindings, "restore", |b, s| {
                b.weir_plugin_state().call_restore(s, state)
            })
        }
    };
}

/// A running source plugin.
pub struct SourceInstance {
    sandbox: Sandboxed,
    bindings: bindings::source::SourcePlugin,
}

impl SourceInstance {
    /// Instantiate and `open` a source subtask.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        host: &PluginHost,
        plugin: &LoadedPlugin,
        node: &str,
        subtask: u32,
        parallelism: u32,
        sandbox: &SandboxSpec,
        limits: Limits,
        config: &[(String, String)],
    ) -> Result<Self, PluginError> {
        let mut sb = Sandboxed::new(host, plugin, node, subtask, sandbox, limits)?;
        let bindings = bindings::source::SourcePlugin::instantiate(
            &mut sb.store,
            &plugin.component,
            host.linker(),
        )
        .map_err(|e| sb.instantiate_error(e))?;
        let ctx = sb.context(parallelism);
        sb.call(&bindings, "open", |b, s| {
            b.weir_plugin_source().call_open(s, &config.to_vec(), &ctx)
        })?;
        Ok(SourceInstance {
            sandbox: sb,
            bindings,
        })
    }

    /// Ask for up to `max` records.
    pub fn poll(&mut self, max: u32) -> Result<Polled, PluginError> {
        use bindings::source::exports::weir::plugin::source::PollResult;
        let r = self.sandbox.call(&self.bindings, "poll", |b, s| {
            b.weir_plugin_source().call_poll(s, max)
        })?;
        Ok(match r {
            PollResult::Batch(batch) => Polled::Batch(batch),
            PollResult::Idle => Polled::Idle,
            PollResult::End => Polled::End,
        })
    }

    state_calls!();
}

/// A running operator plugin.
pub struct OperatorInstance {
    sandbox: Sandboxed,
    bindings: bindings::operator::OperatorPlugin,
}

impl OperatorInstance {
    /// Instantiate and `open` an operator subtask.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        host: &PluginHost,
        plugin: &LoadedPlugin,
        node: &str,
        subtask: u32,
        parallelism: u32,
        sandbox: &SandboxSpec,
        limits: Limits,
        config: &[(String, String)],
    ) -> Result<Self, PluginError> {
        let mut sb = Sandboxed::new(host, plugin, node, subtask, sandbox, limits)?;
        let bindings = bindings::operator::OperatorPlugin::instantiate(
            &mut sb.store,
            &plugin.component,
            host.linker(),
        )
        .map_err(|e| sb.instantiate_error(e))?;
        let ctx = sb.context(parallelism);
        sb.call(&bindings, "open", |b, s| {
            b.weir_plugin_operator()
                .call_open(s, &config.to_vec(), &ctx)
        })?;
        Ok(OperatorInstance {
            sandbox: sb,
            bindings,
        })
    }

    /// Transform one batch.
    pub fn process(&mut self, batch: &[Record]) -> Result<Vec<Record>, PluginError> {
        self.sandbox.call(&self.bindings, "process", |b, s| {
            b.weir_plugin_operator().call_process(s, batch)
        })
    }

    /// The largest linear memory of this instance, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.sandbox.memory_bytes()
    }

    /// Event time advanced to `ts`.
    pub fn on_watermark(&mut self, ts: i64) -> Result<Vec<Record>, PluginError> {
        self.sandbox.call(&self.bindings, "on-watermark", |b, s| {
            b.weir_plugin_operator().call_on_watermark(s, ts)
        })
    }

    state_calls!();
}

/// A running sink plugin.
pub struct SinkInstance {
    sandbox: Sandboxed,
    bindings: bindings::sink::SinkPlugin,
}

impl SinkInstance {
    /// Instantiate and `open` a sink subtask.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        host: &PluginHost,
        plugin: &LoadedPlugin,
        node: &str,
        subtask: u32,
        parallelism: u32,
        sandbox: &SandboxSpec,
        limits: Limits,
        config: &[(String, String)],
    ) -> Result<Self, PluginError> {
        let mut sb = Sandboxed::new(host, plugin, node, subtask, sandbox, limits)?;
        let bindings = bindings::sink::SinkPlugin::instantiate(
            &mut sb.store,
            &plugin.component,
            host.linker(),
        )
        .map_err(|e| sb.instantiate_error(e))?;
        let ctx = sb.context(parallelism);
        sb.call(&bindings, "open", |b, s| {
            b.weir_plugin_sink().call_open(s, &config.to_vec(), &ctx)
        })?;
        Ok(SinkInstance {
            sandbox: sb,
            bindings,
        })
    }

    /// Consume one batch.
    pub fn write(&mut self, batch: &[Record]) -> Result<(), PluginError> {
        self.sandbox.call(&self.bindings, "write", |b, s| {
            b.weir_plugin_sink().call_write(s, batch)
        })
    }

    /// The input ended.
    pub fn finish(&mut self) -> Result<(), PluginError> {
        self.sandbox.call(&self.bindings, "finish", |b, s| {
            b.weir_plugin_sink().call_finish(s)
        })
    }

    /// Phase one of the two-phase commit for `checkpoint`.
    pub fn prepare(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        self.sandbox.call(&self.bindings, "prepare", |b, s| {
            b.weir_plugin_sink().call_prepare(s, checkpoint)
        })
    }

    /// Phase two: publish everything prepared up to `checkpoint`.
    pub fn commit(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        self.sandbox.call(&self.bindings, "commit", |b, s| {
            b.weir_plugin_sink().call_commit(s, checkpoint)
        })
    }

    /// Discard what was prepared for `checkpoint`.
    pub fn abort(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        self.sandbox.call(&self.bindings, "abort", |b, s| {
            b.weir_plugin_sink().call_abort(s, checkpoint).map(Ok)
        })
    }

    state_calls!();
}
