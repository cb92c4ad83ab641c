//! Event time: watermark strategies and generators ([`watermarks`]), the timers of operator
//! subtasks ([`timers`]), and what a subtask keeps of its time in a checkpoint.
//!
//! Invariant: event time only moves forward. Watermarks, the generators that make them and the
//! timers they fire are part of every checkpoint, so a restore continues from the same time.

pub mod timers;
pub mod watermarks;

use serde::{Deserialize, Serialize};

/// Marks the state of a 0.2.0 operator: its own bytes plus the host-kept timers and
/// watermark. State without it (from a 0.1.0 build of the plugin) is the plugin's bytes alone.
pub const V2_STATE: &[u8; 8] = b"weir-et\x02";

/// What a 0.2.0 operator's snapshot holds besides the plugin's bytes.
#[derive(Clone, Serialize, Deserialize)]
pub struct TimedState {
    pub watermark: i64,
    pub timers: timers::TimerQueue,
    #[serde(with = "serde_bytes")]
    pub plugin: Vec<u8>,
}

impl TimedState {
    /// Decode a 0.2.0 operator's snapshot; `None` if `state` is not one.
    pub fn decode(state: &[u8]) -> Option<Result<Self, String>> {
        let rest = state.strip_prefix(V2_STATE.as_slice())?;
        Some(
            postcard::from_bytes(rest).map_err(|e| format!("the stored timers do not decode: {e}")),
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, V2_STATE.to_vec()).expect("encoding into a Vec cannot fail")
    }
}

/// The watermark that ends event time: the input ended, everything is complete.
pub const END_OF_TIME: i64 = i64::MAX;

/// Suffix of the uid under which a subtask's time is stored beside its node's state.
const TIME_SUFFIX: &str = "@time";

/// The uid a subtask's time of node `uid` is stored under.
pub fn time_uid(uid: &str) -> String {
    format!("{uid}{TIME_SUFFIX}")
}

/// The node a stored uid belongs to, and whether it is the node's time rather than its state.
pub fn node_of(stored: &str) -> (&str, bool) {
    match stored.strip_suffix(TIME_SUFFIX) {
        Some(node) => (node, true),
        None => (stored, false),
    }
}

/// What one subtask keeps of event time in a checkpoint (under `<uid>@time`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskTime {
    /// The subtask's input watermark (operators and sinks): restored, it never goes back.
    pub input: i64,
    /// Its watermark generator, if the node has a strategy or emits watermarks itself.
    pub generator: Option<watermarks::GeneratorState>,
}

impl SubtaskTime {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding into a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("stored event time does not decode: {e}"))
    }
}
