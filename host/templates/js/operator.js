// {{name}}: a weir operator. Upper-cases every value; counts what it saw (checkpointed state).
import * as weir from './weir.js';

class Plugin {
  constructor(_config, _ctx) {
    this.seen = 0;
  }

  process(batch) {
    this.seen += batch.length;
    return batch.map((r) => ({ ...r, value: new TextEncoder().encode(weir.text(r).toUpperCase()) }));
  }
}

// `packedOperator` is the same export under the packed world's name (build.sh builds that one).
export const { operator, packedOperator, state } = weir.exportOperator(Plugin);
