"""A generic codec between the typed events of workbench/core/events.py and JSON-ready data.

Every event is a frozen dataclass; encoding turns one into a dict keyed by its field names plus
`"type": ClassName`. Decoding looks the class up by name and rebuilds it from its type hints, so
tuples come back as tuples (JSON only has lists), nested events (a `SyscallBatch`'s `Syscall`s, a
`SyscallStats`' `SyscallStat`s) come back typed, and bytes, stored as base64, come back as bytes.
No per-event code: adding an event type or a field with a default needs no change here.

Fields a newer workbench added and this one does not know are dropped on decoding; an event type
this one does not know decodes to None (the reader skips it and counts it).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import types
import typing
from typing import Any, Callable

from workbench.core import events as _events

_BYTES_TAG = "$b64"  # bytes inside untyped (Any) values: {"$b64": "..."}


def _classes() -> dict[str, type]:
    return {name: obj for name, obj in vars(_events).items()
            if isinstance(obj, type) and dataclasses.is_dataclass(obj)}


CLASSES: dict[str, type] = _classes()
"""Every dataclass of workbench.core.events by class name."""


# --- encoding ----------------------------------------------------------------------------------


def to_data(value: Any) -> Any:
    """An event (or any value inside one) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = to_data(getattr(value, f.name))
        return out
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    return value


# --- decoding ----------------------------------------------------------------------------------


def untyped(value: Any) -> Any:
    """Data in an `Any` position: only the bytes tag and nested events can be restored."""
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES_TAG in value:
            return base64.b64decode(value[_BYTES_TAG])
        if isinstance(value.get("type"), str) and value["type"] in CLASSES:
            return from_data(value)
        return {k: untyped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untyped(v) for v in value]
    return value


def _converter(hint: Any) -> Callable[[Any], Any] | None:
    """A function turning JSON data back into a value of type `hint`; None when data is already it."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is bytes:
        return lambda v: base64.b64decode(v[_BYTES_TAG]) if isinstance(v, dict) else v
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda v: None if v is None else from_data(v, hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        conv = _converter(inner[0]) if len(inner) == 1 else untyped
        if conv is None:
            return None
        return lambda v: None if v is None else conv(v)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0])
            if item is None:
                return tuple
            return lambda v: tuple(item(x) for x in v)
        convs = [_converter(a) or (lambda x: x) for a in args]
        return lambda v: tuple(c(x) for c, x in zip(convs, v))
    if origin in (list, dict) or hint is Any or origin is None and hint not in (int, str, float, bool):
        return untyped
    return None


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    hints = typing.get_type_hints(cls, vars(_events))
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


def from_data(data: dict[str, Any], cls: type | None = None) -> Any:
    """Rebuild an event from `to_data` output; None when its type is unknown here."""
    if cls is None:
        cls = CLASSES.get(data.get("type", ""))
        if cls is None:
            return None
    kwargs = {}
    for name, conv in _plan(cls):
        if name in data:
            value = data[name]
            kwargs[name] = conv(value) if conv is not None else value
    return cls(**kwargs)
