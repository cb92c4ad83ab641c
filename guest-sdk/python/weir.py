"""weir guest support for Python (componentize-py).

A plugin is a class derived from `weir.Operator` (or `weir.Source`, `weir.Sink`); the app module
exports it with one line:

    Operator, State = weir.export_operator(MyOperator)

State defaults to a pickle of the instance's attributes; override `snapshot`/`restore` for
anything else.

Keyed state (operators built against wit/v0.2): `ValueState`, `ListState` and `MapState` keep
values per key in the host, beyond the plugin's memory, checkpointed incrementally and
redistributed when the parallelism changes; values are JSON. A call's writes reach the host at
its end (a call that raises changes nothing), and a handle pickles as its name alone.

Event time (operators built against wit/v0.2, `weir:plugin@0.2.0`): `register_event_timer`,
`register_processing_timer`, `current_watermark`, `emit_late`, and `Windows` (tumbling,
sliding and session windows over keys with `Count`, `Sum`, `Min`, `Max` or `Reduce`, and
allowed lateness), the same windows as the Rust SDK's `weir_sdk::window`. An exception raised by the plugin becomes an error the host reports with the node
name; it never traps the instance.

Batch forms: a build for the `packed-*` worlds (componentize-py -w packed-operator-plugin; the
app module then names its export class `PackedOperator` too) gets each batch as one buffer,
decoded here into light records, and hands its output back as one buffer: no WIT record per
record in or out, which is most of the cost of a Python operator. The plugin code is the same.

Invariant: exactly one plugin instance per component instance, created by `open`; every call
before `open` is an error, not a crash.
"""

import json
import pickle
import os
import traceback

from componentize_py_types import Err
from wit_world.imports import host_log, types

try:  # weir:plugin@0.2.0 operators import timers and the late output; 0.1.0 worlds do not.
    from wit_world.imports import late, timers
except ImportError:
    late = timers = None

try:  # ... and keyed state.
    from wit_world.imports import keyed_state
except ImportError:
    keyed_state = None

try:  # Which world this build exports: the packed form, or lists of records.
    from wit_world import exports as _exports

    PACKED = any(
        hasattr(_exports, n) for n in ("PackedOperator", "PackedSource", "PackedSink")
    )
except ImportError:
    PACKED = False

Header = types.Header


class _PackedRecord:
    """A record of a packed build: the fields of `types.Record`, without its WIT lowering."""

    __slots__ = ("key", "value", "timestamp", "headers")

    def __init__(self, key, value, timestamp, headers):
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers


Record = _PackedRecord if PACKED else types.Record


def record(value, key=None, timestamp=None, headers=None):
    """A record; `value` and `key` may be str (UTF-8 encoded) or bytes. A packed build keeps a
    str as it is until the batch is written."""
    if PACKED:
        # Text stays text until the batch is written (ASCII batches are encoded once).
        return _PackedRecord(key, value, timestamp, headers or [])
    if value.__class__ is str:
        value = value.encode()
    if key.__class__ is str:
        key = key.encode()
    return types.Record(key=key, value=value, timestamp=timestamp, headers=headers or [])


# --- The packed batch (weir:plugin/packed-types): postcard of (key, value, timestamp, headers)

_LEN = [bytes((i,)) for i in range(128)]


def _varint(n):
    if n < 128:
        return _LEN[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _pack_text(records):
    """Records of short ASCII str keys and values, no times, no headers, as one packed buffer —
    framed as text and encoded once (in ASCII a character is a byte) — or None for any other."""
    parts = []
    more = parts.extend
    for r in records:
        k, v = r.key, r.value
        if (
            k.__class__ is not str
            or v.__class__ is not str
            or len(k) >= 128
            or len(v) >= 128
            or r.timestamp is not None
            or r.headers
        ):
            return None
        more(("\x01", _CHR[len(k)], k, _CHR[len(v)], v, "\x00\x00"))
    text = "".join(parts)
    if not text.isascii():
        return None
    return _varint(len(records)) + text.encode()


_CHR = [chr(i) for i in range(128)]


def _bytes(v):
    return v.encode() if v.__class__ is str else v


def _pack(records):
    """Records (anything with key, value, timestamp, headers) as one packed buffer."""
    text = _pack_text(records)
    if text is not None:
        return text
    parts = [_varint(len(records))]
    add = parts.append
    more = parts.extend
    for r in records:
        k, v, t, hs = r.key, _bytes(r.value), r.timestamp, r.headers
        if k is None:
            add(b"\0")
        else:
            k = _bytes(k)
            more((b"\1", _varint(len(k)), k))
        more((_varint(len(v)), v))
        if t is None:
            add(b"\0")
        else:
            more((b"\1", _varint(((t << 1) ^ (t >> 63)) & 0xFFFFFFFFFFFFFFFF)))
        add(_varint(len(hs)))
        for h in hs:
            name = h.key.encode()
            more((_varint(len(name)), name, _varint(len(h.value)), h.value))
    return b"".join(parts)


def _unpack(data):
    """The records of a packed buffer from the host (it checked it)."""
    pos = 0

    def varint():
        nonlocal pos
        n = shift = 0
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7

    def take():
        nonlocal pos
        n = varint()
        pos += n
        return bytes(data[pos - n : pos])

    out = []
    for _ in range(varint()):
        key = None
        pos += 1
        if data[pos - 1]:
            key = take()
        value = take()
        ts = None
        pos += 1
        if data[pos - 1]:
            z = varint()
            ts = (z >> 1) ^ -(z & 1)
        headers = []
        for _ in range(varint()):
            name = take().decode()
            headers.append(Header(key=name, value=take()))
        out.append(_PackedRecord(key, value, ts, headers))
    return out


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

    # What of the instance is its state, checkpointed and restored: True (the default) every
    # attribute; False none (an operator that keeps what it must remember in keyed state:
    # ValueState, Windows, ...; it then rescales like its keyed state); or a tuple of attribute
    # names, those and no others. What is not state is configuration, made by __init__ from the
    # pipeline file on every start, so a changed config takes effect after a restore.
    STATE_IN_ATTRIBUTES = True

    def __init__(self, config, ctx):
        """`config` is a dict of the node's config table: values with their pipeline-file types
        (a build against wit/v0.3), or all strings (older contracts)."""

    def _state_names(self):
        """The attribute names that are state; None for all of them."""
        kept = self.STATE_IN_ATTRIBUTES
        if kept is True:
            return None
        if kept is False:
            return ()
        return tuple(kept)

    def snapshot(self):
        """State as bytes. Default: a pickle of the attributes that are state (STATE_IN_ATTRIBUTES);
        nothing when none is."""
        names = self._state_names()
        if names is None:
            return pickle.dumps(self.__dict__)
        if not names:
            return b""
        return pickle.dumps({n: self.__dict__[n] for n in names if n in self.__dict__})

    def restore(self, state):
        """Take back bytes `snapshot` returned. Default: restore the attributes that are state;
        the others stay as __init__ made them from this start's config."""
        names = self._state_names()
        if names is not None and not names:
            return
        saved = pickle.loads(state)
        if names is not None:
            saved = {n: v for n, v in saved.items() if n in names}
        self.__dict__.update(saved)


class Operator(Plugin):
    def process(self, batch):
        """Transform a list of records into a list of records."""
        raise NotImplementedError("process")

    def on_watermark(self, ts):
        """Event time reached `ts` (after the event-time timers up to it fired)."""
        return []

    def on_timers(self, fired):
        """Timers whose time came, oldest first (each has .domain, .key, .timestamp)."""
        return []

    def finish(self):
        """The input ended: return what is still held back."""
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
        raise Err(_described(e))


def _described(e):
    """`Type: message (at file.py:line in function: `source`)`: the innermost frame of the
    plugin's own code (not this SDK's), so the error names the line to fix."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)]
    own = [f for f in frames if os.path.basename(f.filename) != "weir.py"]
    where = ""
    if own or frames:
        f = (own or frames)[-1]
        code = f" `{f.line.strip()}`" if f.line and f.line.strip() else ""
        where = f" (at {os.path.basename(f.filename)}:{f.lineno} in {f.name}{code})"
    return f"{type(e).__name__}: {e}{where}"


def _config_of(cfg):
    """The node's config as a dict: weir:plugin@0.3.0 passes one JSON document (values with
    their own types: numbers, booleans, lists, nested tables), older contracts string pairs."""
    if isinstance(cfg, str):
        return json.loads(cfg)
    return dict(cfg)


def _open(cls, cfg, ctx):
    global _instance
    try:
        _instance = cls(_config_of(cfg), Context(ctx))
    except Exception as e:
        raise Err(_described(e))


class _State:
    def snapshot(self):
        return _call(lambda: _instance.snapshot())

    def restore(self, state):
        return _call(lambda: _instance.restore(state))


def _keyed_call(fn):
    """An operator call: its keyed-state writes go to the host if it succeeds."""
    try:
        out = _call(fn)
    except Err:
        _keyed_end(False)
        raise
    _keyed_end(True)
    return out


def _out(records):
    """A call's output records in this build's batch form."""
    return _pack(records) if PACKED else records


def export_operator(cls):
    """The (Operator, State) export classes for an operator class."""

    class _Operator:
        def open(self, cfg, ctx):
            _open(cls, cfg, ctx)
            _keyed_end(True)

        def process(self, batch):
            if PACKED:
                return _pack(_keyed_call(lambda: _instance.process(_unpack(batch))))
            return _keyed_call(lambda: _instance.process(batch))

        def on_watermark(self, ts):
            return _out(_keyed_call(lambda: _instance.on_watermark(ts)))

        def on_timers(self, fired):
            return _out(_keyed_call(lambda: _instance.on_timers(fired)))

        def finish(self):
            return _out(_keyed_call(lambda: _instance.finish()))

    return _Operator, _State


def export_source(cls):
    """The (Source, State) export classes for a source class."""
    if PACKED:
        from wit_world.exports import packed_source as wit
    else:
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
            return wit.PollResult_Batch(_pack(got) if PACKED else list(got))

    return _Source, _State


def export_sink(cls):
    """The (Sink, State) export classes for a sink class."""

    class _Sink:
        def open(self, cfg, ctx):
            _open(cls, cfg, ctx)

        def write(self, batch):
            _call(lambda: _instance.write(_unpack(batch) if PACKED else batch))

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


# --- Event time (weir:plugin@0.2.0 operators) ---------------------------------------------

NO_WATERMARK = -(2**63)
END_OF_TIME = 2**63 - 1


def _timers():
    if timers is None:
        raise RuntimeError("event time needs an operator built against wit/v0.2 (weir:plugin@0.2.0)")
    return timers


def _timer(domain, key, ts):
    t = _timers()
    key = key.encode() if isinstance(key, str) else key
    return t.Timer(domain=domain, key=key, timestamp=ts)


def register_event_timer(key, ts):
    """Call `on_timers` once the watermark reaches `ts` (ms); `key` is bytes, str or None."""
    _timers().register(_timer(_timers().TimeDomain.EVENT_TIME, key, ts))


def register_processing_timer(key, ts):
    """Call `on_timers` once the host's wall clock reaches `ts` (ms since the epoch)."""
    _timers().register(_timer(_timers().TimeDomain.PROCESSING_TIME, key, ts))


def delete_event_timer(key, ts):
    _timers().delete(_timer(_timers().TimeDomain.EVENT_TIME, key, ts))


def current_watermark():
    """The subtask's watermark (NO_WATERMARK before the first)."""
    return _timers().current_watermark()


def processing_time():
    """The host's wall clock, ms since the epoch."""
    return _timers().current_processing_time()


def emit_late(records):
    """Send records that came too late to the node's `<node>.late` output."""
    if records:
        # The late output is a list of WIT records in either batch form.
        late.emit(
            [
                types.Record(
                    key=None if r.key is None else _bytes(r.key),
                    value=_bytes(r.value),
                    timestamp=r.timestamp,
                    headers=r.headers,
                )
                for r in records
            ]
        )


def is_event_time(timer):
    return timer.domain == _timers().TimeDomain.EVENT_TIME


class Count:
    def create(self):
        return 0

    def add(self, acc, _value):
        return acc + 1

    def merge(self, acc, other):
        return acc + other


class Sum:
    def create(self):
        return 0

    def add(self, acc, value):
        return acc + value

    def merge(self, acc, other):
        return acc + other


class Min:
    def create(self):
        return None

    def add(self, acc, value):
        return value if acc is None else min(acc, value)

    def merge(self, acc, other):
        return acc if other is None else self.add(acc, other)


class Max:
    def create(self):
        return None

    def add(self, acc, value):
        return value if acc is None else max(acc, value)

    def merge(self, acc, other):
        return acc if other is None else self.add(acc, other)


class Reduce:
    """Fold inputs with `fn(acc, value) -> acc` (a module-level function, so state pickles)."""

    def __init__(self, fn):
        self.fn = fn

    def create(self):
        return None

    def add(self, acc, value):
        return value if acc is None else self.fn(acc, value)

    def merge(self, acc, other):
        return acc if other is None else self.add(acc, other)


class Fired:
    """A window's result: its key (bytes), bounds [start, end) in ms, aggregate value, and
    `update` when it is a later result of a window that fired already."""

    def __init__(self, key, start, end, value, update):
        self.key, self.start, self.end, self.value, self.update = key, start, end, value, update

    def key_str(self):
        return self.key.decode("utf-8", "replace")


class Windows:
    """Keyed event-time windows, as the Rust SDK's `weir_sdk::window::Windows`: keep one in the
    operator's attributes (made by __init__; the panes are keyed state), `add` batches in
    `process`, `fire` timers in `on_timers`. A record's key is its key (its value when it has
    none): put the operator behind a `hash` edge after a `key-by`. Records too late for every
    window they belong to go to `<node>.late`. The panes live in keyed state (`"windows"`
    unless `named`), as JSON: an aggregate's value must be a JSON value."""

    def __init__(self, shape, aggregate, size=0, slide=0, gap=0):
        self.shape, self.aggregate = shape, aggregate
        self.size, self.slide, self.gap = size, slide, gap
        self.allowed_lateness = 0
        self.panes = ValueState("windows")  # key -> list of [start, end, acc, fired]

    @staticmethod
    def tumbling(size_ms, aggregate):
        return Windows("tumbling", aggregate, size=size_ms)

    @staticmethod
    def sliding(size_ms, slide_ms, aggregate):
        if slide_ms <= 0 or size_ms % slide_ms:
            raise ValueError("a sliding window's slide must be positive and divide its size")
        return Windows("sliding", aggregate, size=size_ms, slide=slide_ms)

    @staticmethod
    def session(gap_ms, aggregate):
        return Windows("session", aggregate, gap=gap_ms)

    def with_allowed_lateness(self, ms):
        self.allowed_lateness = max(0, ms)
        return self

    def named(self, name):
        """Keep the panes under keyed-state name `name`: each Windows of one operator needs
        its own."""
        self.panes = ValueState(name)
        return self

    def _assign(self, ts):
        if self.shape == "tumbling":
            start = ts - ts % self.size
            return [(start, start + self.size)]
        if self.shape == "sliding":
            last = ts - ts % self.slide
            return [(last - i * self.slide, last - i * self.slide + self.size) for i in range(self.size // self.slide)]
        return [(ts, ts + self.gap)]

    def add(self, batch, value=lambda r: None):
        """Add records (each contributing `value(record)`); returns updated results of windows
        that had fired already (records within the allowed lateness)."""
        wm = current_watermark()
        updates, too_late = [], []
        for r in batch:
            if r.timestamp is None:
                raise ValueError("a record has no timestamp, so it has no window: give the node that produces it a `watermarks` strategy")
            windows = [w for w in self._assign(r.timestamp) if w[1] - 1 + self.allowed_lateness > wm]
            if not windows:
                too_late.append(r)
                continue
            key = r.key if r.key is not None else r.value
            v = value(r)
            panes = self.panes.get(key, [])
            for start, end in windows:
                f = self._add_to(panes, key, start, end, v, wm)
                if f is not None:
                    updates.append(f)
            self.panes.set(key, panes)
        emit_late(too_late)
        return updates

    def _add_to(self, panes, key, start, end, v, wm):
        agg, lateness = self.aggregate, self.allowed_lateness
        acc = agg.add(agg.create(), v)
        fired = False
        if self.shape == "session":
            keep = []
            for p in panes:
                if p[0] <= end and start <= p[1]:
                    if not p[3]:
                        delete_event_timer(key, p[1] - 1)
                    if lateness:
                        delete_event_timer(key, p[1] - 1 + lateness)
                    start, end = min(start, p[0]), max(end, p[1])
                    fired = fired or p[3]
                    acc = agg.merge(acc, p[2])
                else:
                    keep.append(p)
            panes[:] = keep
        else:
            for p in panes:
                if p[0] == start and p[1] == end:
                    p[2] = agg.merge(p[2], acc)
                    return Fired(key, start, end, p[2], True) if p[3] else None
        update = None
        if end - 1 <= wm:
            fired = True
            update = Fired(key, start, end, acc, True)
        else:
            fired = False
            register_event_timer(key, end - 1)
        if lateness:
            register_event_timer(key, end - 1 + lateness)
        panes.append([start, end, acc, fired])
        return update

    def fire(self, fired_timers):
        """The results of the windows the fired timers close, oldest first; windows past their
        allowed lateness are dropped."""
        out = []
        for t in fired_timers:
            if not is_event_time(t) or t.key is None:
                continue
            panes = self.panes.get(t.key)
            if not panes:
                continue
            for p in panes:
                if not p[3] and p[1] - 1 == t.timestamp:
                    p[3] = True
                    out.append(Fired(t.key, p[0], p[1], p[2], False))
            panes[:] = [p for p in panes if not (p[3] and p[1] - 1 + self.allowed_lateness <= t.timestamp)]
            if panes:
                self.panes.set(t.key, panes)
            else:
                self.panes.clear(t.key)
        out.sort(key=lambda f: (f.start, f.end, f.key))
        return out


# --- Keyed state (weir:plugin@0.2.0 operators) --------------------------------------------

_HANDLES = []  # every live state handle, flushed at the end of each call
_CACHE_ENTRIES = 100_000
_PAGE = 1024


def _ks():
    if keyed_state is None:
        raise RuntimeError("keyed state needs an operator built against wit/v0.2 (weir:plugin@0.2.0)")
    return keyed_state


def _key(key):
    return key.encode() if isinstance(key, str) else bytes(key)


def _scope(name, key):
    return _ks().Scope(state=name, key=_key(key))


def _flush():
    changes = []
    for h in _HANDLES:
        h._drain(changes)
    if changes:
        _ks().apply(changes)


def _keyed_end(ok):
    if ok:
        _flush()
    else:
        for h in _HANDLES:
            h._discard()


def keys(name):
    """Every key this subtask holds state `name` for (the current call's writes included)."""
    _flush()
    after = None
    while True:
        page = _ks().keys(name, after, _PAGE)
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1]


class _Handle:
    def __init__(self, name):
        self.name = name
        self._slots = {}  # cache key -> [value or None, dirty]
        _HANDLES.append(self)

    def __getstate__(self):
        return {"name": self.name}

    def __setstate__(self, state):
        self.__init__(state["name"])

    def _discard(self):
        self._slots.clear()

    def keys(self):
        return keys(self.name)


class ValueState(_Handle):
    """One value per key (any JSON value)."""

    def get(self, key, default=None):
        k = _key(key)
        slot = self._slots.get(k)
        if slot is None:
            raw = _ks().get(_scope(self.name, k))
            slot = [None if raw is None else json.loads(raw), False]
            self._slots[k] = slot
        return default if slot[0] is None else slot[0]

    def set(self, key, value):
        self._slots[_key(key)] = [value, True]

    def clear(self, key):
        self._slots[_key(key)] = [None, True]

    def _drain(self, out):
        ks = _ks()
        for k, slot in self._slots.items():
            if slot[1]:
                scope = ks.Scope(state=self.name, key=k)
                if slot[0] is None:
                    out.append(ks.Change_Clear(scope))
                else:
                    out.append(ks.Change_Set((scope, json.dumps(slot[0]).encode())))
                slot[1] = False
        if len(self._slots) > _CACHE_ENTRIES:
            self._slots.clear()


class ListState(ValueState):
    """A list per key, stored as one value."""

    def get(self, key, default=None):
        return list(super().get(key, []))

    def add(self, key, value):
        items = self.get(key)
        items.append(value)
        self.set(key, items)


class MapState(_Handle):
    """A map per key: entries (bytes or str map keys, JSON values) one at a time."""

    def get(self, key, map_key, default=None):
        k = (_key(key), _key(map_key))
        slot = self._slots.get(k)
        if slot is None:
            raw = _ks().map_get(_scope(self.name, k[0]), k[1])
            slot = [None if raw is None else json.loads(raw), False]
            self._slots[k] = slot
        return default if slot[0] is None else slot[0]

    def put(self, key, map_key, value):
        self._slots[(_key(key), _key(map_key))] = [value, True]

    def remove(self, key, map_key):
        self._slots[(_key(key), _key(map_key))] = [None, True]

    def entries(self, key):
        """Every (map key, value) of `key`'s map, in map-key order."""
        _flush()
        out, after = [], None
        while True:
            page = _ks().map_entries(_scope(self.name, key), after, _PAGE)
            out.extend((mk, json.loads(v)) for mk, v in page)
            if len(page) < _PAGE:
                return out
            after = page[-1][0]

    def _drain(self, out):
        ks = _ks()
        for (k, mk), slot in self._slots.items():
            if slot[1]:
                scope = ks.Scope(state=self.name, key=k)
                if slot[0] is None:
                    out.append(ks.Change_Remove((scope, mk)))
                else:
                    out.append(ks.Change_Put((scope, mk, json.dumps(slot[0]).encode())))
                slot[1] = False
        if len(self._slots) > _CACHE_ENTRIES:
            self._slots.clear()
