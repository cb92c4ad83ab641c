"""Word count in Python: the same operator as examples/wordcount, state and all.

Words are maximal runs of alphanumeric characters, lowercased; for each word it emits
`word<TAB>count` with the running count, keyed by the word.
"""

import re

import weir

# Maximal runs of characters for which str.isalnum() holds: \w is exactly those plus "_".
WORD = re.compile(r"[^\W_]+")


def words(text):
    return [w.lower() for w in WORD.findall(text)]


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
# The packed world (build.sh) names the same export PackedOperator.
PackedOperator = Operator
