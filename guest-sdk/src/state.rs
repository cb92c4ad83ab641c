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

/// What marks state bytes that carry a version (see [`encode_versioned`]).
const VERSIONED: &[u8] = b"weir-state-v\0";

/// Encode `value` as the state of a build whose state encoding is `version`: version 0 is the
/// plain encoding (what every build wrote before versions existed), any other is marked and
/// numbered so a later build can tell what it is reading.
pub fn encode_versioned<T: Serialize>(value: &T, version: u32) -> Result<Vec<u8>> {
    if version == 0 {
        return encode(value);
    }
    let mut out = VERSIONED.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    postcard::to_extend(value, out).context("could not encode the plugin state")
}

/// The version state bytes were written with, and the encoding itself.
pub fn split_version(bytes: &[u8]) -> (u32, &[u8]) {
    match bytes.strip_prefix(VERSIONED) {
        Some(rest) if rest.len() >= 4 => {
            let (v, body) = rest.split_at(4);
            (u32::from_le_bytes(v.try_into().expect("four bytes")), body)
        }
        _ => (0, bytes),
    }
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
    fn versioned_state_says_its_version_and_version_zero_is_plain() {
        let v = vec![1u64, 2, 3];
        assert_eq!(encode_versioned(&v, 0).unwrap(), encode(&v).unwrap());
        assert_eq!(
            split_version(&encode(&v).unwrap()),
            (0, &encode(&v).unwrap()[..])
        );
        let bytes = encode_versioned(&v, 7).unwrap();
        let (version, body) = split_version(&bytes);
        assert_eq!(version, 7);
        assert_eq!(decode::<Vec<u64>>(body).unwrap(), v);
    }

    #[test]
    fn state_round_trips_and_garbage_is_an_error() {
        let mut m: HashMap<String, u64> = HashMap::new();
        m.insert("weir".into(), 3);
        let bytes = encode(&m).unwrap();
        assert_eq!(decode::<HashMap<String, u64>>(&bytes).unwrap(), m);
        assert!(decode::<HashMap<String, u64>>(&[0xff, 0xff, 0xff]).is_err());
    }
}
