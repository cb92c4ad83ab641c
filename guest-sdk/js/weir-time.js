// weir guest support for JavaScript: event time, for operators built against wit/v0.2
// (weir:plugin@0.2.0). Such an operator class may define onTimers(fired) (timers whose time
// came, oldest first: { domain, key, timestamp }) and finish() (end of input), both returning
// records. Timers are kept by the host, in its checkpoints.

import { register, delete as forget, currentWatermark } from 'weir:plugin/timers@0.2.0';
import { emit } from 'weir:plugin/late@0.2.0';

const encoder = new TextEncoder();
const bytes = (k) => (k === undefined || k === null ? undefined : typeof k === 'string' ? encoder.encode(k) : k);

/** Call onTimers once the watermark reaches `ts` (ms, a BigInt or Number); key may be omitted. */
export function registerEventTimer(key, ts) {
  register({ domain: 'event-time', key: bytes(key), timestamp: BigInt(ts) });
}

/** Call onTimers once the host's wall clock reaches `ts` (ms since the epoch). */
export function registerProcessingTimer(key, ts) {
  register({ domain: 'processing-time', key: bytes(key), timestamp: BigInt(ts) });
}

/** Forget an event-time timer registered before. */
export function deleteEventTimer(key, ts) {
  forget({ domain: 'event-time', key: bytes(key), timestamp: BigInt(ts) });
}

/** The subtask's watermark (a BigInt; -2^63 before the first). */
export function watermark() {
  return currentWatermark();
}

/** Send records that came too late to the node's `<node>.late` output. */
export function emitLate(records) {
  // The late output takes WIT records: bytes, also for a packed build's string values.
  const bytes = (v) => (typeof v === 'string' ? new TextEncoder().encode(v) : v);
  if (records.length > 0) emit(records.map((r) => ({ ...r, key: r.key === undefined ? undefined : bytes(r.key), value: bytes(r.value) })));
}
