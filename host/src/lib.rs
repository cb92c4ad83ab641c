//! weir-host: runs a pipeline of sandboxed WebAssembly sources, operators and sinks.
//!
//! # Layout
//! - [`config`]: the pipeline file (TOML) → a validated [`config::PipelineSpec`].
//! - [`graph`]: the job graph: nodes, their plugins, parallelism and edges; no cycles.
//! - [`plugin`]: the wasmtime engine, the compiled-component cache, the sandbox (WASI grants,
//!   memory ceiling, time budget per call) and typed calls into plugins.
//! - [`protected`]: the host's own files (state, cache, pipeline, plugins) that no grant may reach.
//! - [`builtin`]: the built-in plugins, compiled into this binary.
//! - [`connector`]: connectors native to the host (Kafka), beside the Wasm plugins.
//! - [`batch`]: batches as the runtime carries them, packed from source to sink.
//! - [`runtime`]: one task per subtask, bounded channels, in-band [`runtime::Message`]s, barrier
//!   alignment; runs a job to its end or its first failure.
//! - [`checkpoint`]: checkpoint settings, restart strategies, savepoints, matching state to nodes.
//! - [`state`]: the sled store of checkpoints: blobs with checksums, metadata, retention.
//! - [`keyed`]: keyed state in key groups: the live store per subtask, incremental pieces, queries.
//! - [`time`]: event time: watermark strategies and generators, operator timers.
//! - [`metrics`]: per node and subtask counters, live progress and the end-of-run summary.
//! - [`live`]: the running job as the HTTP API shows it: graph, status, checkpoints, restarts.
//! - [`http`]: the job's HTTP server: JSON API, Prometheus `/metrics`, dashboard, control.
//! - [`bench`]: the benchmark workload and its native twins.
//! - [`cli`]: the `weir` commands.
//!
//! Invariant: nothing a plugin does (trap, out-of-memory, endless loop) panics or aborts the host;
//! it ends the run with an error that names the node, the plugin and the cause.

pub mod batch;
pub mod bench;
pub mod builtin;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod connector;
pub mod contained;
pub mod graph;
pub mod http;
pub mod keyed;
pub mod live;
pub mod metrics;
pub mod outputs;
pub mod plugin;
pub mod protected;
pub mod restart;
pub mod runtime;
pub mod state;
pub mod swap;
pub mod time;
