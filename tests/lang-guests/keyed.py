"""Test guest (tests/e2e/languages.rs): the word count with its counts in keyed state."""

import weir


def words(text):
    word = []
    for ch in text:
        if ch.isalnum():
            word.append(ch)
        elif word:
            yield "".join(word).lower()
            word = []
    if word:
        yield "".join(word).lower()


class KeyedCount(weir.Operator):
    def __init__(self, config, ctx):
        self.counts = weir.ValueState("counts")

    def process(self, batch):
        out = []
        for r in batch:
            for w in words(r.value.decode("utf-8", "replace")):
                n = self.counts.get(w, 0) + 1
                self.counts.set(w, n)
                out.append(weir.record(f"{w}\t{n}", key=w))
        return out


Operator, State = weir.export_operator(KeyedCount)
# The packed world (build.sh) names the same export PackedOperator.
PackedOperator = Operator
