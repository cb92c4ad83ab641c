//! Builds the built-in plugins (plugins/*) to wasm32-wasip2 components and hands their paths to
//! `src/builtin.rs`, which embeds them: the `weir` binary carries its built-ins.
//!
//! The guests build in their own target dir (target/wasm, profile `guest`), so this nested cargo
//! never waits on the lock of the build that runs this script.

use std::path::PathBuf;
use std::process::Command;

/// (env var suffix, package, artifact stem)
const BUILTINS: &[(&str, &str, &str)] = &[
    ("SEQUENCE", "weir-plugin-sequence", "weir_plugin_sequence"),
    (
        "FILE_SOURCE",
        "weir-plugin-file-source",
        "weir_plugin_file_source",
    ),
    (
        "DIRECTORY_SOURCE",
        "weir-plugin-directory-source",
        "weir_plugin_directory_source",
    ),
    (
        "SOCKET_SOURCE",
        "weir-plugin-socket-source",
        "weir_plugin_socket_source",
    ),
    (
        "FILTER_MAP",
        "weir-plugin-filter-map",
        "weir_plugin_filter_map",
    ),
    ("KEY_BY", "weir-plugin-key-by", "weir_plugin_key_by"),
    (
        "STDOUT_SINK",
        "weir-plugin-stdout-sink",
        "weir_plugin_stdout_sink",
    ),
    (
        "FILE_SINK",
        "weir-plugin-file-sink",
        "weir_plugin_file_sink",
    ),
    (
        "BUCKET_SINK",
        "weir-plugin-bucket-sink",
        "weir_plugin_bucket_sink",
    ),
    (
        "SOCKET_SINK",
        "weir-plugin-socket-sink",
        "weir_plugin_socket_sink",
    ),
    (
        "BENCH_WINDOW",
        "weir-plugin-bench-window",
        "weir_plugin_bench_window",
    ),
    (
        "BENCH_COUNT",
        "weir-plugin-bench-count",
        "weir_plugin_bench_count",
    ),
    ("NEXMARK_QUERIES", "nexmark-queries", "nexmark_queries"),
    (
        "BENCH_STATE",
        "weir-plugin-bench-state",
        "weir_plugin_bench_state",
    ),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    println!("cargo:rerun-if-changed=build.rs");
    for dir in [
        "plugins",
        "examples/nexmark",
        "guest-sdk",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = root.join("target").join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (_, package, _) in BUILTINS {
        cmd.args(["-p", package]);
    }
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the built-in plugins");
    if !status.success() {
        panic!(
            "building the built-in plugins for wasm32-wasip2 failed (see above). \
             If the target is missing, run: rustup target add wasm32-wasip2"
        );
    }
    let out = target_dir.join("wasm32-wasip2").join("guest");
    for (var, _, stem) in BUILTINS {
        let path = out.join(format!("{stem}.wasm"));
        assert!(path.exists(), "expected {} after the build", path.display());
        println!("cargo:rustc-env=WEIR_BUILTIN_{var}={}", path.display());
    }
}
