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
// Invariant: one plugin instance per component instance, created by `open`; a call before
// `open` is an error, not a crash.

import { log as hostLog } from 'weir:plugin/host-log@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A record; `value` and `key` may be strings (UTF-8 encoded) or Uint8Arrays. */
export function record(value, key) {
  const bytes = (v) => (typeof v === 'string' ? encoder.encode(v) : v);
  return { key: key === undefined ? undefined : bytes(key), value: bytes(value), timestamp: undefined, headers: [] };
}

/** A record's value as text. */
export function text(r) {
  return decoder.decode(r.value);
}

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

function open(Cls, cfg, ctx) {
  try {
    instance = new Cls(Object.fromEntries(cfg), ctx);
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
  return {
    state,
    operator: {
      open: (cfg, ctx) => open(Cls, cfg, ctx),
      process: (batch) => call((p) => p.process(batch)),
      onWatermark: (ts) => call((p) => (typeof p.onWatermark === 'function' ? p.onWatermark(ts) : [])),
      // weir:plugin@0.2.0 only (event time: see weir-time.js).
      onTimers: (fired) => call((p) => (typeof p.onTimers === 'function' ? p.onTimers(fired) : [])),
      finish: () => call((p) => (typeof p.finish === 'function' ? p.finish() : [])),
    },
  };
}

/** Returned by a source's poll(): nothing now / nothing ever again. */
export const IDLE = Symbol('idle');
export const END = Symbol('end');

/** The `source` and `state` exports for a source class; poll(max) returns records, IDLE or END. */
export function exportSource(Cls) {
  return {
    state,
    source: {
      open: (cfg, ctx) => open(Cls, cfg, ctx),
      poll: (max) =>
        call((p) => {
          const got = p.poll(max);
          if (got === END) return { tag: 'end' };
          if (got === IDLE || !got || got.length === 0) return { tag: 'idle' };
          return { tag: 'batch', val: got };
        }),
    },
  };
}

/** The `sink` and `state` exports for a sink class. */
export function exportSink(Cls) {
  const optional = (name, ...args) => call((p) => (typeof p[name] === 'function' ? p[name](...args) : undefined));
  return {
    state,
    sink: {
      open: (cfg, ctx) => open(Cls, cfg, ctx),
      write: (batch) => call((p) => p.write(batch)),
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
    },
  };
}
