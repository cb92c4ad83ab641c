#!/usr/bin/env bash
# Build {{name}}.wasm from plugin.c. Needs clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32
# (apt) and wit-bindgen-cli 0.63 (cargo install wit-bindgen-cli --version 0.63.0). Built against
# {{wit}} ({{contract}}), the newest contract for this kind in C.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
weir="${WEIR_HOME:-{{weir}}}"
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
wit-bindgen c "$weir/{{wit}}" --world {{world}} --out-dir "$gen" > /dev/null
linker="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld"
clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 {{cflags}}\
  -DWEIR_WORLD={{cworld}} -DWEIR_WORLD_H='"{{cworld}}.h"' -I "$gen" -I "$weir/guest-sdk/c" \
  "$here/plugin.c" "$weir/guest-sdk/c/weir.c" "$gen/{{cworld}}.c" "$gen/{{cworld}}_component_type.o" \
  -fuse-ld="$linker" -Wl,--wasi-adapter=reactor -o "$here/{{name}}.wasm"
