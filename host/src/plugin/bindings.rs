//! The one `bindgen!` site: the host-side types of the plugin worlds (records, contexts, poll
//! results, timers) and the imports the host provides (`host-log`, timers, keyed state, late
//! output, watermarks). Exports are not called through these bindings: the calls are written
//! once, for every world, in `instance.rs`, from the indices `template.rs` resolves.
//!
//! Invariant: every world shares one set of `types` bindings, so a record produced by a source
//! can be handed to an operator without conversion.

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

pub use operator::weir::plugin::host_log;
pub use operator::weir::plugin::types::{Context, Header, Record};

/// The `packed-*` source world, for its `poll-result` (a batch as one `list<u8>`).
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

/// `weir:plugin@0.3.0` (`wit/v0.3`): 0.2.0's packed worlds with the config as one JSON
/// document. Its imports are 0.2.0's, linked a second time under 0.3.0's names; its `types`
/// are 0.1.0's but for `config`, which only `open` takes and the host passes as a string.
pub mod v3 {
    pub mod operator {
        wasmtime::component::bindgen!({
            path: "../wit/v0.3",
            world: "packed-operator-plugin",
            exports: { default: async },
            with: {
                "weir:plugin/types@0.3.0": crate::plugin::bindings::operator::weir::plugin::types,
            },
        });
    }

    pub mod packed_source {
        wasmtime::component::bindgen!({
            path: "../wit/v0.3",
            world: "packed-source-plugin",
            exports: { default: async },
            with: {
                "weir:plugin/types@0.3.0": crate::plugin::bindings::operator::weir::plugin::types,
                "weir:plugin/host-log@0.3.0": super::operator::weir::plugin::host_log,
            },
        });
    }

    pub use operator::weir::plugin::{host_log, keyed_state, late, timers};
    pub use packed_source::weir::plugin::watermarks;
}
