#!/usr/bin/env bash
# The whole test suite: unit tests beside the code, and end-to-end tests that run the real
# `weir` binary on plugin components built from source. Needs only Rust (rustup) on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
# One cargo invocation builds the host, its built-in plugins (host/build.rs) and the test
# binaries; the e2e tests build their guest plugins once (tests/e2e/common.rs).
cargo test --release --locked -p weir-host -p weir-sdk
