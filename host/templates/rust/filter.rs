//! {{name}}: a weir filter (a function plugin). Keeps the records whose value is longer than
//! five bytes; the records it keeps go on unchanged, read and written without a copy of their own.

use weir_sdk::{RecordRef, filter};

#[filter]
fn keep(r: &RecordRef) -> bool {
    r.value.len() > 5
}
