"""Option objects from plain dicts, checked as the command line checks them.

The datamodules take groups of settings as frozen dataclasses
(:class:`~mgr.data.datasets.VideoOptions`, :class:`~mgr.data.datasets.HeatmapOptions`).
The command line builds them from YAML with jsonargparse, which refuses unknown
keys and values of the wrong type. :func:`coerce_options` does the same for a
Python caller who passes a dict (``video={"size": 224, "crop": "center"}``): an
unknown key is refused naming the valid ones, a value is checked against the
field's annotation (``int``, ``float``, ``bool``, ``str``, ``Literal``, tuples,
``X | None``; lists become tuples as YAML's do), and the dataclass's own
``__post_init__`` checks follow.

This module imports nothing from mgr but :mod:`mgr.errors`, so every layer may use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

from mgr.errors import UserError

__all__ = ["coerce_options"]

_T = TypeVar("_T")


def coerce_options(cls: type[_T], value: _T | Mapping[str, Any] | None, name: str) -> _T | None:
    """``value`` as a ``cls`` instance: an instance or ``None`` as is, a mapping checked.

    Args:
        cls: a dataclass.
        value: an instance of ``cls``, ``None``, or a mapping of field names to values.
        name: the argument's name, for the messages (e.g. ``"video"``).

    Returns:
        The instance (``None`` for ``None``).

    Raises:
        UserError: for an unknown key (naming the valid ones and the nearest), a
            value that does not fit its field's type, or a value the dataclass refuses.
        TypeError: if ``value`` is neither ``None``, a ``cls`` nor a mapping.
    """
    if value is None or isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a {cls.__name__} or a dict of its fields, got {type(value).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in value if k not in fields]
    if unknown:
        key = str(unknown[0])
        near = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UserError(
            f"{name}: unknown key {key!r}{hint}; {cls.__name__} takes {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, item in value.items():
        try:
            kwargs[key] = _check(item, hints[key])
        except (TypeError, ValueError) as err:
            raise UserError(f"{name}.{key}: {err}") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"{name}: {err}") from None


def _check(value: Any, hint: Any) -> Any:
    """``value`` checked against the annotation ``hint`` (lists become tuples)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        for arm in args:
            try:
                return _check(value, arm)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{value!r} fits none of {_describe(hint)}")
    if hint is type(None):
        if value is None:
            return None
        raise ValueError(f"expected None, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ValueError(f"expected one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of {_describe(hint)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(v, args[0]) for v in value)
        if len(value) != len(args):
            raise ValueError(f"expected {len(args)} values, got {len(value)}: {list(value)}")
        return tuple(_check(v, a) for v, a in zip(value, args, strict=True))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {value!r}")
    return value  # an annotation this checker does not know: left to the dataclass


def _describe(hint: Any) -> str:
    return str(hint).replace("typing.", "")
