"""Test guest (tests/e2e/languages.rs): the Python SDK's failure paths.

Passes records through; a record whose value is `fail` makes it raise, `hog` makes it allocate
without bound (the host's memory ceiling must stop it).
"""

import weir


class Faulty(weir.Operator):
    def process(self, batch):
        for r in batch:
            if r.value == b"fail":
                raise ValueError("asked to fail by the input")
            if r.value == b"hog":
                hoard = []
                while True:
                    hoard.append(bytearray(16 << 20))
        return batch


Operator, State = weir.export_operator(Faulty)
# The packed world (build.sh) names the same export PackedOperator.
PackedOperator = Operator
