"""Word count in Python: the same operator as examples/wordcount, state and all.

Words are maximal runs of alphanumeric characters, lowercased; for each word it emits
`word<TAB>count` with the running count, keyed by the word.
"""

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


class WordCount(weir.Operator):
    def __init__(self, config, ctx):
        self.counts = {}

    def process(self, batch):
        out = []
        for r in batch:
            for w in words(r.value.decode("utf-8", "replace")):
                n = self.counts.get(w, 0) + 1
                self.counts[w] = n
                out.append(weir.record(f"{w}\t{n}", key=w))
        return out


Operator, State = weir.export_operator(WordCount)
