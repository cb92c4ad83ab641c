//! Key groups: a job's `max_parallelism` buckets of keys, the unit keyed state is stored,
//! checkpointed and moved in. A key's group is the hash `hash` edges route by; groups map to
//! subtasks in contiguous ranges (Flink's assignment), so a rescale moves whole groups.
//!
//! Invariant: `subtask_of(group_of(k))` is the subtask a `hash` edge sends `k` to, and `range`
//! of that subtask contains the group, for every parallelism up to `max_parallelism`.

use std::ops::Range;

/// Key groups of a job unless its pipeline says otherwise (`[pipeline] max_parallelism`).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;
/// The most key groups a job may have (a group id is 16 bits).
pub const MAX_MAX_PARALLELISM: u32 = 32_768;

/// A key group id, `0 .. max_parallelism`.
pub type KeyGroup = u16;

/// FNV-1a, 64 bit: stable across runs, platforms and Rust versions, so a key always lands on the
/// same subtask (state keyed by subtask stays valid across restarts).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The key group of `key` among `max_parallelism` groups.
pub fn group_of(key: &[u8], max_parallelism: u32) -> KeyGroup {
    (stable_hash(key) % u64::from(max_parallelism)) as KeyGroup
}

/// The subtask (of `parallelism`) that holds key group `group`.
pub fn subtask_of(group: KeyGroup, max_parallelism: u32, parallelism: u32) -> u32 {
    (u64::from(group) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// The key groups subtask `subtask` of `parallelism` holds.
pub fn range(subtask: u32, parallelism: u32, max_parallelism: u32) -> Range<KeyGroup> {
    let (s, p, m) = (
        u64::from(subtask),
        u64::from(parallelism),
        u64::from(max_parallelism),
    );
    let start = (s * m).div_ceil(p);
    let end = ((s + 1) * m).div_ceil(p);
    start as KeyGroup..end as KeyGroup
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_group_once_and_agree_with_routing() {
        for max in [1u32, 7, 128, 1000] {
            for p in 1..=max.min(40) {
                let mut next = 0;
                for s in 0..p {
                    let r = range(s, p, max);
                    assert_eq!(r.start, next, "max {max} p {p} s {s}");
                    assert!(!r.is_empty(), "every subtask holds a group");
                    for g in r.clone() {
                        assert_eq!(subtask_of(g, max, p), s);
                    }
                    next = r.end;
                }
                assert_eq!(u32::from(next), max);
            }
        }
    }

    #[test]
    fn a_key_keeps_its_group_whatever_the_parallelism() {
        let g = group_of(b"weir", 128);
        assert_eq!(g, group_of(b"weir", 128));
        for p in [1, 2, 3, 128] {
            assert!(range(subtask_of(g, 128, p), p, 128).contains(&g));
        }
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
