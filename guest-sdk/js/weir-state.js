// weir guest support for JavaScript: keyed value state, for operators built against wit/v0.2
// (weir:plugin@0.2.0). One value per (state name, key), kept by the host beyond the plugin's
// memory, checkpointed incrementally, redistributed when the parallelism changes. Values are
// JSON (what `weir state get` shows). No cache: every set reaches the host at once.

import { get, apply } from 'weir:plugin/keyed-state@0.2.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (k) => (typeof k === 'string' ? encoder.encode(k) : k);

export class ValueState {
  constructor(name) {
    this.name = name;
  }

  /** The value for `key` (a string or Uint8Array), or `fallback` if it has none. */
  get(key, fallback = undefined) {
    const raw = get({ state: this.name, key: bytes(key) });
    return raw === undefined ? fallback : JSON.parse(decoder.decode(raw));
  }

  /** Set the value (anything JSON can hold) for `key`. */
  set(key, value) {
    const scope = { state: this.name, key: bytes(key) };
    apply([{ tag: 'set', val: [scope, encoder.encode(JSON.stringify(value))] }]);
  }

  /** Forget the value for `key`. */
  clear(key) {
    apply([{ tag: 'clear', val: { state: this.name, key: bytes(key) } }]);
  }

  /** A handle is stored as its name alone (plugin state is JSON). */
  toJSON() {
    return { state: this.name };
  }
}
