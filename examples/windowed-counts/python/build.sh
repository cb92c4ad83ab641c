#!/usr/bin/env bash
# Build the Python window operator with componentize-py (pip install componentize-py==0.25.1),
# against weir:plugin@0.3.0 (wit/v0.3: event time, config as one document), packed batches.
# Usage: build.sh [OUT.wasm]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../../.."
out="$(realpath -m "${1:-$here/../windowed-counts.wasm}")"
cd "$here"
componentize-py -d "$root/wit/v0.3" -w packed-operator-plugin componentize app \
  -p "$here" -p "$root/guest-sdk/python" -o "$out" > /dev/null
