#!/usr/bin/env bash
# Build {{name}}.wasm from app.py (needs: pip install componentize-py==0.25.1), against
# {{wit}} ({{contract}}: the newest contract for this kind) in the packed batch form.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
weir="${WEIR_HOME:-{{weir}}}"
cd "$here"
componentize-py -d "$weir/{{wit}}" -w {{world}} componentize app \
  -p "$here" -p "$weir/guest-sdk/python" -o "$here/{{name}}.wasm" > /dev/null
