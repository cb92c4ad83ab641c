"""{{name}}: a weir sink. Prints every value to stdout (grant it: grants.stdout = true); counts
what it wrote (checkpointed state). At-least-once: a replay after a crash prints again."""

import sys

import weir


class Plugin(weir.Sink):
    def __init__(self, config, ctx):
        self.written = 0

    def write(self, batch):
        for r in batch:
            sys.stdout.write(r.value.decode("utf-8", "replace") + "\n")
        sys.stdout.flush()
        self.written += len(batch)


Sink, State = weir.export_sink(Plugin)
# The packed world (build.sh) names the same export PackedSink.
PackedSink = Sink
