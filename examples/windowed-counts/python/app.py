"""Events per user per minute of event time, in Python: the same operator as
../operator/src/lib.rs (config `window_ms`, `allowed_lateness_ms`; one line
`<window start ms>\t<user>\t<count>` per closed window). The records come keyed by user
(`key-by` before a `hash` edge); the windows are keyed state, so the node rescales."""

import weir


class PerUser(weir.Operator):
    # Every open window is keyed state: the attributes are config, read anew on every start.
    STATE_IN_ATTRIBUTES = False

    def __init__(self, config, ctx):
        lateness = config.get("allowed_lateness_ms", 0)
        self.counts = weir.Windows.tumbling(config["window_ms"], weir.Count()).with_allowed_lateness(lateness)

    def process(self, batch):
        return [line(f) for f in self.counts.add(batch)]

    def on_timers(self, fired):
        return [line(f) for f in self.counts.fire(fired)]


def line(f):
    return weir.record(f"{f.start}\t{f.key_str()}\t{f.value}")


Operator, State = weir.export_operator(PerUser)
# The packed world (build.sh) names the same export PackedOperator.
PackedOperator = Operator
