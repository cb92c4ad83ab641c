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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn state_round_trips_and_garbage_is_an_error() {
        let mut m: HashMap<String, u64> = HashMap::new();
        m.insert("weir".into(), 3);
        let bytes = encode(&m).unwrap();
        assert_eq!(decode::<HashMap<String, u64>>(&bytes).unwrap(), m);
        assert!(decode::<HashMap<String, u64>>(&[0xff, 0xff, 0xff]).is_err());
    }
}
