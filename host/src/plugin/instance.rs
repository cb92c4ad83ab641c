//! Running plugin instances: one `Store` each, every call under the node's time budget, every
//! failure turned into a [`PluginError::Call`] that names the node, the plugin and the cause.
//!
//! Invariant: a trap poisons only its own instance; the caller gets an error and drops it.

use super::bindings::{self, Context, Record};
use super::packed;
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
    /// A packed batch from the plugin did not decode.
    BadBatch(String),
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
            Cause::BadBatch(m) => write!(
                f,
                "returned a packed batch that does not decode ({m}); it must follow weir:plugin/packed-types (rebuild it against this weir's SDK)"
            ),
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

    /// Decode a packed batch the plugin returned from `call`.
    fn unpack(&self, call: &'static str, bytes: &[u8]) -> Result<Vec<Record>, PluginError> {
        packed::decode(bytes).map_err(|m| PluginError::Call {
            node: self.node.clone(),
            subtask: self.subtask,
            origin: self.origin.clone(),
            call,
            cause: Cause::BadBatch(m),
        })
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

/// A component's bindings in the batch form it exports: `list<record>` or packed.
enum Bound<L, P> {
    List(L),
    Packed(P),
}

/// Run the same call on either form's bindings (`state` is the same interface in both).
macro_rules! on_either {
    ($self:ident, $call:literal, |$b:ident, $s:ident| $e:expr) => {
        match &$self.bindings {
            Bound::List(b) => $self.sandbox.call(b, $call, |$b, $s| $e),
            Bound::Packed(b) => $self.sandbox.call(b, $call, |$b, $s| $e),
        }
    };
}

macro_rules! state_calls {
    () => {
        /// The plugin's state bytes.
        pub fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
            on_either!(self, "snapshot", |b, s| b
                .weir_plugin_state()
                .call_snapshot(s))
        }

        /// Give the plugin back state bytes a `snapshot` returned.
        pub fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
            on_either!(self, "restore", |b, s| b
                .weir_plugin_state()
                .call_restore(s, state))
        }
    };
}

type SourceBindings =
    Bound<bindings::source::SourcePlugin, bindings::packed::source::PackedSourcePlugin>;

/// A running source plugin.
pub struct SourceInstance {
    sandbox: Sandboxed,
    bindings: SourceBindings,
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
        let (c, l) = (&plugin.component, host.linker());
        let bindings = if plugin.packed {
            bindings::packed::source::PackedSourcePlugin::instantiate(&mut sb.store, c, l)
                .map(Bound::Packed)
        } else {
            bindings::source::SourcePlugin::instantiate(&mut sb.store, c, l).map(Bound::List)
        }
        .map_err(|e| sb.instantiate_error(e))?;
        let ctx = sb.context(parallelism);
        let config = config.to_vec();
        let mut me = SourceInstance {
            sandbox: sb,
            bindings,
        };
        match &me.bindings {
            Bound::List(b) => me.sandbox.call(b, "open", |b, s| {
                b.weir_plugin_source().call_open(s, &config, &ctx)
            }),
            Bound::Packed(b) => me.sandbox.call(b, "open", |b, s| {
                b.weir_plugin_packed_source().call_open(s, &config, &ctx)
            }),
        }?;
        Ok(me)
    }

    /// Ask for up to `max` records.
    pub fn poll(&mut self, max: u32) -> Result<Polled, PluginError> {
        match &self.bindings {
            Bound::List(b) => {
                use bindings::source::exports::weir::plugin::source::PollResult;
                let r = self
                    .sandbox
                    .call(b, "poll", |b, s| b.weir_plugin_source().call_poll(s, max))?;
                Ok(match r {
                    PollResult::Batch(batch) => Polled::Batch(batch),
                    PollResult::Idle => Polled::Idle,
                    PollResult::End => Polled::End,
                })
            }
            Bound::Packed(b) => {
                use bindings::packed::source::exports::weir::plugin::packed_source::PollResult;
                let r = self.sandbox.call(b, "poll", |b, s| {
                    b.weir_plugin_packed_source().call_poll(s, max)
                })?;
                Ok(match r {
                    PollResult::Batch(bytes) => Polled::Batch(self.sandbox.unpack("poll", &bytes)?),
                    PollResult::Idle => Polled::Idle,
                    PollResult::End => Polled::End,
                })
            }
        }
    }

    state_calls!();
}

type OperatorBindings =
    Bound<bindings::operator::OperatorPlugin, bindings::packed::operator::PackedOperatorPlugin>;

/// A running operator plugin.
pub struct OperatorInstance {
    sandbox: Sandboxed,
    bindings: OperatorBindings,
    /// The packed encoding buffer, reused from batch to batch.
    scratch: Vec<u8>,
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
        let (c, l) = (&plugin.component, host.linker());
        let bindings = if plugin.packed {
            bindings::packed::operator::PackedOperatorPlugin::instantiate(&mut sb.store, c, l)
                .map(Bound::Packed)
        } else {
            bindings::operator::OperatorPlugin::instantiate(&mut sb.store, c, l).map(Bound::List)
        }
        .map_err(|e| sb.instantiate_error(e))?;
        let ctx = sb.context(parallelism);
        let config = config.to_vec();
        let mut me = OperatorInstance {
            sandbox: sb,
            bindings,
            scratch: Vec::new(),
        };
        match &me.bindings {
            Bound::List(b) => me.sandbox.call(b, "open", |b, s| {
                b.weir_plugin_operator().call_open(s, &config, &ctx)
            }),
            Bound::Packed(b) => me.sandbox.call(b, "open", |b, s| {
                b.weir_plugin_packed_operator().call_open(s, &config, &ctx)
            }),
        }?;
        Ok(me)
    }

    /// Transform one batch.
    pub fn process(&mut self, batch: &[Record]) -> Result<Vec<Record>, PluginError> {
        match &self.bindings {
            Bound::List(b) => self.sandbox.call(b, "process", |b, s| {
                b.weir_plugin_operator().call_process(s, batch)
            }),
            Bound::Packed(b) => {
                let bytes = packed::encode(batch, std::mem::take(&mut self.scratch));
                let out = self.sandbox.call(b, "process", |b, s| {
                    b.weir_plugin_packed_operator().call_process(s, &bytes)
                });
                self.scratch = bytes;
                self.sandbox.unpack("process", &out?)
            }
        }
    }

    /// The largest linear memory of this instance, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.sandbox.memory_bytes()
    }

    /// Event time advanced to `ts`.
    pub fn on_watermark(&mut self, ts: i64) -> Result<Vec<Record>, PluginError> {
        match &self.bindings {
            Bound::List(b) => self.sandbox.call(b, "on-watermark", |b, s| {
                b.weir_plugin_operator().call_on_watermark(s, ts)
            }),
            Bound::Packed(b) => {
                let out = self.sandbox.call(b, "on-watermark", |b, s| {
                    b.weir_plugin_packed_operator().call_on_watermark(s, ts)
                })?;
                self.sandbox.unpack("on-watermark", &out)
            }
        }
    }

    state_calls!();
}

type SinkBindings = Bound<bindings::sink::SinkPlugin, bindings::packed::sink::PackedSinkPlugin>;

/// A running sink plugin.
pub struct SinkInstance {
    sandbox: Sandboxed,
    bindings: SinkBindings,
    /// The packed encoding buffer, reused from batch to batch.
    scratch: Vec<u8>,
}

/// Run the same sink call on either form's bindings: the calls other than `write` have the same
/// signature in `sink` and `packed-sink`.
macro_rules! sink_call {
    ($self:ident, $call:literal, |$i:ident, $s:ident| $e:expr) => {
        match &$self.bindings {
            Bound::List(b) => $self.sandbox.call(b, $call, |b, $s| {
                let $i = b.weir_plugin_sink();
                $e
            }),
            Bound::Packed(b) => $self.sandbox.call(b, $call, |b, $s| {
                let $i = b.weir_plugin_packed_sink();
                $e
            }),
        }
    };
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
        let (c, l) = (&plugin.component, host.linker());
        let bindings = if plugin.packed {
            bindings::packed::sink::PackedSinkPlugin::instantiate(&mut sb.store, c, l)
                .map(Bound::Packed)
        } else {
            bindings::sink::SinkPlugin::instantiate(&mut sb.store, c, l).map(Bound::List)
        }
        .map_err(|e| sb.instantiate_error(e))?;
        let ctx = sb.context(parallelism);
        let config = config.to_vec();
        let mut me = SinkInstance {
            sandbox: sb,
            bindings,
            scratch: Vec::new(),
        };
        sink_call!(me, "open", |i, s| i.call_open(s, &config, &ctx))?;
        Ok(me)
    }

    /// Consume one batch.
    pub fn write(&mut self, batch: &[Record]) -> Result<(), PluginError> {
        match &self.bindings {
            Bound::List(b) => self
                .sandbox
                .call(b, "write", |b, s| b.weir_plugin_sink().call_write(s, batch)),
            Bound::Packed(b) => {
                let bytes = packed::encode(batch, std::mem::take(&mut self.scratch));
                let out = self.sandbox.call(b, "write", |b, s| {
                    b.weir_plugin_packed_sink().call_write(s, &bytes)
                });
                self.scratch = bytes;
                out
            }
        }
    }

    /// The input ended.
    pub fn finish(&mut self) -> Result<(), PluginError> {
        sink_call!(self, "finish", |i, s| i.call_finish(s))
    }

    /// Phase one of the two-phase commit for `checkpoint`.
    pub fn prepare(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        sink_call!(self, "prepare", |i, s| i.call_prepare(s, checkpoint))
    }

    /// Phase two: publish everything prepared up to `checkpoint`.
    pub fn commit(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        sink_call!(self, "commit", |i, s| i.call_commit(s, checkpoint))
    }

    /// Discard what was prepared for `checkpoint`.
    pub fn abort(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        sink_call!(self, "abort", |i, s| i.call_abort(s, checkpoint).map(Ok))
    }

    state_calls!();
}
