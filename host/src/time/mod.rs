//! Event time: watermark strategies and generators ([`watermarks`]), the timers of operator
//! subtasks ([`timers`]), and what a subtask keeps of its time in a checkpoint.
//!
//! Invariant: event time only moves forward. Watermarks, the generators that make them and the
//! timers they fire are part of every checkpoint, so a restore continues from the same time.

pub mod timers;
pub mod watermarks;

use serde::{Deserialize, Serialize};

/// The watermark that ends event time: the input ended, everything is complete.
pub const END_OF_TIME: i64 = i64::MAX;

/// Suffix of the uid under which a subtask's time is stored beside its node's state.
pub const TIME_SUFFIX: &str = "@time";

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
