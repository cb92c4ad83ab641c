#!/usr/bin/env bash
# Build wordcount.wasm from app.js with componentize-js (installed into guest-sdk/js by npm install),
# compiled ahead of time with weval when it is installed.
# Usage: build.sh [OUT.wasm] [SOURCE.js] [WIT_DIR]
# WIT_DIR wit/v0.2 builds against weir:plugin@0.2.0 (event time: weir-time.js; keyed state:
# weir-state.js).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
out="$(realpath -m "${1:-$here/wordcount.wasm}")"
src="$(realpath "${2:-$here/app.js}")"
wit="$(realpath "${3:-$root/wit}")"
js="$root/guest-sdk/js"
[ -x "$js/node_modules/.bin/componentize-js" ] || (cd "$js" && npm install --no-audit --no-fund > /dev/null)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$src" "$work/app.js"
cp "$js/weir.js" "$js/weir-time.js" "$work/"
if [ "$wit" = "$(realpath "$root/wit/v0.2")" ]; then
  sed -i 's/@0\.1\.0/@0.2.0/' "$work/weir.js"
  cp "$js/weir-state.js" "$work/"
fi
# The packed world: a batch crosses as one buffer (weir.js reads and writes it).
sed -i 's/^const PACKED = false;/const PACKED = true;/' "$work/weir.js"
# Ahead of time (weval): the engine's interpreter is specialised to this JavaScript, whose hot
# paths become Wasm code (word count: 1.6x the interpreted build). scripts/test.sh installs weval;
# WEIR_JS_AOT=0 builds the interpreted form.
aot=()
if [ "${WEIR_JS_AOT:-1}" != 0 ]; then
  if weval --version 2> /dev/null | grep -q "^weval 0\.5\.0$"; then
    aot=(--aot --weval-bin "$(command -v weval)")
  else
    echo "build.sh: weval 0.5.0 is not installed (cargo install weval --version 0.5.0 --locked): building the interpreted form, about 1.6x slower" >&2
  fi
fi
cd "$work"
"$js/node_modules/.bin/componentize-js" app.js --wit "$wit" --world-name packed-operator-plugin \
  -d http -d fetch-event "${aot[@]}" -o "$out" > /dev/null
