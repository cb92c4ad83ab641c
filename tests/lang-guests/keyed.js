// Test guest (tests/e2e/languages.rs): the word count in JavaScript with its counts in keyed
// value state (built against wit/v0.2). Words as examples/wordcount-js splits them.
import * as weir from './weir.js';
import { ValueState } from './weir-state.js';

function isAlnum(c) {
  if (c <= 'z') return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return c.toLowerCase() !== c.toUpperCase();
}

function* words(text) {
  let word = '';
  for (const c of text) {
    if (isAlnum(c)) word += c;
    else if (word) {
      yield word.toLowerCase();
      word = '';
    }
  }
  if (word) yield word.toLowerCase();
}

// Kept outside the instance: the instance's own fields are its (JSON) state, and it has none.
const counts = new ValueState('counts');

class KeyedCount {
  process(batch) {
    const out = [];
    for (const r of batch) {
      for (const w of words(weir.text(r))) {
        const n = counts.get(w, 0) + 1;
        counts.set(w, n);
        out.push(weir.record(`${w}\t${n}`, w));
      }
    }
    return out;
  }
}

export const { operator, packedOperator, state } = weir.exportOperator(KeyedCount);
