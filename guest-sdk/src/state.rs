//! The default state encoding: postcard (compact serde) of the plugin type.
//!
//! Invariant: `decode(encode(x)) == x` for every serde type, and bytes that are not a valid
//! encoding are an error, never a half-restored plugin.

use anyhow::{Context as _, Result};
use serde::{Serialize, de::DeserializeOwned};

/// Encode `value` as state bytes.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).context("could not encode the plugin state")
}

/// Decode state bytes produced by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).context("the stored state does not decode into this plugin's type (was it written by an incompatible build?)")
}
