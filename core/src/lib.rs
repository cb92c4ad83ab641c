//! weir-core: what a stream job is made of, with no engine, broker or store beneath it.
//!
//! # Layout
//! - [`record`]: one owned [`record::Record`] and its headers.
//! - [`batch`]: the packed batch the runtime carries from source to sink (`weir-batch`), and
//!   its conversions to owned records.
//! - [`groups`]: key groups and the stable hash that `hash` edges and keyed state agree on.
//! - [`time`]: event time as data: watermark strategies and generators, timers, what a subtask
//!   keeps of its time in a checkpoint.
//! - [`node`]: the node contract: the source, operator and sink traits the runtime drives.
//! - [`error`]: why a node failed, whose failure it is and whether a restart can cure it.
//! - [`checksum`]: the length and CRC-32 every stored blob is checked against.
//! - [`text`]: outside text made safe to show in one line.
//!
//! Invariant: this crate depends on no Wasm engine, Kafka client or storage engine (wasmtime,
//! rdkafka, sled, redb); the host's layers above it plug those in.

pub mod batch;
pub mod checksum;
pub mod error;
pub mod groups;
pub mod node;
pub mod record;
pub mod text;
pub mod time;

pub use error::{Call, Cause, Domain, NodeError, Retry};
pub use record::{Header, Record};
