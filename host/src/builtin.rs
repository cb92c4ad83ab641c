//! The built-in plugins, compiled from plugins/* by build.rs and embedded in the binary, so a
//! pipeline can name them (`plugin = "file"`) instead of a `.wasm` path.
//!
//! Invariant: a built-in is an ordinary component run in the same sandbox as any user plugin;
//! being built in grants it nothing.

use crate::config::NodeKind;

/// One built-in plugin.
pub struct Builtin {
    pub kind: NodeKind,
    pub name: &'static str,
    pub about: &'static str,
    pub bytes: &'static [u8],
}

/// Every built-in plugin, by kind and name.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        kind: NodeKind::Source,
        name: "sequence",
        about: "`count` generated records (value = index, padded to `value_size`), or the literal `values` list",
        bytes: include_bytes!(env!("WEIR_BUILTIN_SEQUENCE")),
    },
    Builtin {
        kind: NodeKind::Source,
        name: "file",
        about: "the lines of the file at `path` (in a granted directory); remembers its byte offset",
        bytes: include_bytes!(env!("WEIR_BUILTIN_FILE_SOURCE")),
    },
    Builtin {
        kind: NodeKind::Source,
        name: "directory",
        about: "each file of a granted directory once, in name order, matching `pattern` (exactly-once)",
        bytes: include_bytes!(env!("WEIR_BUILTIN_DIRECTORY_SOURCE")),
    },
    Builtin {
        kind: NodeKind::Source,
        name: "socket",
        about: "newline-delimited lines from a TCP `address` granted in `grants.connect` (at-most-once)",
        bytes: include_bytes!(env!("WEIR_BUILTIN_SOCKET_SOURCE")),
    },
    Builtin {
        kind: NodeKind::Operator,
        name: "filter-map",
        about: "the benchmark workload: drops a quarter of the records, upper-cases the rest",
        bytes: include_bytes!(env!("WEIR_BUILTIN_FILTER_MAP")),
    },
    Builtin {
        kind: NodeKind::Operator,
        name: "key-by",
        about: "keys each record by the `field` of its JSON value, for a `hash` edge after it",
        bytes: include_bytes!(env!("WEIR_BUILTIN_KEY_BY")),
    },
    Builtin {
        kind: NodeKind::Sink,
        name: "stdout",
        about: "prints each value as a line (at-least-once)",
        bytes: include_bytes!(env!("WEIR_BUILTIN_STDOUT_SINK")),
    },
    Builtin {
        kind: NodeKind::Sink,
        name: "file",
        about: "appends each value as a line to the file at `path` (exactly-once, two-phase commit)",
        bytes: include_bytes!(env!("WEIR_BUILTIN_FILE_SINK")),
    },
    Builtin {
        kind: NodeKind::Sink,
        name: "bucketed-file",
        about: "rolling part files in bucket directories under `path` (exactly-once)",
        bytes: include_bytes!(env!("WEIR_BUILTIN_BUCKET_SINK")),
    },
    Builtin {
        kind: NodeKind::Sink,
        name: "socket",
        about: "each value as a line to a TCP `address` granted in `grants.connect` (at-least-once)",
        bytes: include_bytes!(env!("WEIR_BUILTIN_SOCKET_SINK")),
    },
];

/// Embedded for `weir bench` only, never found by [`find`] (pipelines cannot name it): a
/// pass-through operator holding config `bytes` bytes of state (plugins/bench-state).
pub const BENCH_STATE: Builtin = Builtin {
    kind: NodeKind::Operator,
    name: "bench-state",
    about: "weir bench's checkpoint-cost operator",
    bytes: include_bytes!(env!("WEIR_BUILTIN_BENCH_STATE")),
};

/// Embedded for `weir bench` only, like [`BENCH_STATE`]: a keyed tumbling event-time window
/// count through `weir_sdk::window` (plugins/bench-window).
pub const BENCH_WINDOW: Builtin = Builtin {
    kind: NodeKind::Operator,
    name: "bench-window",
    about: "weir bench's window operator",
    bytes: include_bytes!(env!("WEIR_BUILTIN_BENCH_WINDOW")),
};

/// Embedded for `weir bench` only, like [`BENCH_STATE`]: a word count keeping its counts in
/// a `HashMap` or in keyed state, by config `mode` (plugins/bench-count).
pub const BENCH_COUNT: Builtin = Builtin {
    kind: NodeKind::Operator,
    name: "bench-count",
    about: "weir bench's keyed-state word count",
    bytes: include_bytes!(env!("WEIR_BUILTIN_BENCH_COUNT")),
};

/// Embedded for `weir bench --nexmark` only, like [`BENCH_STATE`]: the Nexmark queries of
/// examples/nexmark (config `query`).
pub const NEXMARK_QUERIES: Builtin = Builtin {
    kind: NodeKind::Operator,
    name: "nexmark-queries",
    about: "weir bench's Nexmark queries",
    bytes: include_bytes!(env!("WEIR_BUILTIN_NEXMARK_QUERIES")),
};

/// The built-in `name` of `kind`.
pub fn find(kind: NodeKind, name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.kind == kind && b.name == name)
}

/// The component bytes of the built-in `name` of `kind`.
pub fn bytes(kind: NodeKind, name: &str) -> Option<&'static [u8]> {
    find(kind, name)
        .or(
            [&BENCH_STATE, &BENCH_WINDOW, &BENCH_COUNT, &NEXMARK_QUERIES]
                .into_iter()
                .find(|b| b.kind == kind && b.name == name),
        )
        .map(|b| b.bytes)
}
