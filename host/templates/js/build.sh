#!/usr/bin/env bash
# Build {{name}}.wasm from app.js with componentize-js (installed in the weir checkout's
# guest-sdk/js by `npm install`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
weir="${WEIR_HOME:-{{weir}}}"
js="$weir/guest-sdk/js"
[ -x "$js/node_modules/.bin/componentize-js" ] || (cd "$js" && npm install --no-audit --no-fund > /dev/null)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.js" "$js/weir.js" "$work/"
cd "$work"
"$js/node_modules/.bin/componentize-js" app.js --wit "$weir/wit" --world-name {{world}} \
  -d http -d fetch-event -o "$here/{{name}}.wasm" > /dev/null
