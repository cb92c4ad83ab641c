//! End-to-end tests: the real `weir` binary, real plugin components built from source, real
//! files. One test binary, so the guests are built once per run.

mod checkpoints;
mod common;
mod connectors;
mod event_time;
mod hostile;
mod identity;
mod kafka;
mod keyed;
mod languages;
mod nexmark;
mod operations;
mod recovery;
mod sandbox;
mod validate;
mod wordcount;
