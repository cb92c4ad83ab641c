#!/usr/bin/env bash
# The whole test suite: unit tests beside the code, and end-to-end tests that run the real
# `weir` binary on plugin components built from source — in Rust, C, Python and JavaScript.
# Needs only Rust (rustup) on a Debian machine; installs the other guest toolchains itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

rustup target add wasm32-wasip2
# C guests: clang with the wasi-libc sysroot, and wit-bindgen's C generator.
if ! command -v clang-19 > /dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 > /dev/null
fi
if ! wit-bindgen --version 2> /dev/null | grep -q "0.63.0"; then
  cargo install wit-bindgen-cli --version 0.63.0 --locked
fi
# Python guests: componentize-py. JavaScript guests: componentize-js, pinned by package-lock.
if ! componentize-py --version 2> /dev/null | grep -q "0.25.1"; then
  python3 -m pip install -q componentize-py==0.25.1
  # pyenv (if Python comes from it) needs a shim for the new executable.
  if command -v pyenv > /dev/null; then pyenv rehash; fi
fi
[ -x guest-sdk/js/node_modules/.bin/componentize-js ] || (cd guest-sdk/js && npm install --no-audit --no-fund)

# One cargo invocation builds the host, its built-in plugins (host/build.rs) and the test
# binaries; the e2e tests build their guest plugins once (tests/e2e/common.rs), the C, Python and
# JavaScript ones cached across runs in target/lang/.
cargo test --release --locked -p weir-host -p weir-sdk
