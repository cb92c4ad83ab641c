// {{name}}: a weir source. Emits `count` records (config, default 10), then ends; its state is
// the index of the next record.
import * as weir from './weir.js';

class Plugin {
  constructor(config, _ctx) {
    this.next = 0;
    this.count = Number(config.count ?? 10);
  }

  poll(max) {
    if (this.next >= this.count) return weir.END;
    const batch = [];
    while (batch.length < max && this.next < this.count) batch.push(weir.record(`record-${this.next++}`));
    return batch;
  }
}

// `packedSource` is the same export under the packed world's name (build.sh builds that one).
export const { source, packedSource, state } = weir.exportSource(Plugin);
