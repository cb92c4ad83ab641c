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

// ASCII text (the common case) is split by one regular expression; other text a character at
// a time.
const NON_ASCII = /[^\x00-\x7f]/;
const ASCII_WORD = /[a-z0-9]+/g;

function words(text) {
  if (!NON_ASCII.test(text)) return text.toLowerCase().match(ASCII_WORD) ?? [];
  const out = [];
  let word = '';
  for (const c of text) {
    if (isAlnum(c)) word += c;
    else if (word) {
      out.push(word.toLowerCase());
      word = '';
    }
  }
  if (word) out.push(word.toLowerCase());
  return out;
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

// `packedOperator` is the same export under the packed world's name (build.sh builds that one).
export const { operator, packedOperator, state } = weir.exportOperator(WordCount);
