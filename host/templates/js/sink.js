// {{name}}: a weir sink. Prints every value to stdout (grant it: grants.stdout = true); counts
// what it wrote (checkpointed state). At-least-once: a replay after a crash prints again.
import * as weir from './weir.js';

class Plugin {
  constructor(_config, _ctx) {
    this.written = 0;
  }

  write(batch) {
    for (const r of batch) console.log(weir.text(r));
    this.written += batch.length;
  }
}

// `packedSink` is the same export under the packed world's name (build.sh builds that one).
export const { sink, packedSink, state } = weir.exportSink(Plugin);
