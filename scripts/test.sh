#!/usr/bin/env bash
# The whole test suite: unit tests beside the code, and end-to-end tests that run the real
# `weir` binary on plugin components built from source. Needs only Rust (rustup) on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
cargo build --release --locked --bin weir
cargo test --release --locked -p weir-host -p weir-sdk
