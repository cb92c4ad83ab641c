"""weir guest support for Python (componentize-py).

A plugin is a class derived from `weir.Operator` (or `weir.Source`, `weir.Sink`); the app module
exports it with one line:

    Operator, State = weir.export_operator(MyOperator)

State defaults to a pickle of the instance's attributes; override `snapshot`/`restore` for
anything else. An exception raised by the plugin becomes an error the host reports with the node
name; it never traps the instance.

Invariant: exactly one plugin instance per component instance, created by `open`; every call
before `open` is an error, not a crash.
"""

import pickle
import traceback

from componentize_py_types import Err
from wit_world.imports import host_log, types

Record = types.Record
Header = types.Header


def record(value, key=None, timestamp=None, headers=None):
    """A record; `value` and `key` may be str (UTF-8 encoded) or bytes."""
    as_bytes = lambda v: v.encode() if isinstance(v, str) else v
    return types.Record(
        key=None if key is None else as_bytes(key),
        value=as_bytes(value),
        timestamp=timestamp,
        headers=headers or [],
    )


def log(msg, level="info"):
    """Write `msg` to the host's log."""
    host_log.log(getattr(host_log.Level, level.upper()), str(msg))


class Context:
    """Where this instance sits in the job graph."""

    def __init__(self, ctx):
        self.node = ctx.node
        self.subtask = ctx.subtask
        self.parallelism = ctx.parallelism


class Plugin:
    """What every plugin kind shares: construction from config, and state."""

    def __init__(self, config, ctx):
        """`config` is a dict of the node's config table (values are strings)."""

    def snapshot(self):
        """State as bytes. Default: a pickle of the instance's attributes."""
        return pickle.dumps(self.__dict__)

    def restore(self, state):
        """Take back bytes `snapshot` returned. Default: restore the attributes."""
        self.__dict__.update(pickle.loads(state))


class Operator(Plugin):
    def process(self, batch):
        """Transform a list of records into a list of records."""
        raise NotImplementedError("process")

    def on_watermark(self, ts):
        return []


class Source(Plugin):
    END = "end"
    IDLE = "idle"

    def poll(self, max_records):
        """Return a list of records, `Source.IDLE` or `Source.END`."""
        raise NotImplementedError("poll")


class Sink(Plugin):
    def write(self, batch):
        raise NotImplementedError("write")

    def finish(self):
        pass

    def prepare(self, checkpoint):
        pass

    def commit(self, checkpoint):
        pass

    def abort(self, checkpoint):
        pass


_instance = None


def _call(fn, *args):
    """Run a plugin method; any exception becomes the error the host reports."""
    if _instance is None and fn is not None:
        raise Err("plugin called before open")
    try:
        return fn(*args)
    except Err:
        raise
    except MemoryError as e:
        raise Err(f"MemoryError: {e}")
    except Exception as e:
        log(traceback.format_exc(), "debug")
        raise Err(f"{type(e).__name__}: {e}")


def _open(cls, cfg, ctx):
    global _instance
    try:
        _instance = cls(dict(cfg), Context(ctx))
    except Exception as e:
        raise Err(f"{type(e).__name__}: {e}")


class _State:
    def snapshot(self):
        return _call(lambda: _instance.snapshot())

    def restore(self, state):
        return _call(lambda: _instance.restore(state))


def export_operator(cls):
    """The (Operator, State) export classes for an operator class."""

    class _Operator:
        def open(self, cfg, ctx):
            _open(cls, cfg, ctx)

        def process(self, batch):
            return _call(lambda: _instance.process(batch))

        def on_watermark(self, ts):
            return _call(lambda: _instance.on_watermark(ts))

    return _Operator, _State


def export_source(cls):
    """The (Source, State) export classes for a source class."""
    from wit_world.exports import source as wit

    class _Source:
        def open(self, cfg, ctx):
            _open(cls, cfg, ctx)

        def poll(self, max_records):
            got = _call(lambda: _instance.poll(max_records))
            if got == Source.END:
                return wit.PollResult_End()
            if got == Source.IDLE or not got:
                return wit.PollResult_Idle()
            return wit.PollResult_Batch(list(got))

    return _Source, _State


def export_sink(cls):
    """The (Sink, State) export classes for a sink class."""

    class _Sink:
        def open(self, cfg, ctx):
            _open(cls, cfg, ctx)

        def write(self, batch):
            _call(lambda: _instance.write(batch))

        def finish(self):
            _call(lambda: _instance.finish())

        def prepare(self, checkpoint):
            _call(lambda: _instance.prepare(checkpoint))

        def commit(self, checkpoint):
            _call(lambda: _instance.commit(checkpoint))

        def abort(self, checkpoint):
            try:
                _call(lambda: _instance.abort(checkpoint))
            except Err:
                pass

    return _Sink, _State
