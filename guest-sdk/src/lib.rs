//! weir-sdk: write weir sources, operators and sinks in Rust.
//!
//! A plugin is a type that implements [`Source`], [`Operator`] or [`Sink`], with one attribute on
//! the `impl` block. The attribute generates the WebAssembly component exports; plugin code never
//! touches `wit_bindgen`. State is the type itself: `snapshot`/`restore` default to a compact
//! serde encoding of it, so a `#[derive(Serialize, Deserialize)]` is all most plugins need.
//!
//! ```text
//! use weir_sdk::{operator, Config, Context, Operator, Record, Result};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Upper;
//!
//! #[operator]
//! impl Operator for Upper {
//!     fn open(_: &Config, _: &Context) -> Result<Self> { Ok(Upper) }
//!     fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Record>> {
//!         Ok(batch.into_iter().map(|r| Record::new(r.value.to_ascii_uppercase())).collect())
//!     }
//! }
//! ```
//!
//! Keyed state: [`keyed`] has value, list and map state per key, kept by the host beyond the
//! plugin's memory, checkpointed incrementally and rescalable.
//!
//! Event time: [`time`] registers timers and reads the watermark, [`window`] has tumbling,
//! sliding and session windows with aggregates and allowed lateness.
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component to name in a pipeline file.
//!
//! Invariant: a panic inside the plugin reaches the host's log with its message before the
//! instance traps, so the host can say why the node failed.

pub use anyhow::{Error, Result, anyhow, bail, ensure};
pub use weir_sdk_macros::{filter, flat_map, map, operator, sink, source};

pub mod config;
pub mod dir;
pub mod keyed;
pub mod lines;
pub mod log;
mod record;
pub mod state;
pub mod throttle;
pub mod time;
pub mod window;

pub use config::{Config, Context};
pub use keyed::{ListState, MapState, ValueState};
pub use record::Record;
pub use time::{TimeDomain, Timer};
pub use weir_batch::{Batch, BatchBuilder, RecordRef, ValueWriter};

use serde::{Serialize, de::DeserializeOwned};

/// What a [`Source::poll`] produced.
#[derive(Debug)]
pub enum Poll {
    /// Records read; may be fewer than asked for, never empty.
    Batch(Vec<Record>),
    /// Nothing available now; the host polls again after a short pause.
    Idle,
    /// Exhausted for good.
    End,
}

/// A plugin that produces records. Its state (e.g. a read offset) is snapshotted between polls.
pub trait Source: Serialize + DeserializeOwned + Sized + 'static {
    /// Build the source from its node's `config`. Called once, before anything else.
    fn open(config: &Config, ctx: &Context) -> Result<Self>;

    /// Produce up to `max` records.
    fn poll(&mut self, max: usize) -> Result<Poll>;

    /// Serialise the state. Default: the serde encoding of `self`.
    fn snapshot(&self) -> Result<Vec<u8>> {
        state::encode(self)
    }

    /// Restore a state `snapshot` returned; called after `open`. Default: replace `self` with it.
    fn restore(&mut self, state: &[u8]) -> Result<()> {
        *self = state::decode(state)?;
        Ok(())
    }
}

/// A plugin that transforms batches of records.
pub trait Operator: Serialize + DeserializeOwned + Sized + 'static {
    /// Build the operator from its node's `config`. Called once, before anything else.
    fn open(config: &Config, ctx: &Context) -> Result<Self>;

    /// Transform one batch of owned records; the output may be longer, shorter or empty.
    /// Implement this or [`Operator::process_batch`].
    fn process(&mut self, _batch: Vec<Record>) -> Result<Vec<Record>> {
        bail!("this operator implements neither `process` nor `process_batch`")
    }

    /// Transform one batch without an allocation per record: the records are borrowed from
    /// the buffer the host sent, the output is written into one buffer. Default: [`process`]
    /// on owned copies.
    ///
    /// [`process`]: Operator::process
    fn process_batch(&mut self, batch: &Batch, out: &mut BatchBuilder) -> Result<()> {
        let records = batch.iter().map(|r| Record::from_ref(&r)).collect();
        for r in self.process(records)? {
            r.write_to(out);
        }
        Ok(())
    }

    /// Event time reached `ts` (ms since the epoch) on every input, after the event-time
    /// timers up to `ts` fired; [`time::END_OF_TIME`] when the input ended. Default: nothing.
    fn on_watermark(&mut self, _ts: i64) -> Result<Vec<Record>> {
        Ok(Vec::new())
    }

    /// Timers registered through [`time`] whose time came, oldest first. Default: nothing.
    fn on_timers(&mut self, _fired: Vec<Timer>) -> Result<Vec<Record>> {
        Ok(Vec::new())
    }

    /// The input ended (no batch, timer or watermark follows): emit what is still held back.
    /// Not called when the job stops on a savepoint. Default: nothing.
    fn finish(&mut self) -> Result<Vec<Record>> {
        Ok(Vec::new())
    }

    /// The version of this build's state encoding. Raise it when the state type changes, and
    /// teach [`Operator::migrate`] to read the versions before: a live swap (`weir swap`) or a
    /// restore from an older savepoint hands a new build the state an older one wrote.
    /// 0: the plain encoding.
    const STATE_VERSION: u32 = 0;

    /// Whether the operator's struct is its state, checkpointed and restored whole (the
    /// default). An operator that keeps what it must remember in keyed state ([`keyed`],
    /// [`window`]) sets it to `false`: its struct is then configuration, made by `open` from
    /// the pipeline file on every start (a changed `config` takes effect after a restore), and
    /// its checkpoints hold nothing of its own, so it rescales like its keyed state.
    const STATE_IN_STRUCT: bool = true;

    /// Serialise the state. Default: the serde encoding of `self`, marked with
    /// [`Operator::STATE_VERSION`]; nothing when [`Operator::STATE_IN_STRUCT`] is false.
    fn snapshot(&self) -> Result<Vec<u8>> {
        if !Self::STATE_IN_STRUCT {
            return Ok(Vec::new());
        }
        state::encode_versioned(self, Self::STATE_VERSION)
    }

    /// Restore a state `snapshot` returned; called after `open`. Default: replace `self` with
    /// it when this build wrote its version, else [`Operator::migrate`]; keep `self` as `open`
    /// made it when [`Operator::STATE_IN_STRUCT`] is false.
    fn restore(&mut self, state: &[u8]) -> Result<()> {
        if !Self::STATE_IN_STRUCT {
            return Ok(());
        }
        let (version, body) = state::split_version(state);
        if version == Self::STATE_VERSION {
            *self = state::decode(body)?;
            return Ok(());
        }
        self.migrate(version, body)
    }

    /// Restore state written by a build whose `STATE_VERSION` was `from`. Default: refuse, so
    /// a swap to this build is refused and the old build runs on.
    fn migrate(&mut self, from: u32, _state: &[u8]) -> Result<()> {
        bail!(
            "the stored state is version {from} and this build's is version {}: implement Operator::migrate to read it",
            Self::STATE_VERSION
        )
    }
}

/// A plugin that consumes records. Exactly-once sinks implement the two-phase commit hooks.
pub trait Sink: Serialize + DeserializeOwned + Sized + 'static {
    /// Build the sink from its node's `config`. Called once, before anything else.
    fn open(config: &Config, ctx: &Context) -> Result<Self>;

    /// Consume one batch of owned records. Implement this or [`Sink::write_batch`].
    fn write(&mut self, _batch: Vec<Record>) -> Result<()> {
        bail!("this sink implements neither `write` nor `write_batch`")
    }

    /// Consume one batch, its records borrowed from the buffer the host sent. Default:
    /// [`Sink::write`] on owned copies.
    fn write_batch(&mut self, batch: &Batch) -> Result<()> {
        self.write(batch.iter().map(|r| Record::from_ref(&r)).collect())
    }

    /// The input ended; no more `write`s. Close what is open; the final checkpoint's `prepare`
    /// and `commit` follow. Default: nothing.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    /// Phase one: flush and pre-commit everything written for `checkpoint`. Default: nothing.
    fn prepare(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// Phase two: publish what was prepared up to `checkpoint`. Must be idempotent.
    fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// Discard what was prepared for `checkpoint`. Default: nothing.
    fn abort(&mut self, _checkpoint: u64) {}

    /// Serialise the state. Default: the serde encoding of `self`.
    fn snapshot(&self) -> Result<Vec<u8>> {
        state::encode(self)
    }

    /// Restore a state `snapshot` returned; called after `open`. Default: replace `self` with it.
    fn restore(&mut self, state: &[u8]) -> Result<()> {
        *self = state::decode(state)?;
        Ok(())
    }
}

/// Used by the code the attributes generate; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use wit_bindgen;

    use crate::{Batch, BatchBuilder, RecordRef, ValueWriter};

    /// What a function plugin's function may return: the value, or a `Result` of it.
    pub trait Outcome<T> {
        fn into_result(self) -> crate::Result<T>;
    }

    impl Outcome<bool> for bool {
        fn into_result(self) -> crate::Result<bool> {
            Ok(self)
        }
    }

    impl Outcome<bool> for crate::Result<bool> {
        fn into_result(self) -> crate::Result<bool> {
            self
        }
    }

    impl Outcome<()> for () {
        fn into_result(self) -> crate::Result<()> {
            Ok(())
        }
    }

    impl Outcome<()> for crate::Result<()> {
        fn into_result(self) -> crate::Result<()> {
            self
        }
    }

    /// `#[filter]`: the records `keep` keeps, copied on as they are.
    pub fn filter<O: Outcome<bool>>(
        batch: &Batch,
        out: &mut BatchBuilder,
        keep: impl Fn(&RecordRef) -> O,
    ) -> crate::Result<()> {
        for r in batch {
            if keep(&r).into_result()? {
                out.push_ref(&r);
            }
        }
        Ok(())
    }

    /// `#[map]`: every record with the value `f` writes in place.
    pub fn map<O: Outcome<()>>(
        batch: &Batch,
        out: &mut BatchBuilder,
        f: impl Fn(&RecordRef, &mut ValueWriter) -> O,
    ) -> crate::Result<()> {
        for r in batch {
            let mut failed = None;
            out.push_mapped(&r, |v| failed = f(&r, v).into_result().err());
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    }

    /// `#[flat_map]`: whatever `f` writes for each record.
    pub fn flat_map<O: Outcome<()>>(
        batch: &Batch,
        out: &mut BatchBuilder,
        f: impl Fn(&RecordRef, &mut BatchBuilder) -> O,
    ) -> crate::Result<()> {
        for r in batch {
            f(&r, out).into_result()?;
        }
        Ok(())
    }

    /// Render an error with its causes, the way the host shows it.
    pub fn render_error(e: crate::Error) -> String {
        format!("{e:#}")
    }

    pub use crate::log::install;

    /// Check a packed batch from the host (`weir:plugin/packed-types`).
    pub fn unpack(batch: ::std::vec::Vec<u8>) -> Result<crate::Batch, String> {
        crate::Batch::from_host(batch)
            .map_err(|e| format!("the host sent a packed batch that does not decode: {e}"))
    }

    /// Encode owned records for the host.
    pub fn pack(batch: &[crate::Record]) -> Vec<u8> {
        let bytes: usize = batch.iter().map(|r| r.value.len() + 16).sum();
        let mut out = crate::BatchBuilder::with_capacity(bytes);
        for r in batch {
            r.write_to(&mut out);
        }
        out.finish().into_bytes()
    }

    /// Run `process_batch` on a packed batch from the host: the output buffer starts at the
    /// input's size, so a filter or a map does not grow it.
    pub fn process<T: crate::Operator>(
        plugin: &mut T,
        batch: ::std::vec::Vec<u8>,
    ) -> crate::Result<Vec<u8>> {
        let batch = unpack(batch).map_err(crate::Error::msg)?;
        let mut out = crate::BatchBuilder::with_capacity(batch.body_len());
        plugin.process_batch(&batch, &mut out)?;
        Ok(out.finish().into_bytes())
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __glue_common {
    ($ty:ty) => {
        struct __WeirPlugin;

        ::std::thread_local! {
            static __WEIR_INSTANCE: ::std::cell::RefCell<::core::option::Option<$ty>> =
                const { ::std::cell::RefCell::new(::core::option::Option::None) };
        }

        fn __weir_with<R>(
            f: impl FnOnce(&mut $ty) -> $crate::Result<R>,
        ) -> ::core::result::Result<R, ::std::string::String> {
            __WEIR_INSTANCE.with(|cell| {
                let mut slot = cell.borrow_mut();
                let plugin = slot
                    .as_mut()
                    .ok_or_else(|| "plugin called before open".to_string())?;
                f(plugin).map_err($crate::__private::render_error)
            })
        }

        fn __weir_open(
            cfg: ::std::string::String,
            ctx: weir::plugin::types::Context,
            build: impl FnOnce(&$crate::Config, &$crate::Context) -> $crate::Result<$ty>,
        ) -> ::core::result::Result<(), ::std::string::String> {
            $crate::__private::install(|level, msg| {
                use weir::plugin::host_log::Level as L;
                let level = match level {
                    $crate::log::Level::Trace => L::Trace,
                    $crate::log::Level::Debug => L::Debug,
                    $crate::log::Level::Info => L::Info,
                    $crate::log::Level::Warn => L::Warn,
                    $crate::log::Level::Error => L::Error,
                };
                weir::plugin::host_log::log(level, msg);
            });
            let ctx = $crate::Context {
                node: ctx.node,
                subtask: ctx.subtask,
                parallelism: ctx.parallelism,
            };
            let cfg =
                $crate::Config::from_document(&cfg).map_err($crate::__private::render_error)?;
            let plugin = build(&cfg, &ctx).map_err($crate::__private::render_error)?;
            __WEIR_INSTANCE.with(|cell| *cell.borrow_mut() = ::core::option::Option::Some(plugin));
            Ok(())
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __glue_state {
    ($ty:ty, $trait:path) => {
        impl exports::weir::plugin::state::Guest for __WeirPlugin {
            /// The cached keyed-state writes go to the host first: the host checkpoints its
            /// keyed state right after this call.
            fn snapshot() -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::keyed::flush()?;
                __weir_with(|p| <$ty as $trait>::snapshot(p))
            }
            /// The writes of `open` go to the host before `restore` may replace the handles
            /// that hold them.
            fn restore(
                state: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::keyed::flush()?;
                __weir_with(|p| <$ty as $trait>::restore(p, &state))
            }
        }
    };
}

/// Route `weir_sdk::time` to the host's 0.2.0 imports of an operator.
#[doc(hidden)]
#[macro_export]
macro_rules! __glue_timers {
    () => {
        fn __weir_install_time() {
            use weir::plugin::timers as t;
            fn to_host(x: &$crate::Timer) -> t::Timer {
                t::Timer {
                    domain: match x.domain {
                        $crate::TimeDomain::EventTime => t::TimeDomain::EventTime,
                        $crate::TimeDomain::ProcessingTime => t::TimeDomain::ProcessingTime,
                    },
                    key: x.key.clone(),
                    timestamp: x.timestamp,
                }
            }
            $crate::time::install($crate::time::Host {
                register: |x| t::register(&to_host(x)),
                delete: |x| t::delete(&to_host(x)),
                watermark: t::current_watermark,
                now: t::current_processing_time,
                late: |records| {
                    let records: ::std::vec::Vec<weir::plugin::types::Record> = records
                        .into_iter()
                        .map(|r| weir::plugin::types::Record {
                            key: r.key,
                            value: r.value,
                            timestamp: r.timestamp,
                            headers: r
                                .headers
                                .into_iter()
                                .map(|(key, value)| weir::plugin::types::Header { key, value })
                                .collect(),
                        })
                        .collect();
                    weir::plugin::late::emit(&records)
                },
                emit_watermark: |_| {},
            });
        }

        fn __weir_install_keyed() {
            use weir::plugin::keyed_state as k;
            fn scope(state: &str, key: &[u8]) -> k::Scope {
                k::Scope {
                    state: state.to_owned(),
                    key: key.to_vec(),
                }
            }
            $crate::keyed::install($crate::keyed::Host {
                get: |s, key| k::get(&scope(s, key)),
                map_get: |s, key, mk| k::map_get(&scope(s, key), mk),
                map_entries: |s, key, after, limit| k::map_entries(&scope(s, key), after, limit),
                keys: |s, after, limit| k::keys(s, after, limit),
                apply: |changes| {
                    use $crate::keyed::Change as C;
                    let changes: ::std::vec::Vec<k::Change> = changes
                        .into_iter()
                        .map(|c| match c {
                            C::Set(n, key, v) => k::Change::Set((k::Scope { state: n, key }, v)),
                            C::Clear(n, key) => k::Change::Clear(k::Scope { state: n, key }),
                            C::Put(n, key, mk, v) => {
                                k::Change::Put((k::Scope { state: n, key }, mk, v))
                            }
                            C::Remove(n, key, mk) => {
                                k::Change::Remove((k::Scope { state: n, key }, mk))
                            }
                        })
                        .collect();
                    k::apply(&changes)
                },
            });
        }

        fn __weir_fired(
            fired: ::std::vec::Vec<weir::plugin::timers::Timer>,
        ) -> ::std::vec::Vec<$crate::Timer> {
            use weir::plugin::timers as t;
            fired
                .into_iter()
                .map(|x| $crate::Timer {
                    domain: match x.domain {
                        t::TimeDomain::EventTime => $crate::TimeDomain::EventTime,
                        t::TimeDomain::ProcessingTime => $crate::TimeDomain::ProcessingTime,
                    },
                    key: x.key,
                    timestamp: x.timestamp,
                })
                .collect()
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __glue_source {
    ($ty:ty) => {
        $crate::__glue_common!($ty);
        $crate::__glue_state!($ty, $crate::Source);
        impl exports::weir::plugin::packed_source::Guest for __WeirPlugin {
            fn open(
                cfg: ::std::string::String,
                ctx: weir::plugin::types::Context,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::time::install($crate::time::Host {
                    register: |_| {},
                    delete: |_| {},
                    watermark: || $crate::time::NO_WATERMARK,
                    now: || 0,
                    late: |_| {},
                    emit_watermark: weir::plugin::watermarks::emit,
                });
                __weir_open(cfg, ctx, <$ty as $crate::Source>::open)
            }
            fn poll(
                max: u32,
            ) -> ::core::result::Result<
                exports::weir::plugin::packed_source::PollResult,
                ::std::string::String,
            > {
                use exports::weir::plugin::packed_source::PollResult;
                let polled = __weir_with(|p| <$ty as $crate::Source>::poll(p, max as usize))?;
                Ok(match polled {
                    $crate::Poll::Batch(batch) => {
                        PollResult::Batch($crate::__private::pack(&batch))
                    }
                    $crate::Poll::Idle => PollResult::Idle,
                    $crate::Poll::End => PollResult::End,
                })
            }
        }
        export!(__WeirPlugin);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __glue_operator {
    ($ty:ty) => {
        $crate::__glue_common!($ty);
        $crate::__glue_state!($ty, $crate::Operator);
        $crate::__glue_timers!();

        /// A call into the operator: refused after a failed one (whose unsent keyed-state
        /// writes were dropped), its own writes cached until a flush if it succeeds.
        fn __weir_call<R>(
            f: impl FnOnce(&mut $ty) -> $crate::Result<R>,
        ) -> ::core::result::Result<R, ::std::string::String> {
            $crate::keyed::usable()?;
            let r = __weir_with(f);
            $crate::keyed::end_call(r.is_ok())?;
            r
        }

        impl exports::weir::plugin::packed_operator::Guest for __WeirPlugin {
            fn open(
                cfg: ::std::string::String,
                ctx: weir::plugin::types::Context,
            ) -> ::core::result::Result<(), ::std::string::String> {
                __weir_install_time();
                __weir_install_keyed();
                let r = __weir_open(cfg, ctx, <$ty as $crate::Operator>::open);
                $crate::keyed::end_call(r.is_ok())?;
                r
            }
            fn on_timers(
                fired: ::std::vec::Vec<weir::plugin::timers::Timer>,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                let fired = __weir_fired(fired);
                __weir_call(|p| <$ty as $crate::Operator>::on_timers(p, fired))
                    .map(|out| $crate::__private::pack(&out))
            }
            fn finish() -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                __weir_call(|p| <$ty as $crate::Operator>::finish(p))
                    .map(|out| $crate::__private::pack(&out))
            }
            fn process(
                batch: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                __weir_call(|p| $crate::__private::process(p, batch))
            }
            fn on_watermark(
                ts: i64,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                __weir_call(|p| <$ty as $crate::Operator>::on_watermark(p, ts))
                    .map(|out| $crate::__private::pack(&out))
            }
        }
        export!(__WeirPlugin);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __glue_sink {
    ($ty:ty) => {
        $crate::__glue_common!($ty);
        $crate::__glue_state!($ty, $crate::Sink);
        impl exports::weir::plugin::packed_sink::Guest for __WeirPlugin {
            fn open(
                cfg: ::std::string::String,
                ctx: weir::plugin::types::Context,
            ) -> ::core::result::Result<(), ::std::string::String> {
                __weir_open(cfg, ctx, <$ty as $crate::Sink>::open)
            }
            fn write(
                batch: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), ::std::string::String> {
                let batch = $crate::__private::unpack(batch)?;
                __weir_with(|p| <$ty as $crate::Sink>::write_batch(p, &batch))
            }
            fn finish() -> ::core::result::Result<(), ::std::string::String> {
                __weir_with(|p| <$ty as $crate::Sink>::finish(p))
            }
            fn prepare(checkpoint: u64) -> ::core::result::Result<(), ::std::string::String> {
                __weir_with(|p| <$ty as $crate::Sink>::prepare(p, checkpoint))
            }
            fn commit(checkpoint: u64) -> ::core::result::Result<(), ::std::string::String> {
                __weir_with(|p| <$ty as $crate::Sink>::commit(p, checkpoint))
            }
            fn abort(checkpoint: u64) {
                let _ = __weir_with(|p| {
                    <$ty as $crate::Sink>::abort(p, checkpoint);
                    Ok(())
                });
            }
        }
        export!(__WeirPlugin);
    };
}
