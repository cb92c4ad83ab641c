"""{{name}}: a weir operator. Upper-cases every value; counts what it saw (checkpointed state)."""

import weir


class Plugin(weir.Operator):
    def __init__(self, config, ctx):
        self.seen = 0

    def process(self, batch):
        self.seen += len(batch)
        for r in batch:
            r.value = r.value.upper()
        return batch


Operator, State = weir.export_operator(Plugin)
# The packed world (build.sh) names the same export PackedOperator.
PackedOperator = Operator
