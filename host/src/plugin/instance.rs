//! Running plugin instances: one `Store` each, every call under the node's time budget (also
//! while blocked in the host), every reply bounded, every failure turned into a
//! [`PluginError::Call`] that names the node, the plugin and the cause.
//!
//! Invariants: a trap poisons only its own instance; the caller gets an error and drops it. A
//! call ends within its time budget, and at once when the job is cancelled, whether the plugin
//! is computing (epoch ticks) or blocked in a host call (the call's future is dropped). The
//! cause reported is the one the host observed (time, memory, handles, trap code); a plugin's
//! own words only describe a panic when the trap a panic causes follows them.

use super::bindings::{self, Context, Record};
use super::sandbox::timer_to_guest;
use super::sandbox::{HostState, SandboxSpec};
use super::template::{Call, Form, Template};
use super::text::{MAX_TEXT, escape};
use super::{Contract, LoadedPlugin, PluginError, PluginHost, PluginOrigin};
use crate::config::NodeKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{ComponentNamedList, ComponentType, Func, InstancePre, Lift, Lower};
use wasmtime::{Store, UpdateDeadline};
use weir_core::batch::{self, Batch};
use weir_core::time::timers::Domain;

/// Resource limits of one node's instances.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Memory ceiling per instance, bytes.
    pub memory: u64,
    /// Longest one call into the plugin may run, blocked time included.
    pub time_budget: Duration,
    /// Most one call may return.
    pub reply: ReplyLimits,
}

/// The most one call into a plugin may return: checked while the reply is decoded, before the
/// host allocates for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    pub records: usize,
    /// Bytes of the reply (packed: the buffer; list form: keys, values and headers).
    pub bytes: usize,
    /// Headers of all records together.
    pub headers: usize,
}

impl ReplyLimits {
    /// The same limits, for checking a packed batch.
    fn batch(&self) -> batch::Limits {
        batch::Limits {
            records: self.records,
            bytes: self.bytes,
            headers: self.headers,
        }
    }
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            records: 100_000,
            bytes: 64 << 20,
            headers: 1_000_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 256 << 20,
            time_budget: Duration::from_secs(10),
            reply: ReplyLimits::default(),
        }
    }
}

pub use weir_core::Cause;

/// Why the host cut a call short: the trap error it raises, told apart from guest traps.
#[derive(Debug, thiserror::Error)]
enum Interrupted {
    #[error("the call ran past its time budget")]
    Timeout,
    #[error("the job was cancelled")]
    Cancelled,
}

/// Runs a call's future on the subtask's thread until it ends, its time budget runs out or the
/// job is cancelled; the last two drop the future, which unwinds the guest.
struct Guard {
    budget: Duration,
    cancel: Arc<AtomicBool>,
    rt: tokio::runtime::Handle,
}

/// How often a call blocked in the host looks at the job's cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

impl Guard {
    fn wait<R>(
        &self,
        call: impl std::future::Future<Output = wasmtime::Result<R>>,
    ) -> wasmtime::Result<R> {
        use std::task::{Context, Poll, Waker};
        let started = std::time::Instant::now();
        let mut call = std::pin::pin!(call);
        // Fast path: a call that never waits on the host completes in its first poll, with no
        // timer to arm (a computing guest is bounded by the epoch callback meanwhile).
        {
            let _rt = self.rt.enter();
            if let Poll::Ready(r) = call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                return r;
            }
        }
        let left = self.budget.saturating_sub(started.elapsed());
        let cancel = &self.cancel;
        self.rt.block_on(async {
            tokio::select! {
                // The call ended (or trapped) by itself.
                r = call.as_mut() => r,
                // Blocked in the host past the budget (a computing guest is stopped by the epoch
                // callback first; this catches time spent in WASI calls).
                () = tokio::time::sleep(left) => Err(Interrupted::Timeout.into()),
                // The job is going away: do not keep it waiting on this call.
                () = async {
                    while !cancel.load(Ordering::Relaxed) {
                        tokio::time::sleep(CANCEL_POLL).await;
                    }
                } => Err(Interrupted::Cancelled.into()),
            }
        })
    }
}

/// The sandboxed store plus who it is, shared by the three instance kinds.
struct Sandboxed {
    store: Store<HostState>,
    guard: Guard,
    node: String,
    subtask: u32,
    origin: PluginOrigin,
    reply: ReplyLimits,
    handles: usize,
    /// Host directories the plugin may write, for explaining its I/O errors.
    writable: Vec<std::path::PathBuf>,
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
        let mut state = HostState::new(sandbox, format!("{node}[{subtask}]")).map_err(|e| {
            PluginError::Instantiate {
                node: node.to_owned(),
                origin: plugin.origin.clone(),
                message: format!("{e:#}"),
            }
        })?;
        // Late records of one call are bounded like its reply.
        state.time.max_late = limits.reply.records;
        let mut store = Store::new(host.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch tick while the guest computes: stop it if the job is cancelled or the
        // call is over its budget, else let it run one more tick.
        let budget = limits.time_budget;
        let cancel = sandbox.cancel.clone();
        store.epoch_deadline_callback(move |ctx| {
            if cancel.load(Ordering::Relaxed) {
                return Err(Interrupted::Cancelled.into());
            }
            if ctx.data().call_started.elapsed() > budget {
                return Err(Interrupted::Timeout.into());
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        Ok(Sandboxed {
            store,
            guard: Guard {
                budget,
                cancel: sandbox.cancel.clone(),
                rt: host.runtime(),
            },
            node: node.to_owned(),
            subtask,
            origin: plugin.origin.clone(),
            reply: limits.reply,
            handles: sandbox.handles,
            writable: sandbox
                .dirs
                .iter()
                .filter(|(_, _, writable)| *writable)
                .map(|(host, _, _)| host.clone())
                .collect(),
        })
    }

    /// Instantiate the plugin from its pre-linked form, under the time budget and the
    /// memory ceiling.
    fn instantiate(
        &mut self,
        pre: &InstancePre<HostState>,
    ) -> Result<wasmtime::component::Instance, PluginError> {
        self.begin();
        let outcome = {
            let store = &mut self.store;
            self.guard.wait(pre.instantiate_async(store))
        };
        outcome.map_err(|e| self.instantiate_failed(e))
    }

    /// Run `func`, the export of `call`, whose results are `R`: its raw outcome, for
    /// [`Sandboxed::finish`]. Fails only when the export does not have the type weir gives it.
    fn invoke<P, R>(
        &mut self,
        call: Call,
        func: Func,
        params: P,
    ) -> Result<wasmtime::Result<R>, PluginError>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let typed = func.typed::<P, R>(&self.store).map_err(|e| {
            self.error(
                call,
                Cause::Error(format!(
                    "exports `{call}` with another type than weir:plugin gives it ({e}): rebuild it against this weir's SDK"
                )),
            )
        })?;
        self.begin();
        let store = &mut self.store;
        Ok(self.guard.wait(typed.call_async(store, params)))
    }

    /// A call (or instantiation) starts: the store forgets the previous call and the epoch
    /// callback looks at it from the next tick.
    fn begin(&mut self) {
        self.store.data_mut().begin_call();
        self.store.set_epoch_deadline(1);
    }

    /// Instantiation failed: a limit the host enforces (memory, time), or a component that
    /// cannot start.
    fn instantiate_failed(&mut self, e: wasmtime::Error) -> PluginError {
        match self.classify(e) {
            Cause::Trap(message) => PluginError::Instantiate {
                node: self.node.clone(),
                origin: self.origin.clone(),
                message,
            },
            cause => self.error(Call::Instantiate, cause),
        }
    }

    fn error(&self, call: Call, cause: Cause) -> PluginError {
        PluginError::Call {
            node: self.node.clone(),
            subtask: self.subtask,
            origin: self.origin.clone(),
            call,
            cause,
        }
    }

    /// Turn a call's outcome into its value or the error that names its cause.
    fn finish<T>(
        &mut self,
        call: Call,
        outcome: wasmtime::Result<Result<T, String>>,
    ) -> Result<T, PluginError> {
        // Keyed state the plugin could not use is why the call failed, whatever it returned.
        if let Some(e) = self.store.data_mut().keyed_error.take()
            && !matches!(&outcome, Err(t) if t.downcast_ref::<Interrupted>().is_some())
        {
            self.store.data_mut().end_call();
            let message = escape(&e.to_string(), MAX_TEXT);
            let cause = if e.is_misuse() {
                Cause::KeyedMisuse(message)
            } else {
                Cause::Error(message)
            };
            return Err(self.error(call, cause));
        }
        let cause = match outcome {
            Ok(Ok(v)) => {
                let data = self.store.data_mut();
                data.end_call();
                match data.time.over.take() {
                    None => return Ok(v),
                    Some(what) => Cause::TooLarge(what),
                }
            }
            Ok(Err(msg)) => {
                let data = self.store.data_mut();
                data.end_call();
                match data.limiter.refused.take() {
                    // A runtime that survives a refused allocation (CPython's MemoryError, say)
                    // reports it as an error: it is still the ceiling that stopped it.
                    Some((_, desired)) => Cause::OutOfMemory {
                        requested: desired,
                        ceiling: data.limiter.max,
                    },
                    None => {
                        let text = escape(&super::errno::explain(&msg, &self.writable), MAX_TEXT);
                        if super::errno::reports_os_error(&msg) {
                            Cause::Io(text)
                        } else {
                            Cause::Error(text)
                        }
                    }
                }
            }
            Err(trap) => self.classify(trap),
        };
        Err(self.error(call, cause))
    }

    /// The largest amount of memory (all memories and tables) this instance has held.
    fn memory_bytes(&self) -> u64 {
        self.store.data().limiter.grown_to
    }

    /// What the host saw end the call, in order of authority: its own interruptions, the
    /// memory ceiling, the handle limit; the plugin's panic message only for the trap a panic
    /// causes.
    fn classify(&mut self, trap: wasmtime::Error) -> Cause {
        match trap.downcast_ref::<Interrupted>() {
            Some(Interrupted::Cancelled) => return Cause::Cancelled,
            Some(Interrupted::Timeout) => return Cause::Timeout(self.guard.budget),
            None => {}
        }
        let code = trap.downcast_ref::<wasmtime::Trap>().copied();
        if code == Some(wasmtime::Trap::Interrupt) {
            return Cause::Timeout(self.guard.budget);
        }
        let data = self.store.data_mut();
        if let Some((_, desired)) = data.limiter.refused.take() {
            data.end_call();
            return Cause::OutOfMemory {
                requested: desired,
                ceiling: data.limiter.max,
            };
        }
        if trap
            .downcast_ref::<wasmtime::component::ResourceTableError>()
            .is_some_and(|e| matches!(e, wasmtime::component::ResourceTableError::Full))
        {
            data.end_call();
            return Cause::TooManyHandles(self.handles);
        }
        if code == Some(wasmtime::Trap::UnreachableCodeReached)
            && let Some(message) = data.panic.take()
        {
            let backtrace = trap
                .downcast_ref::<wasmtime::WasmBacktrace>()
                .map(|b| escape(&b.to_string(), MAX_TEXT))
                .unwrap_or_default()
                .into();
            return Cause::Panic { message, backtrace };
        }
        data.end_call();
        Cause::Trap(escape(&format!("{trap:#}"), MAX_TEXT))
    }

    /// Check a packed batch the plugin returned from `call` whole, within the reply limits.
    fn unpack(&self, call: Call, bytes: Vec<u8>) -> Result<Batch, PluginError> {
        Batch::decode(bytes, &self.reply.batch()).map_err(|e| {
            self.error(
                call,
                match e {
                    weir_batch::Error::Malformed(m) => Cause::BadBatch(m),
                    weir_batch::Error::TooLarge(m) => Cause::TooLarge(m),
                },
            )
        })
    }

    /// Check a batch the plugin returned in the list form against the reply limits, and pack it.
    fn check(&self, call: Call, batch: Vec<Record>) -> Result<Batch, PluginError> {
        check(&batch, &self.reply).map_err(|m| self.error(call, Cause::TooLarge(m)))?;
        Ok(super::convert::pack_wit(&batch))
    }

    fn context(&self, parallelism: u32) -> Context {
        Context {
            node: self.node.clone(),
            subtask: self.subtask,
            parallelism,
        }
    }
}

pub use weir_core::node::Polled;

/// `poll`'s result in either form (the two contracts' `poll-result` are the same type).
use bindings::packed::source::exports::weir::plugin::packed_source::PollResult as PackedPoll;
use bindings::source::exports::weir::plugin::source::PollResult as ListPoll;

/// Everything starting one instance needs: which plugin, as which subtask of which node, in
/// which sandbox, with which limits and configuration.
#[derive(Clone, Copy)]
pub struct InstanceSpec<'a> {
    pub host: &'a PluginHost,
    pub plugin: &'a LoadedPlugin,
    pub node: &'a str,
    pub subtask: u32,
    pub parallelism: u32,
    pub sandbox: &'a SandboxSpec,
    pub limits: Limits,
    pub config: &'a crate::config::PluginConfig,
}

/// One running plugin instance of any kind, batch form and contract. Every call the host makes
/// is written here once; the batch form matters only where a batch is lowered or lifted.
struct Instance {
    sandbox: Sandboxed,
    template: Arc<Template>,
    /// This instance's function for each call of its world, indexed by [`Call`].
    funcs: [Option<Func>; Call::EXPORTS],
}

impl Instance {
    /// Instantiate `spec.plugin` (which must be a `kind`) from its template and `open` it.
    fn start(
        kind: NodeKind,
        spec: &InstanceSpec,
        keyed: Option<crate::keyed::SharedKeyed>,
    ) -> Result<Self, PluginError> {
        let InstanceSpec {
            host,
            plugin,
            node,
            subtask,
            parallelism,
            sandbox,
            limits,
            config,
        } = *spec;
        let refuse = |message: String| PluginError::Instantiate {
            node: node.to_owned(),
            origin: plugin.origin.clone(),
            message,
        };
        if plugin.kind != kind {
            return Err(refuse(format!("it is a {}, not a {kind}", plugin.kind)));
        }
        let template = plugin.template.clone();
        let mut sb = Sandboxed::new(host, plugin, node, subtask, sandbox, limits)?;
        sb.store.data_mut().keyed = keyed;
        let instance = sb.instantiate(&template.pre)?;
        let mut funcs = [None; Call::EXPORTS];
        for call in super::template::EXPORTED {
            if let Some(index) = template.export(call) {
                let func = instance.get_func(&mut sb.store, index).ok_or_else(|| {
                    refuse(format!("its `{}` export is not a function", call.name()))
                })?;
                funcs[call as usize] = Some(func);
            }
        }
        let ctx = sb.context(parallelism);
        let mut me = Instance {
            sandbox: sb,
            template,
            funcs,
        };
        match me.template.contract {
            Contract::V3 => me.call::<_, ()>(Call::Open, (config.document.as_str(), &ctx))?,
            Contract::V1 | Contract::V2 => {
                me.call::<_, ()>(Call::Open, (&config.pairs[..], &ctx))?
            }
        }
        Ok(me)
    }

    /// Call `call` with `params`: a function returning `result<R, string>`.
    fn call<P, R>(&mut self, call: Call, params: P) -> Result<R, PluginError>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentType + Lift + Send + Sync + 'static,
    {
        let func = self.func(call)?;
        let outcome = self
            .sandbox
            .invoke::<P, (Result<R, String>,)>(call, func, params)?;
        self.sandbox.finish(call, outcome.map(|(r,)| r))
    }

    /// Call `call`, whose result is a batch in this plugin's form, and check the batch.
    fn call_batch<P>(&mut self, call: Call, params: P) -> Result<Batch, PluginError>
    where
        P: ComponentNamedList + Lower + Send + Sync,
    {
        match self.template.form {
            Form::Packed => {
                let bytes = self.call::<P, Vec<u8>>(call, params)?;
                self.sandbox.unpack(call, bytes)
            }
            Form::List => {
                let records = self.call::<P, Vec<Record>>(call, params)?;
                self.sandbox.check(call, records)
            }
        }
    }

    /// Call `call` with `batch` (lowered in this plugin's form) as its one argument.
    fn call_with_batch<R>(&mut self, call: Call, batch: &Batch) -> Result<R, PluginError>
    where
        R: ComponentType + Lift + Send + Sync + 'static,
    {
        match self.template.form {
            Form::Packed => self.call(call, (batch.as_bytes(),)),
            Form::List => self.call(call, (super::convert::to_wit(batch).as_slice(),)),
        }
    }

    /// The same, for a call returning a batch.
    fn call_batch_with_batch(&mut self, call: Call, batch: &Batch) -> Result<Batch, PluginError> {
        match self.template.form {
            Form::Packed => self.call_batch(call, (batch.as_bytes(),)),
            Form::List => self.call_batch(call, (super::convert::to_wit(batch).as_slice(),)),
        }
    }

    fn func(&self, call: Call) -> Result<Func, PluginError> {
        self.funcs[call as usize].ok_or_else(|| {
            self.sandbox.error(
                call,
                Cause::Error(format!(
                    "has no `{}` (weir bug: the host called what this world does not have)",
                    call.name()
                )),
            )
        })
    }

    /// The plugin's own state bytes.
    fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        self.call(Call::Snapshot, ())
    }

    /// Give the plugin back state bytes a `snapshot` returned.
    fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        self.call(Call::Restore, (state,))
    }
}

/// A running source plugin.
pub struct SourceInstance(Instance);

impl SourceInstance {
    /// Instantiate and `open` a source subtask.
    pub fn start(spec: &InstanceSpec) -> Result<Self, PluginError> {
        Instance::start(NodeKind::Source, spec, None).map(SourceInstance)
    }

    /// Ask for up to `max` records.
    pub fn poll(&mut self, max: u32) -> Result<Polled, PluginError> {
        let i = &mut self.0;
        Ok(match i.template.form {
            Form::Packed => match i.call(Call::Poll, (max,))? {
                PackedPoll::Batch(bytes) => Polled::Batch(i.sandbox.unpack(Call::Poll, bytes)?),
                PackedPoll::Idle => Polled::Idle,
                PackedPoll::End => Polled::End,
            },
            Form::List => match i.call(Call::Poll, (max,))? {
                ListPoll::Batch(records) => Polled::Batch(i.sandbox.check(Call::Poll, records)?),
                ListPoll::Idle => Polled::Idle,
                ListPoll::End => Polled::End,
            },
        })
    }

    /// The most memory (all memories and tables) this instance has held, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.0.sandbox.memory_bytes()
    }

    /// The newest watermark the plugin emitted during the last poll (0.2.0 sources).
    pub fn take_watermark(&mut self) -> Option<i64> {
        self.0.sandbox.store.data_mut().time.emitted.take()
    }

    /// The plugin's state bytes.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        self.0.snapshot()
    }

    /// Give the plugin back state bytes a `snapshot` returned.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        self.0.restore(state)
    }
}

use weir_core::time::{TimedState, V2_STATE};

/// A running operator plugin.
pub struct OperatorInstance(Instance);

impl OperatorInstance {
    /// Instantiate and `open` an operator subtask whose keyed state is `keyed`.
    pub fn start(
        spec: &InstanceSpec,
        keyed: Option<crate::keyed::SharedKeyed>,
    ) -> Result<Self, PluginError> {
        Instance::start(NodeKind::Operator, spec, keyed).map(OperatorInstance)
    }

    /// Transform one batch.
    pub fn process(&mut self, batch: &Batch) -> Result<Batch, PluginError> {
        self.0.call_batch_with_batch(Call::Process, batch)
    }

    /// The most memory (all memories and tables) this instance has held, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.0.sandbox.memory_bytes()
    }

    /// 0.2.0 and later operators have timers, a watermark and `finish`.
    fn timed(&self) -> bool {
        self.0.template.contract.timed()
    }

    /// Event time advanced to `ts`: the event-time timers up to it fire (in order, in calls of
    /// at most [`weir_core::time::timers::FIRE_BATCH`], also those registered while firing), then
    /// the plugin hears the watermark.
    pub fn on_watermark(&mut self, ts: i64) -> Result<Batch, PluginError> {
        let mut out = Batch::empty();
        if self.timed() {
            self.0.sandbox.store.data_mut().time.watermark = ts;
            out = self.fire_due(Domain::EventTime, ts)?;
        }
        let produced = self.0.call_batch(Call::OnWatermark, (ts,))?;
        Ok(batch::concat(out, &produced))
    }

    /// The wall clock reached `now`: the processing-time timers due fire.
    pub fn on_processing_time(&mut self, now: i64) -> Result<Batch, PluginError> {
        if !self.timed() {
            return Ok(Batch::empty());
        }
        self.fire_due(Domain::ProcessingTime, now)
    }

    /// When the earliest processing-time timer is due.
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.0.sandbox.store.data().time.timers.next_processing()
    }

    /// Fire every timer of `domain` due at `now`, oldest first (0.2.0 operators).
    fn fire_due(&mut self, domain: Domain, now: i64) -> Result<Batch, PluginError> {
        let mut out = Batch::empty();
        loop {
            let due = self
                .0
                .sandbox
                .store
                .data_mut()
                .time
                .timers
                .pop_due(domain, now);
            if due.is_empty() {
                return Ok(out);
            }
            let fired: Vec<_> = due.into_iter().map(timer_to_guest).collect();
            let produced = self.0.call_batch(Call::OnTimers, (fired.as_slice(),))?;
            out = batch::concat(out, &produced);
        }
    }

    /// End of input: what the plugin still holds back (0.2.0 operators).
    pub fn finish(&mut self) -> Result<Batch, PluginError> {
        if !self.timed() {
            return Ok(Batch::empty());
        }
        self.0.call_batch(Call::Finish, ())
    }

    /// Records the plugin sent to `<node>.late` since the last take.
    pub fn take_late(&mut self) -> Vec<weir_core::Record> {
        std::mem::take(&mut self.0.sandbox.store.data_mut().time.late)
    }

    /// Late records of another instance of this node, taken with this one's.
    pub fn keep_late(&mut self, late: Vec<weir_core::Record>) {
        self.0.sandbox.store.data_mut().time.late.splice(0..0, late);
    }

    /// The state: the plugin's bytes, and for 0.2.0 operators the timers and watermark.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        let plugin = self.0.snapshot()?;
        if !self.timed() {
            return Ok(plugin);
        }
        let time = &self.0.sandbox.store.data().time;
        let timed = TimedState {
            watermark: time.watermark,
            timers: time.timers.clone(),
            plugin,
        };
        postcard::to_extend(&timed, V2_STATE.to_vec()).map_err(|e| {
            self.0.sandbox.error(
                Call::Snapshot,
                Cause::Error(format!("cannot encode its timers: {e}")),
            )
        })
    }

    /// Restore what [`OperatorInstance::snapshot`] returned (or a 0.1.0 build's plain state).
    pub fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        let Some(rest) = state.strip_prefix(V2_STATE.as_slice()) else {
            return self.0.restore(state);
        };
        if !self.timed() {
            return Err(self.0.sandbox.error(
                Call::Restore,
                Cause::Error(
                    "the stored state holds timers, which this build (weir:plugin@0.1.0) cannot take: restore it with a 0.2.0 build of the plugin".into(),
                ),
            ));
        }
        let timed: TimedState = postcard::from_bytes(rest).map_err(|e| {
            self.0.sandbox.error(
                Call::Restore,
                Cause::Error(format!("the stored timers do not decode: {e}")),
            )
        })?;
        let time = &mut self.0.sandbox.store.data_mut().time;
        time.watermark = timed.watermark;
        time.timers = timed.timers;
        self.0.restore(&timed.plugin)
    }
}

/// A running sink plugin.
pub struct SinkInstance(Instance);

impl SinkInstance {
    /// Instantiate and `open` a sink subtask.
    pub fn start(spec: &InstanceSpec) -> Result<Self, PluginError> {
        Instance::start(NodeKind::Sink, spec, None).map(SinkInstance)
    }

    /// The most memory (all memories and tables) this instance has held, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.0.sandbox.memory_bytes()
    }

    /// Consume one batch.
    pub fn write(&mut self, batch: &Batch) -> Result<(), PluginError> {
        self.0.call_with_batch(Call::Write, batch)
    }

    /// The input ended.
    pub fn finish(&mut self) -> Result<(), PluginError> {
        self.0.call(Call::Finish, ())
    }

    /// Phase one of the two-phase commit for `checkpoint`.
    pub fn prepare(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        self.0.call(Call::Prepare, (checkpoint,))
    }

    /// Phase two: publish everything prepared up to `checkpoint`.
    pub fn commit(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        self.0.call(Call::Commit, (checkpoint,))
    }

    /// Discard what was prepared for `checkpoint` (`abort` returns nothing).
    pub fn abort(&mut self, checkpoint: u64) -> Result<(), PluginError> {
        let i = &mut self.0;
        let func = i.func(Call::Abort)?;
        let outcome = i
            .sandbox
            .invoke::<_, ()>(Call::Abort, func, (checkpoint,))?;
        i.sandbox.finish(Call::Abort, outcome.map(Ok))
    }

    /// The plugin's state bytes.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, PluginError> {
        self.0.snapshot()
    }

    /// Give the plugin back state bytes a `snapshot` returned.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), PluginError> {
        self.0.restore(state)
    }
}

/// Check a batch lifted in the list form against `limits` (a packed one is checked as it is
/// decoded).
fn check(batch: &[Record], limits: &ReplyLimits) -> Result<(), String> {
    let too_many = |what: &str, n: usize, limit: usize| format!("{n} {what} (limit {limit})");
    if batch.len() > limits.records {
        return Err(too_many("records", batch.len(), limits.records));
    }
    let headers: usize = batch.iter().map(|r| r.headers.len()).sum();
    if headers > limits.headers {
        return Err(too_many("headers", headers, limits.headers));
    }
    let bytes: usize = batch
        .iter()
        .map(|r| {
            r.key.as_ref().map_or(0, Vec::len)
                + r.value.len()
                + r.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.len())
                    .sum::<usize>()
        })
        .sum();
    if bytes > limits.bytes {
        return Err(format!(
            "{bytes} bytes of keys, values and headers (limit {})",
            limits.bytes
        ));
    }
    Ok(())
}
