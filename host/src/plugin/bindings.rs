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

/// `weir:plugin@0.2.0` (`wit/v0.2`): the event-time worlds. Records, configs and contexts are
/// the same types as 0.1.0's (the component model checks them by structure), so one `Record`
/// serves both versions.
pub mod v2 {
    pub mod operator {
        wasmtime::component::bindgen!({
            path: "../wit/v0.2",
            world: "operator-plugin",
            exports: { default: async },
            with: {
                "weir:plugin/types@0.2.0": crate::plugin::bindings::operator::weir::plugin::types,
            },
        });
    }

    pub mod packed_operator {
        wasmtime::component::bindgen!({
            path: "../wit/v0.2",
            world: "packed-operator-plugin",
            exports: { default: async },
            with: {
                "weir:plugin/types@0.2.0": crate::plugin::bindings::operator::weir::plugin::types,
                "weir:plugin/host-log@0.2.0": super::operator::weir::plugin::host_log,
                "weir:plugin/timers@0.2.0": super::operator::weir::plugin::timers,
                "weir:plugin/late@0.2.0": super::operator::weir::plugin::late,
                "weir:plugin/keyed-state@0.2.0": super::operator::weir::plugin::keyed_state,
            },
        });
    }

    pub mod packed_source {
        wasmtime::component::bindgen!({
            path: "../wit/v0.2",
            world: "packed-source-plugin",
            exports: { default: async },
            with: {
                "weir:plugin/types@0.2.0": crate::plugin::bindings::operator::weir::plugin::types,
                "weir:plugin/host-log@0.2.0": super::operator::weir::plugin::host_log,
            },
        });
    }

    pub use operator::weir::plugin::{host_log, keyed_state, late, timers};
    pub use packed_source::weir::plugin::watermarks;
}
