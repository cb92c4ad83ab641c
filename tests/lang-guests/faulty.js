// Test guest (tests/e2e/languages.rs): the JavaScript SDK's failure paths.
//
// Passes records through; a record whose value is `fail` makes it throw, `hog` makes it allocate
// without bound (the host's memory ceiling must stop it).

import * as weir from './weir.js';

class Faulty {
  process(batch) {
    for (const r of batch) {
      const v = weir.text(r);
      if (v === 'fail') throw new Error('asked to fail by the input');
      if (v === 'hog') {
        const hoard = [];
        for (;;) hoard.push(new Uint8Array(16 << 20).fill(1));
      }
    }
    return batch;
  }
}

export const { operator, packedOperator, state } = weir.exportOperator(Faulty);
