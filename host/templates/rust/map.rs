//! {{name}}: a weir map (a function plugin). Upper-cases every value, written straight into the
//! output batch; key, timestamp and headers stay.

use weir_sdk::{RecordRef, ValueWriter, map};

#[map]
fn upper(r: &RecordRef, value: &mut ValueWriter) {
    value.extend_from_slice(r.value);
    value.as_mut_slice().make_ascii_uppercase();
}
