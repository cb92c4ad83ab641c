"""{{name}}: a weir source. Emits `count` records (config, default 10), then ends; its state is
the index of the next record."""

import weir


class Plugin(weir.Source):
    def __init__(self, config, ctx):
        self.next = 0
        self.count = int(config.get("count", "10"))

    def poll(self, max_records):
        if self.next >= self.count:
            return weir.Source.END
        end = min(self.count, self.next + max_records)
        batch = [weir.record(f"record-{i}") for i in range(self.next, end)]
        self.next = end
        return batch


Source, State = weir.export_source(Plugin)
# The packed world (build.sh) names the same export PackedSource.
PackedSource = Source
