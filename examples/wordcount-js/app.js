// Word count in JavaScript: the same operator as examples/wordcount, state and all.
//
// Words are maximal runs of alphanumeric characters, lowercased; for each word it emits
// `word<TAB>count` with the running count, keyed by the word.

import * as weir from './weir.js';

// The engine (StarlingMonkey, no ICU) has no Unicode property escapes: a character counts as
// alphanumeric if it is an ASCII letter or digit, or a non-ASCII letter with case. Uncased
// scripts (e.g. CJK) are therefore not words here, unlike in the Rust, C and Python builds.
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

class WordCount {
  constructor(_config, _ctx) {
    this.counts = {};
  }

  process(batch) {
    const out = [];
    for (const r of batch) {
      for (const w of words(weir.text(r))) {
        const n = (this.counts[w] ?? 0) + 1;
        this.counts[w] = n;
        out.push(weir.record(`${w}\t${n}`, w));
      }
    }
    return out;
  }
}

export const { operator, state } = weir.exportOperator(WordCount);
