//! Which partition a sink sends a record to.
//!
//! Invariant: `default` picks the partition of a keyed record exactly as the Java client's
//! default partitioner does (`toPositive(murmur2(key)) % partitions`), so weir and Java producers
//! put equal keys in the same partition.

/// A sink's partitioner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioner {
    /// murmur2 of the key like the Java client; keyless records round-robin.
    #[default]
    Default,
    /// Every record to the next partition in turn.
    RoundRobin,
    /// Sink subtask i writes to partition i % partitions (Flink's `FlinkFixedPartitioner`).
    Fixed,
}

impl Partitioner {
    /// The partition for a record with `key`, out of `partitions`; `next` is this subtask's
    /// round-robin counter.
    pub fn pick(self, key: Option<&[u8]>, partitions: i32, subtask: u32, next: &mut u32) -> i32 {
        let n = partitions.max(1) as u32;
        let p = match (self, key) {
            (Partitioner::Default, Some(k)) => (murmur2(k) & 0x7fff_ffff) as u32 % n,
            (Partitioner::Fixed, _) => subtask % n,
            (Partitioner::Default | Partitioner::RoundRobin, _) => {
                *next = next.wrapping_add(1);
                *next % n
            }
        };
        p as i32
    }
}

/// The Java client's `Utils.murmur2`: 32-bit MurmurHash2 with seed 0x9747b28c.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // The vectors of Apache Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn partitioners_spread_as_documented() {
        let mut next = 0;
        let p = Partitioner::Default;
        let a = p.pick(Some(b"user-1"), 6, 0, &mut next);
        assert_eq!(a, p.pick(Some(b"user-1"), 6, 3, &mut next), "key decides");
        let rr: Vec<i32> = (0..6)
            .map(|_| Partitioner::RoundRobin.pick(Some(b"k"), 3, 0, &mut next))
            .collect();
        assert_eq!(rr.iter().filter(|p| **p == 0).count(), 2);
        assert_eq!(rr.iter().filter(|p| **p == 2).count(), 2);
        assert_eq!(Partitioner::Fixed.pick(None, 4, 5, &mut next), 1);
    }
}
