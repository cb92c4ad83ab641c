//! The one `bindgen!` site: host-side types and calls for the plugin worlds (both batch forms).
//!
//! Invariant: the three worlds share one set of `types` and `host-log` bindings, so a record
//! produced by a source can be handed to an operator without conversion.

pub mod operator {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "operator-plugin",
    });
}

pub mod source {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "source-plugin",
        with: {
            "weir:plugin/types": super::operator::weir::plugin::types,
            "weir:plugin/host-log": super::operator::weir::plugin::host_log,
        },
    });
}

pub mod sink {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "sink-plugin",
        with: {
            "weir:plugin/types": super::operator::weir::plugin::types,
            "weir:plugin/host-log": super::operator::weir::plugin::host_log,
        },
    });
}

pub use operator::weir::plugin::host_log;
pub use operator::weir::plugin::types::{Context, Header, Record};

/// The `packed-*` twins of the three worlds: same calls, a batch crosses as one `list<u8>`.
pub mod packed {
    pub mod source {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "packed-source-plugin",
            with: {
                "weir:plugin/types": crate::plugin::bindings::operator::weir::plugin::types,
                "weir:plugin/host-log": crate::plugin::bindings::operator::weir::plugin::host_log,
            },
        });
    }

    pub mod operator {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "packed-operator-plugin",
            with: {
                "weir:plugin/types": crate::plugin::bindings::operator::weir::plugin::types,
                "weir:plugin/host-log": crate::plugin::bindings::operator::weir::plugin::host_log,
            },
        });
    }

    pub mod sink {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "packed-sink-plugin",
            with: {
                "weir:plugin/types": crate::plugin::bindings::operator::weir::plugin::types,
                "weir:plugin/host-log": crate::plugin::bindings::operator::weir::plugin::host_log,
            },
        });
    }
}
