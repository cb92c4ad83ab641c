//! How keyed state is laid out in storage keys:
//! `group (u16 BE) · name length (u8) · name · key length (u32 BE) · key · kind (u8) · map key`,
//! kind 0 a value (value and list state), kind 1 a map entry. Everything of one key group,
//! one state of it, and one key of that state is a contiguous range, so a key group is moved
//! and checkpointed by prefix, and a state's keys are listed in order.
//!
//! Invariant: the layout is injective (lengths before every variable part), so two different
//! (group, state, key, map key) never share a storage key or a prefix by accident.

use super::KeyedError;
use weir_core::groups::KeyGroup;

/// A value (value or list state).
pub const VALUE: u8 = 0;
/// One entry of map state.
pub const MAP: u8 = 1;

/// `group · name`: every key of state `name` in `group`.
pub fn state_prefix(group: KeyGroup, name: &str) -> Result<Vec<u8>, KeyedError> {
    if name.len() > 255 {
        return Err(KeyedError::Name(name.chars().take(40).collect()));
    }
    let mut k = Vec::with_capacity(3 + name.len() + 4 + 32);
    k.extend_from_slice(&group.to_be_bytes());
    k.push(name.len() as u8);
    k.extend_from_slice(name.as_bytes());
    Ok(k)
}

/// `group · name · key`: everything state `name` holds for `key`.
pub fn scope_prefix(group: KeyGroup, name: &str, key: &[u8]) -> Result<Vec<u8>, KeyedError> {
    let mut k = state_prefix(group, name)?;
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    Ok(k)
}

/// The storage key of the value of (`name`, `key`).
pub fn value_key(group: KeyGroup, name: &str, key: &[u8]) -> Result<Vec<u8>, KeyedError> {
    let mut k = scope_prefix(group, name, key)?;
    k.push(VALUE);
    Ok(k)
}

/// The storage key of map entry `map_key` of (`name`, `key`).
pub fn map_key(
    group: KeyGroup,
    name: &str,
    key: &[u8],
    map_key: &[u8],
) -> Result<Vec<u8>, KeyedError> {
    let mut k = scope_prefix(group, name, key)?;
    k.push(MAP);
    k.extend_from_slice(map_key);
    Ok(k)
}

/// A storage key taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    pub group: KeyGroup,
    pub name: &'a str,
    pub key: &'a [u8],
    /// `None` for a value, the map key for a map entry.
    pub map_key: Option<&'a [u8]>,
}

/// Take a storage key apart; `None` if it is not one this layout wrote.
pub fn parse(k: &[u8]) -> Option<Parts<'_>> {
    let group = u16::from_be_bytes(k.get(0..2)?.try_into().ok()?);
    let nlen = *k.get(2)? as usize;
    let name = std::str::from_utf8(k.get(3..3 + nlen)?).ok()?;
    let at = 3 + nlen;
    let klen = u32::from_be_bytes(k.get(at..at + 4)?.try_into().ok()?) as usize;
    let key = k.get(at + 4..at + 4 + klen)?;
    let rest = k.get(at + 4 + klen..)?;
    let map_key = match rest.split_first()? {
        (&VALUE, []) => None,
        (&MAP, mk) => Some(mk),
        _ => return None,
    };
    Some(Parts {
        group,
        name,
        key,
        map_key,
    })
}

/// The group a storage key belongs to.
pub fn group_of_storage_key(k: &[u8]) -> KeyGroup {
    u16::from_be_bytes([k[0], k[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_prefixes_nest() {
        let v = value_key(7, "count", b"weir").unwrap();
        let m = map_key(7, "count", b"weir", b"x").unwrap();
        let p = scope_prefix(7, "count", b"weir").unwrap();
        assert!(v.starts_with(&p) && m.starts_with(&p));
        assert!(p.starts_with(&state_prefix(7, "count").unwrap()));
        let parts = parse(&m).unwrap();
        assert_eq!(
            (parts.group, parts.name, parts.key, parts.map_key),
            (7, "count", &b"weir"[..], Some(&b"x"[..]))
        );
        assert_eq!(parse(&v).unwrap().map_key, None);
        // A key that is a prefix of another does not share its scope.
        assert!(!value_key(7, "count", b"weirs").unwrap().starts_with(&p));
        assert!(state_prefix(0, &"x".repeat(256)).is_err());
    }
}
