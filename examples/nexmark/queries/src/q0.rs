//! q0, pass-through: every bid, as it is (Nexmark's measure of the cost of the pipeline itself).

use weir_sdk::{BatchBuilder, RecordRef};

pub fn run(r: &RecordRef, out: &mut BatchBuilder) {
    if crate::bid::is_bid(r.value) {
        out.push_ref(r);
    }
}
