#!/usr/bin/env bash
# Build wordcount.wasm from wordcount.c: bindings from the WIT, then clang with the wasi-libc
# sysroot, linked into a component by the wasm-component-ld that ships with Rust.
# Needs: clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 (apt) and wit-bindgen-cli 0.63
# (cargo install wit-bindgen-cli --version 0.63.0). Usage: build.sh [OUT.wasm] [SOURCE.c] [WIT_DIR]
# WIT_DIR wit/v0.2 builds against weir:plugin@0.2.0 (event time; defines WEIR_EVENT_TIME).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
out="$(realpath -m "${1:-$here/wordcount.wasm}")"
src="$(realpath "${2:-$here/wordcount.c}")"
wit="$(realpath "${3:-$root/wit}")"
event_time=""
[ "$wit" = "$(realpath "$root/wit/v0.2")" ] && event_time="-DWEIR_EVENT_TIME"
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
wit-bindgen c "$wit" --world operator-plugin --out-dir "$gen" > /dev/null
linker="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld"
clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 $event_time \
  -DWEIR_WORLD=operator_plugin -DWEIR_WORLD_H='"operator_plugin.h"' -I "$gen" -I "$root/guest-sdk/c" \
  "$src" "$root/guest-sdk/c/weir.c" "$gen/operator_plugin.c" \
  "$gen/operator_plugin_component_type.o" \
  -fuse-ld="$linker" -Wl,--wasi-adapter=reactor -o "$out"
