#!/usr/bin/env bash
# The word count in Rust, C, Python and JavaScript through the same pipeline, beside native
# Rust, in one run. Needs the guest toolchains that scripts/test.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
mkdir -p target/lang
cargo build --profile guest --target wasm32-wasip2 --target-dir target/wasm -p wordcount
for lang in c python js; do
  bash "examples/wordcount-$lang/build.sh" "target/lang/wordcount-$lang.wasm"
done
cargo run --release --bin weir -- bench --only-operators \
  --operator rust=target/wasm/wasm32-wasip2/guest/wordcount.wasm \
  --operator c=target/lang/wordcount-c.wasm \
  --operator python=target/lang/wordcount-python.wasm \
  --operator js=target/lang/wordcount-js.wasm
