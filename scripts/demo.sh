#!/usr/bin/env bash
# The demo: a streaming word count over examples/wordcount/data/input.txt, through a Wasm operator
# written with the Rust guest SDK, printed to stdout. Needs only Rust (rustup) on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
# The operator is an ordinary plugin: built to a component, loaded by the host at run time.
cargo build --profile guest --target wasm32-wasip2 --target-dir target/wasm -p wordcount
cp target/wasm/wasm32-wasip2/guest/wordcount.wasm examples/wordcount/wordcount.wasm
# --fresh --yes: start over even if an earlier run of the demo left checkpoints behind.
cargo run --release --bin weir -- run --fresh --yes examples/wordcount/pipeline.toml
echo >&2
echo "The weir binary is target/release/weir. Put it on your PATH with:" >&2
echo "  cargo install --path host --locked" >&2
echo "then make a plugin of your own: weir new shout && cd shout && bash build.sh && weir run pipeline.toml" >&2
