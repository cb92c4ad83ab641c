#!/usr/bin/env bash
# Build {{name}}.wasm from app.js with componentize-js (installed in the weir checkout's
# guest-sdk/js by `npm install`), against {{wit}} ({{contract}}: the newest contract for this
# kind) in the packed batch form.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
weir="${WEIR_HOME:-{{weir}}}"
js="$weir/guest-sdk/js"
[ -x "$js/node_modules/.bin/componentize-js" ] || (cd "$js" && npm install --no-audit --no-fund > /dev/null)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.js" "$js/weir.js" "$js/weir-time.js" "$work/"
# The SDK's imports name the contract's version.
case "{{wit}}" in
  wit/v0.3)
    cp "$js/weir-state.js" "$work/"
    sed -i 's/@0\.[12]\.0/@0.3.0/' "$work/weir.js" "$work/weir-time.js" "$work/weir-state.js" ;;
  wit/v0.2)
    cp "$js/weir-state.js" "$work/"
    sed -i 's/@0\.1\.0/@0.2.0/' "$work/weir.js" ;;
esac
# The packed world: a batch crosses as one buffer (weir.js reads and writes it).
sed -i 's/^const PACKED = false;/const PACKED = true;/' "$work/weir.js"
# Ahead of time with weval when installed (cargo install weval --version 0.5.0 --locked): the
# JavaScript's hot paths become Wasm code, ~1.6x faster. WEIR_JS_AOT=0 builds the interpreted form.
aot=()
if [ "${WEIR_JS_AOT:-1}" != 0 ] && weval --version 2> /dev/null | grep -q "^weval 0\.5\.0$"; then
  aot=(--aot --weval-bin "$(command -v weval)")
fi
cd "$work"
"$js/node_modules/.bin/componentize-js" app.js --wit "$weir/{{wit}}" --world-name {{world}} \
  -d http -d fetch-event "${aot[@]}" -o "$here/{{name}}.wasm" > /dev/null
