//! Plugins: the wasmtime engine, loading components (through the on-disk cache), telling their
//! kind from their exports, and instantiating them in a sandbox.
//!
//! Invariant: one [`PluginHost`] (one engine, one epoch ticker) serves a whole run; every plugin
//! instance gets its own `Store`, so no two instances share memory or WASI state.

mod bindings;
mod cache;
mod convert;
mod errno;
mod instance;
pub mod node;
mod sandbox;
mod template;
pub mod text;

pub use instance::{
    InstanceSpec, Limits, OperatorInstance, ReplyLimits, SinkInstance, SourceInstance,
};
pub use sandbox::{DEFAULT_HANDLES, SandboxSpec};
pub use weir_core::node::Polled;
pub use weir_core::{Call, Cause, Domain, Header, NodeError, Record};

use crate::config::NodeKind;
use sandbox::HostState;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

/// How often the epoch advances; time budgets are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The package every plugin world belongs to.
pub const WIT_PACKAGE: &str = "weir:plugin";
/// Its first version, as it appears in export names.
pub const WIT_VERSION: &str = "0.1.0";
/// The event-time version (`wit/v0.2`), loaded beside the first.
pub const WIT_VERSION_2: &str = "0.2.0";
/// Config as one document (`wit/v0.3`), loaded beside the others.
pub const WIT_VERSION_3: &str = "0.3.0";

/// Which version of the contract a component was built against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    /// `weir:plugin@0.1.0`.
    V1,
    /// `weir:plugin@0.2.0`: timers, watermarks, finish, late output.
    V2,
    /// `weir:plugin@0.3.0`: 0.2.0's calls, the config one JSON document.
    V3,
}

impl Contract {
    pub fn version(self) -> &'static str {
        match self {
            Contract::V1 => WIT_VERSION,
            Contract::V2 => WIT_VERSION_2,
            Contract::V3 => WIT_VERSION_3,
        }
    }

    /// Operators of this contract have timers, a watermark, `finish` and keyed state.
    pub fn timed(self) -> bool {
        self != Contract::V1
    }
}

/// Where a plugin comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PluginOrigin {
    /// Compiled into this binary (see [`crate::builtin`]).
    Builtin { kind: NodeKind, name: &'static str },
    /// A `.wasm` component file.
    File(PathBuf),
}

impl std::fmt::Display for PluginOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginOrigin::Builtin { kind, name } => write!(f, "built-in {kind} `{name}`"),
            PluginOrigin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Failure to load, check or run a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {error}")]
    Read {
        path: PathBuf,
        // Not `source`: the message already carries it, and a source would print it twice.
        error: std::io::Error,
    },
    #[error("{origin} is not a usable WebAssembly component: {message}")]
    Compile {
        origin: PluginOrigin,
        message: String,
    },
    #[error(
        "{origin} is not a weir plugin: it exports none of the weir:plugin source, operator or sink interfaces (exports: {exports})"
    )]
    NotAPlugin {
        origin: PluginOrigin,
        exports: String,
    },
    #[error(
        "{origin} is an incomplete weir plugin: {message} (build it with this weir's SDK, against its WIT)"
    )]
    Incomplete {
        origin: PluginOrigin,
        message: String,
    },
    #[error(
        "{origin} imports what weir does not provide, so it cannot run here: {message} (weir provides WASI 0.2 and weir:plugin/host-log; build the plugin for wasm32-wasip2 against this weir's WIT)"
    )]
    Imports {
        origin: PluginOrigin,
        message: String,
    },
    #[error("node `{node}` ({origin}) could not start: {message}")]
    Instantiate {
        node: String,
        origin: PluginOrigin,
        message: String,
    },
    #[error("node `{node}`[{subtask}] ({origin}) {cause} (in `{call}`)")]
    Call {
        node: String,
        subtask: u32,
        origin: PluginOrigin,
        call: Call,
        cause: Cause,
    },
    #[error("wasmtime engine: {0}")]
    Engine(String),
}

impl From<PluginError> for NodeError {
    /// A call's failure keeps its call and cause; a plugin that does not load or start is the
    /// pipeline's to fix; an engine failure is weir's.
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Call {
                node,
                subtask,
                origin,
                call,
                cause,
            } => NodeError::Call {
                node,
                subtask,
                origin: origin.to_string(),
                call,
                cause,
            },
            PluginError::Engine(_) => NodeError::Start {
                message: e.to_string(),
                domain: Domain::Weir,
            },
            e => NodeError::Start {
                message: e.to_string(),
                domain: Domain::User,
            },
        }
    }
}

/// A compiled plugin, ready to instantiate.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub origin: PluginOrigin,
    pub component: Component,
    pub kind: NodeKind,
    /// What its instances are made from (pre-linked, exports resolved), shared by all of them.
    pub template: Arc<template::Template>,
}

/// What `weir inspect` shows of a component.
#[derive(Debug)]
pub struct Description {
    pub kind: Option<NodeKind>,
    /// Whether batches cross as one buffer (`packed-*` worlds).
    pub packed: bool,
    pub contract: Contract,
    pub world: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// The engine, linker and compiled-component cache shared by every plugin of a run.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    cache: cache::ComponentCache,
    ticker_stop: Arc<AtomicBool>,
    /// Runs plugin calls made outside any tokio runtime (e.g. a re-commit before a job starts).
    fallback: std::sync::OnceLock<tokio::runtime::Runtime>,
    /// Plugins loaded by this host, by origin.
    loaded: std::sync::Mutex<std::collections::HashMap<PluginOrigin, LoadedPlugin>>,
}

impl PluginHost {
    /// Build the engine (epoch interruption on), link WASI and `host-log`, start the ticker.
    pub fn new() -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // `WEIR_WASM_PROFILER=perfmap`: `perf` names plugins' functions (/tmp/perf-PID.map).
        if std::env::var_os("WEIR_WASM_PROFILER").is_some_and(|v| v == "perfmap") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        bindings::host_log::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        // 0.2.0's imports, then the very same under 0.3.0's names.
        macro_rules! link_event_time {
            ($v:ident) => {{
                use bindings::$v;
                use wasmtime::component::HasSelf;
                let engine_error = |e: wasmtime::Error| PluginError::Engine(e.to_string());
                $v::host_log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                    .map_err(engine_error)?;
                $v::timers::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                    .map_err(engine_error)?;
                $v::late::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                    .map_err(engine_error)?;
                $v::keyed_state::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                    .map_err(engine_error)?;
                $v::watermarks::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                    .map_err(engine_error)?;
            }};
        }
        link_event_time!(v2);
        link_event_time!(v3);
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("weir-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        }
        let cache = cache::ComponentCache::new(&engine);
        Ok(PluginHost {
            engine,
            linker,
            cache,
            ticker_stop,
            fallback: std::sync::OnceLock::new(),
            loaded: Default::default(),
        })
    }

    /// Load (from the cache, or compile) the component at `origin` and tell its kind. A run
    /// loads each origin once, however many nodes use it (a large graph of one plugin holds
    /// one compiled copy).
    pub fn load(&self, origin: &PluginOrigin) -> Result<LoadedPlugin, PluginError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = loaded.get(origin) {
            return Ok(p.clone());
        }
        let plugin = self.load_uncached(origin)?;
        loaded.insert(origin.clone(), plugin.clone());
        Ok(plugin)
    }

    fn load_uncached(&self, origin: &PluginOrigin) -> Result<LoadedPlugin, PluginError> {
        let bytes: std::borrow::Cow<'static, [u8]> = match origin {
            PluginOrigin::Builtin { kind, name } => crate::builtin::bytes(*kind, name)
                .expect("built-in origins are only made for known names")
                .into(),
            PluginOrigin::File(path) => std::fs::read(path)
                .map_err(|error| PluginError::Read {
                    path: path.clone(),
                    error,
                })?
                .into(),
        };
        let component = self
            .cache
            .load(&self.engine, &bytes, origin)
            .map_err(|message| PluginError::Compile {
                origin: origin.clone(),
                message,
            })?;
        let description = self.describe(&component);
        let kind = description.kind.ok_or_else(|| PluginError::NotAPlugin {
            origin: origin.clone(),
            exports: if description.exports.is_empty() {
                "none".into()
            } else {
                description.exports.join(", ")
            },
        })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Imports {
                origin: origin.clone(),
                message: text::escape(&format!("{e:#}"), text::MAX_TEXT),
            })?;
        let form = if description.packed {
            template::Form::Packed
        } else {
            template::Form::List
        };
        let template = template::Template::new(pre, &component, kind, form, description.contract)
            .map_err(|message| PluginError::Incomplete {
            origin: origin.clone(),
            message,
        })?;
        Ok(LoadedPlugin {
            origin: origin.clone(),
            component,
            kind,
            template: Arc::new(template),
        })
    }

    /// The kind, world, imports and exports of `component`.
    pub fn describe(&self, component: &Component) -> Description {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let has = |iface: &str, version: &str| {
            let want = format!("{WIT_PACKAGE}/{iface}@{version}");
            exports.contains(&want)
        };
        let mut found = None;
        'search: for contract in [Contract::V3, Contract::V2, Contract::V1] {
            for kind in [NodeKind::Source, NodeKind::Operator, NodeKind::Sink] {
                let v = contract.version();
                if has(&format!("packed-{kind}"), v) {
                    found = Some((kind, true, contract));
                } else if has(&kind.to_string(), v) {
                    found = Some((kind, false, contract));
                }
                if found.is_some() {
                    break 'search;
                }
            }
        }
        let kind = found.map(|(k, _, _)| k);
        let packed = found.is_some_and(|(_, p, _)| p);
        let contract = found.map_or(Contract::V1, |(_, _, c)| c);
        let world = found.map(|(k, p, c)| {
            let form = if p { "packed-" } else { "" };
            format!("{WIT_PACKAGE}/{form}{k}-plugin@{}", c.version())
        });
        Description {
            kind,
            packed,
            contract,
            world,
            imports,
            exports,
        }
    }

    /// Compile `bytes` (through the cache) without reading a file: for `inspect` and tests.
    pub fn compile(&self, origin: &PluginOrigin, bytes: &[u8]) -> Result<Component, PluginError> {
        self.cache
            .load(&self.engine, bytes, origin)
            .map_err(|message| PluginError::Compile {
                origin: origin.clone(),
                message,
            })
    }

    /// Where compiled components are cached, if anywhere: no grant may reach it.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache.dir()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The runtime plugin calls run on: the caller's, else one of the host's own.
    pub(crate) fn runtime(&self) -> tokio::runtime::Handle {
        tokio::runtime::Handle::try_current().unwrap_or_else(|_| {
            self.fallback
                .get_or_init(|| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .thread_name("weir-plugin-io")
                        .enable_all()
                        .build()
                        .expect("a tokio runtime for plugin calls")
                })
                .handle()
                .clone()
        })
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        // The host may be dropped inside another runtime, where a blocking shutdown panics.
        if let Some(rt) = self.fallback.take() {
            rt.shutdown_background();
        }
    }
}
