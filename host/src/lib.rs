//! weir-host: runs a pipeline of sandboxed WebAssembly sources, operators and sinks.
//!
//! # Layout
//! Lowest layer first; a module imports only from layers below it (`tests/layers.rs` checks,
//! docs/ARCHITECTURE.md explains). Beneath them all: `weir-core` (records, batches, key groups,
//! event time, the node contract, `NodeError`).
//! - [`config`]: the pipeline file (TOML) → a validated [`config::PipelineSpec`], and its
//!   `[checkpoint]` settings. [`contained`]: a dependency's panics as errors. [`protected`]: the
//!   host's own files (state, cache, pipeline, plugins) that no grant may reach. [`metrics`]: per
//!   node and subtask counters, live progress and the end-of-run summary.
//! - [`builtin`]: the built-in plugins, compiled into this binary. [`restart`]: restart
//!   strategies, and failures that repeat on the same input. [`keyed`]: keyed state in key
//!   groups: the live store per subtask, incremental pieces, queries.
//! - [`state`]: the sled store of checkpoints: blobs with checksums, metadata, retention.
//! - [`runtime`]: one task per subtask, bounded channels, in-band [`runtime::Message`]s, barrier
//!   alignment, chaining, the coordinator; runs a job to its end or its first failure.
//! - [`plugin`]: the wasmtime engine, the compiled-component cache, the sandbox (WASI grants,
//!   memory ceiling, time budget per call), typed calls into plugins, and plugins as nodes.
//!   [`connector`]: connectors native to the host (Kafka, Nexmark), beside the Wasm plugins.
//!   [`bench`]: the benchmark workload and its native twins.
//! - [`graph`]: the job graph: nodes, their plugins, parallelism and edges; each node's factory
//!   and the runtime's job. [`swap`]: live plugin swap.
//! - [`checkpoint`]: checkpoint hooks, savepoints, job identity, matching state to nodes.
//!   [`outputs`]: locks on file outputs. [`live`]: the running job as the HTTP API shows it.
//! - [`http`]: the job's HTTP server: JSON API, Prometheus `/metrics`, dashboard, control.
//!   [`supervisor`]: a job's attempts one after another: resume, swap, restart or stop.
//! - [`cli`]: the `weir` commands.
//!
//! Invariant: nothing a plugin does (trap, out-of-memory, endless loop) panics or aborts the host;
//! it ends the run with an error that names the node, the plugin and the cause.

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
pub mod supervisor;
pub mod swap;
