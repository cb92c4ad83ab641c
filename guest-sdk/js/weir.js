// weir guest support for JavaScript (componentize-js).
//
// A plugin is a class with a constructor(config, ctx) and the methods of its kind; the app
// module exports it with one line:
//
//     export const { operator, state } = weir.exportOperator(MyOperator);
//
// State defaults to JSON of the instance's own fields; define snapshot()/restore(bytes) for
// anything else. A thrown exception becomes an error the host reports with the node name.
//
// Batch forms: a build for the `packed-*` worlds (build.sh sets PACKED) gets each batch as one
// buffer, read here into records whose key and value are views of it, and returns one buffer
// its records are written into (string values straight from the string): no WIT record per
// record in or out. Export `packedOperator` (or `packedSource`, `packedSink`) beside the list
// name; the plugin code is the same.
//
// Invariant: one plugin instance per component instance, created by `open`; a call before
// `open` is an error, not a crash.

import { log as hostLog } from 'weir:plugin/host-log@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Set by the build for the packed worlds. */
const PACKED = false;

/** A record; `value` and `key` may be strings (UTF-8 encoded) or Uint8Arrays. A packed build
 * keeps a string as it is until the batch is written. */
export function record(value, key) {
  if (!PACKED) {
    if (typeof value === 'string') value = encoder.encode(value);
    if (typeof key === 'string') key = encoder.encode(key);
  }
  return { key, value, timestamp: undefined, headers: NO_HEADERS };
}

/** The headers of a record made by `record`: one shared empty list (set `headers` to a new
 * array to add some). */
const NO_HEADERS = Object.freeze([]);


/** A record's value as text. */
export function text(r) {
  return typeof r.value === 'string' ? r.value : decoder.decode(r.value);
}

// --- The packed batch (weir:plugin/packed-types): postcard of (key, value, timestamp, headers)

/** The records of a packed buffer from the host (it checked it); keys and values are views. */
function unpack(buf) {
  let pos = 0;
  const varint = () => {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++];
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
  };
  const bigVarint = () => {
    let n = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++];
      n |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return n;
      shift += 7n;
    }
  };
  const take = () => {
    const n = varint();
    pos += n;
    return buf.subarray(pos - n, pos);
  };
  const out = [];
  for (let i = varint(); i > 0; i--) {
    const key = buf[pos++] ? take() : undefined;
    const value = take();
    let timestamp;
    if (buf[pos++]) {
      const z = bigVarint();
      timestamp = (z >> 1n) ^ -(z & 1n);
    }
    const headers = [];
    for (let h = varint(); h > 0; h--) {
      const name = decoder.decode(take());
      headers.push({ key: name, value: take() });
    }
    out.push({ key, value, timestamp, headers });
  }
  return out;
}

/** Writes records into one growing buffer. */
class Writer {
  constructor(records) {
    this.buf = new Uint8Array(64 + records.length * 48);
    this.pos = 0;
  }
  room(n) {
    if (this.pos + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    bigger.set(this.buf.subarray(0, this.pos));
    this.buf = bigger;
  }
  byte(b) {
    this.room(1);
    this.buf[this.pos++] = b;
  }
  varint(n) {
    this.room(10);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }
  /** Bytes or a string (encoded in place behind a length slot it fits). */
  field(v) {
    if (typeof v !== 'string') {
      this.varint(v.length);
      this.room(v.length);
      this.buf.set(v, this.pos);
      this.pos += v.length;
      return;
    }
    const most = v.length * 3;
    const slot = most < 128 ? 1 : 5;
    this.room(slot + most);
    const start = this.pos + slot;
    const { written } = encoder.encodeInto(v, this.buf.subarray(start, start + most));
    if (slot === 1) {
      this.buf[this.pos] = written;
    } else {
      // A 5-byte varint, padded: readers accept it.
      let n = written;
      for (let i = 0; i < 5; i++) {
        this.buf[this.pos + i] = (n % 128) | (i < 4 ? 0x80 : 0);
        n = Math.floor(n / 128);
      }
    }
    this.pos = start + written;
  }
}

const NON_ASCII = /[^\x00-\x7f]/;
/** The one-byte length prefix of each length below 128, as a character. */
const LENGTH = Array.from({ length: 128 }, (_, n) => String.fromCharCode(n));

/** Records of short ASCII text keys and values, no times, no headers, as one packed buffer —
 * framed as text and encoded once (in ASCII a character is a byte) — or null for any other. */
function packText(records) {
  let text = '';
  for (const r of records) {
    const { key, value } = r;
    if (typeof key !== 'string' || typeof value !== 'string' || key.length >= 128 || value.length >= 128 || r.timestamp !== undefined || r.headers.length !== 0) return null;
    text += '\x01' + LENGTH[key.length] + key + LENGTH[value.length] + value + '\x00\x00';
  }
  if (NON_ASCII.test(text)) return null;
  const w = new Writer([]);
  w.varint(records.length);
  w.room(text.length);
  w.pos += encoder.encodeInto(text, w.buf.subarray(w.pos)).written;
  return w.buf.subarray(0, w.pos);
}

/** Records as one packed buffer. */
function pack(records) {
  const text = packText(records);
  if (text !== null) return text;
  const w = new Writer(records);
  w.varint(records.length);
  for (const r of records) {
    const { key, value } = r;
    if (typeof key === 'string' && typeof value === 'string' && r.timestamp === undefined && r.headers.length === 0 && key.length < 42 && value.length < 42) {
      // The common record in one step: short text key and value, no time, no headers.
      w.room(260);
      const buf = w.buf;
      let at = w.pos;
      buf[at] = 1;
      const k = encoder.encodeInto(key, buf.subarray(at + 2, at + 128)).written;
      buf[at + 1] = k;
      at += 2 + k;
      const v = encoder.encodeInto(value, buf.subarray(at + 1, at + 127)).written;
      buf[at] = v;
      at += 1 + v;
      buf[at] = 0;
      buf[at + 1] = 0;
      w.pos = at + 2;
      continue;
    }
    if (r.key === undefined || r.key === null) w.byte(0);
    else {
      w.byte(1);
      w.field(r.key);
    }
    w.field(r.value);
    if (r.timestamp === undefined || r.timestamp === null) w.byte(0);
    else {
      w.byte(1);
      const t = BigInt(r.timestamp);
      let z = BigInt.asUintN(64, (t << 1n) ^ (t >> 63n));
      w.room(10);
      while (z >= 0x80n) {
        w.buf[w.pos++] = Number(z & 0x7fn) | 0x80;
        z >>= 7n;
      }
      w.buf[w.pos++] = Number(z);
    }
    const headers = r.headers ?? [];
    w.varint(headers.length);
    for (const h of headers) {
      w.field(h.key);
      w.field(h.value);
    }
  }
  return w.buf.subarray(0, w.pos);
}

/** Records coming in, in this build's batch form. */
const inward = (batch) => (PACKED ? unpack(batch) : batch);
/** Records going out, in this build's batch form (a string value encoded for the list form). */
const outward = (records) => (PACKED ? pack(records) : records);

/** Write to the host's log. */
export function log(msg, level = 'info') {
  hostLog(level, String(msg));
}

let instance = null;

function call(fn) {
  if (instance === null) throw 'plugin called before open';
  try {
    return fn(instance);
  } catch (e) {
    throw e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
}

/** The node's config as an object: weir:plugin@0.3.0 passes one JSON document (values with
 * their own types), older contracts a list of string pairs. */
function configOf(cfg) {
  return typeof cfg === 'string' ? JSON.parse(cfg) : Object.fromEntries(cfg);
}

function open(Cls, cfg, ctx) {
  try {
    instance = new Cls(configOf(cfg), ctx);
  } catch (e) {
    throw e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
}

const state = {
  snapshot: () =>
    call((p) => (typeof p.snapshot === 'function' ? p.snapshot() : encoder.encode(JSON.stringify(p)))),
  restore: (bytes) =>
    call((p) => {
      if (typeof p.restore === 'function') p.restore(bytes);
      else Object.assign(p, JSON.parse(decoder.decode(bytes)));
    }),
};

/** The `operator` and `state` exports for an operator class. */
export function exportOperator(Cls) {
  const operator = {
    open: (cfg, ctx) => open(Cls, cfg, ctx),
    process: (batch) => call((p) => outward(p.process(inward(batch)))),
    onWatermark: (ts) => call((p) => outward(typeof p.onWatermark === 'function' ? p.onWatermark(ts) : [])),
    // weir:plugin@0.2.0 only (event time: see weir-time.js).
    onTimers: (fired) => call((p) => outward(typeof p.onTimers === 'function' ? p.onTimers(fired) : [])),
    finish: () => call((p) => outward(typeof p.finish === 'function' ? p.finish() : [])),
  };
  return { state, operator, packedOperator: operator };
}

/** Returned by a source's poll(): nothing now / nothing ever again. */
export const IDLE = Symbol('idle');
export const END = Symbol('end');

/** The `source` and `state` exports for a source class; poll(max) returns records, IDLE or END. */
export function exportSource(Cls) {
  const source = {
    open: (cfg, ctx) => open(Cls, cfg, ctx),
    poll: (max) =>
      call((p) => {
        const got = p.poll(max);
        if (got === END) return { tag: 'end' };
        if (got === IDLE || !got || got.length === 0) return { tag: 'idle' };
        return { tag: 'batch', val: outward(got) };
      }),
  };
  return { state, source, packedSource: source };
}

/** The `sink` and `state` exports for a sink class. */
export function exportSink(Cls) {
  const optional = (name, ...args) => call((p) => (typeof p[name] === 'function' ? p[name](...args) : undefined));
  const sink = {
    open: (cfg, ctx) => open(Cls, cfg, ctx),
    write: (batch) => call((p) => p.write(inward(batch))),
    finish: () => optional('finish'),
    prepare: (id) => optional('prepare', id),
    commit: (id) => optional('commit', id),
    abort: (id) => {
      try {
        optional('abort', id);
      } catch (_) {
        // abort cannot fail: the checkpoint is gone either way
      }
    },
  };
  return { state, sink, packedSink: sink };
}
