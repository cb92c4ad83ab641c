//! The one `bindgen!` site: host-side types and calls for the plugin worlds (both batch forms).
//!
//! Exports are called asynchronously (each call's future can be dropped, which is how a call
//! blocked in a host function is stopped); imports (`host-log`) are plain functions.
//!
//! Invariant: the three worlds share one set of `types` and `host-log` bindings, so a record
//! produced by a source can be handed to an operator without conversion.

pub mod operator {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "operator-plugin",
        exports: { default: async },
    });
}

pub mod source {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "source-plugin",
        exports: { default: async },
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
        exports: { default: async },
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
        exports: { default: async },
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
        exports: { default: async },
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
        exports: { default: async },
            with: {
                "weir:plugin/types": crate::plugin::bindings::operator::weir::plugin::types,
                "weir:plugin/host-log": crate::plugin::bindings::operator::weir::plugin::host_log,
            },
        });
    }
}
