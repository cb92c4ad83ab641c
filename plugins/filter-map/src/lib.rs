//! Built-in `filter-map` operator, the benchmark workload: drops the records whose first value
//! byte is a multiple of 4 (a quarter of uniformly spread bytes) and upper-cases the rest.
//! A function plugin: records are read in place and written into one buffer.
//!
//! Invariant: the same logic as `weir bench`'s native baseline, byte for byte, so the two
//! throughputs compare like for like.

use weir_sdk::{BatchBuilder, RecordRef, flat_map};

#[flat_map]
fn filter_map(r: &RecordRef, out: &mut BatchBuilder) {
    if r.value.first().is_some_and(|b| b % 4 != 0) {
        out.push_mapped(r, |v| v.extend(r.value.iter().map(u8::to_ascii_uppercase)));
    }
}
