// Test guest (tests/e2e/event_time.rs): event-time timers and finish in JavaScript. Every
// record registers an event-time timer `delay_ms` after its timestamp, keyed by its value; a
// fired timer gives `fired\t<key>\t<ts>`, the end of input `finish\t<records seen>`.
import * as weir from './weir.js';
import { registerEventTimer } from './weir-time.js';

const decoder = new TextDecoder();

class Timers {
  constructor(config) {
    this.delay = Number(config.delay_ms || '0'); // a Number: state is JSON
    this.seen = 0;
  }

  process(batch) {
    for (const r of batch) {
      registerEventTimer(r.value, BigInt(r.timestamp) + BigInt(this.delay));
      this.seen += 1;
    }
    return [];
  }

  onTimers(fired) {
    return fired.map((t) => weir.record(`fired\t${decoder.decode(t.key)}\t${t.timestamp}`));
  }

  finish() {
    return [weir.record(`finish\t${this.seen}`)];
  }
}

export const { operator, packedOperator, state } = weir.exportOperator(Timers);
