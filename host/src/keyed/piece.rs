//! Pieces: the immutable files of keyed state. A piece holds one key group of one node, either
//! whole (a base) or as the changes since the piece before it (a delta); a checkpoint's
//! manifest names, per key group, the chain of pieces its state is rebuilt from, base first.
//! A checkpoint writes pieces only for groups that changed and references the rest, which is
//! what makes it incremental.
//!
//! Invariant: a piece is never rewritten; its length and CRC-32 are in every manifest that
//! names it, so a damaged or missing piece is found before anything is restored from it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_core::groups::KeyGroup;

impl PieceMeta {
    /// What the piece's bytes were written with.
    pub fn sum(&self) -> weir_core::checksum::Checksum {
        weir_core::checksum::Checksum {
            len: self.len,
            crc32: self.crc32,
        }
    }
}

/// One piece as a manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceMeta {
    /// The checkpoint that wrote it (with the node and key group, its name in the store).
    pub checkpoint: u64,
    pub len: u64,
    pub crc32: u32,
    /// A base holding the whole group; otherwise the changes since the piece before it.
    pub full: bool,
    /// Entries it holds (puts and, in a delta, removals).
    pub entries: u64,
    /// Where it is stored when not on its own: (segment, offset). A subtask writes all its
    /// deltas of one checkpoint as one segment (one store write instead of one per group);
    /// the segment is named by the first group of the subtask's range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<(KeyGroup, u64)>,
}

/// The pieces one key group is rebuilt from: a base, then deltas in checkpoint order.
pub type Chain = Vec<PieceMeta>;

/// One node's keyed state in one checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedManifest {
    /// The job's key groups when it was written.
    pub max_parallelism: u32,
    /// Key groups holding state; a group without a chain is empty.
    pub groups: BTreeMap<KeyGroup, Chain>,
}

impl KeyedManifest {
    /// Bytes of every piece the state is rebuilt from.
    pub fn bytes(&self) -> u64 {
        self.pieces().map(|(_, p)| p.len).sum()
    }

    /// Bytes of the pieces checkpoint `id` wrote itself (the rest it shares with older ones).
    pub fn bytes_written_by(&self, id: u64) -> u64 {
        self.pieces()
            .filter(|(_, p)| p.checkpoint == id)
            .map(|(_, p)| p.len)
            .sum()
    }

    /// Every (group, piece) named.
    pub fn pieces(&self) -> impl Iterator<Item = (KeyGroup, &PieceMeta)> {
        self.groups
            .iter()
            .flat_map(|(g, chain)| chain.iter().map(move |p| (*g, p)))
    }
}

/// One entry of a piece: a storage key and its value, `None` for a removal (deltas only).
pub type Entry = (Vec<u8>, Option<Vec<u8>>);

/// Encode entries: per entry a varint key length, the key, a varint of value length + 1 (0: a
/// removal), the value.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 20)
        .sum();
    let mut out = Vec::with_capacity(size + 10);
    varint(&mut out, entries.len() as u64);
    for (k, v) in entries {
        varint(&mut out, k.len() as u64);
        out.extend_from_slice(k);
        match v {
            None => varint(&mut out, 0),
            Some(v) => {
                varint(&mut out, v.len() as u64 + 1);
                out.extend_from_slice(v);
            }
        }
    }
    out
}

/// Decode what [`encode`] wrote; a truncated or padded piece is an error.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut at = 0usize;
    let n = read_varint(bytes, &mut at)?;
    let mut out = Vec::with_capacity(n.min(1 << 20) as usize);
    for _ in 0..n {
        let klen = read_varint(bytes, &mut at)? as usize;
        let key = take(bytes, &mut at, klen)?.to_vec();
        let value = match read_varint(bytes, &mut at)? {
            0 => None,
            len => Some(take(bytes, &mut at, len as usize - 1)?.to_vec()),
        };
        out.push((key, value));
    }
    if at != bytes.len() {
        return Err(format!("{} bytes after the last entry", bytes.len() - at));
    }
    Ok(out)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or("truncated")?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a length is too long".into())
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = at.checked_add(n).filter(|e| *e <= bytes.len());
    let end = end.ok_or("truncated")?;
    let s = &bytes[*at..end];
    *at = end;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_an_error() {
        let entries: Vec<Entry> = vec![
            (b"a".to_vec(), Some(b"1".to_vec())),
            (b"b".to_vec(), None),
            (vec![0; 300], Some(vec![7; 200])),
            (b"e".to_vec(), Some(Vec::new())),
        ];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes).unwrap(), entries);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(decode(&padded).is_err());
    }
}
