"""Unit tests of the Python SDK's pure parts (config, attribute state), run by CPython outside
a component: the componentize-py modules weir.py imports are stood in for by empty ones.

Run: python3 guest-sdk/python/tests/test_sdk.py (scripts/test.sh does)."""

import os
import sys
import types

# What componentize-py provides inside a component, stood in for: no host call is made here.
sys.modules["componentize_py_types"] = types.SimpleNamespace(Err=type("Err", (Exception,), {}))
world = types.ModuleType("wit_world")
imports = types.ModuleType("wit_world.imports")
imports.host_log = types.SimpleNamespace(log=lambda level, msg: None, Level=None)
imports.types = types.SimpleNamespace(Header=object, Record=object)
world.imports = imports
sys.modules["wit_world"] = world
sys.modules["wit_world.imports"] = imports
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import weir  # noqa: E402


class Counter(weir.Operator):
    """`seen` is state; `size` is config."""

    STATE_IN_ATTRIBUTES = ("seen",)

    def __init__(self, config, ctx):
        self.size = config["window_ms"]
        self.seen = 0


def test_config_document_keeps_types_and_pairs_still_work():
    assert weir._config_of('{"window_ms": 5, "on": true, "keys": [1, 2]}') == {
        "window_ms": 5,
        "on": True,
        "keys": [1, 2],
    }
    assert weir._config_of([("window_ms", "5")]) == {"window_ms": "5"}


def test_marked_attributes_are_state_and_the_rest_comes_from_this_starts_config():
    before = Counter({"window_ms": 5}, None)
    before.seen = 7
    after = Counter({"window_ms": 9}, None)
    after.restore(before.snapshot())
    assert (after.size, after.seen) == (9, 7)


def test_all_or_no_attributes():
    class Everything(Counter):
        STATE_IN_ATTRIBUTES = True

    class Nothing(Counter):
        STATE_IN_ATTRIBUTES = False

    old = Everything({"window_ms": 5}, None)
    old.seen = 3
    new = Everything({"window_ms": 9}, None)
    new.restore(old.snapshot())
    assert (new.size, new.seen) == (5, 3)
    assert Nothing({"window_ms": 5}, None).snapshot() == b""


if __name__ == "__main__":
    tests = [f for name, f in sorted(globals().items()) if name.startswith("test_")]
    for t in tests:
        t()
    print(f"python sdk: {len(tests)} tests passed")
