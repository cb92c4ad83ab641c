#!/usr/bin/env bash
# Build wordcount.wasm from app.py with componentize-py (pip install componentize-py==0.25.1).
# Usage: build.sh [OUT.wasm] [MODULE.py] [WIT_DIR]  (WIT_DIR wit/v0.2: weir:plugin@0.2.0, event time)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
out="$(realpath -m "${1:-$here/wordcount.wasm}")"
src="$(realpath "${2:-$here/app.py}")"
wit="$(realpath "${3:-$root/wit}")"
cd "$(dirname "$src")"
# The packed world: a batch crosses as one buffer (guest-sdk/python/weir.py decodes it).
componentize-py -d "$wit" -w packed-operator-plugin componentize "$(basename "$src" .py)" \
  -p "$(dirname "$src")" -p "$root/guest-sdk/python" -o "$out" > /dev/null
