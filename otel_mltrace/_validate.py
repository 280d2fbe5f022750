"""Early checks of user input to the SDK: errors name the value and say what to do."""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any

Scalar = str | bool | int | float


def component_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"component name must be a str, got {type(name).__name__} {name!r}; "
            "pass the step's name, e.g. run('featurize')"
        )
    if not name.strip() or "\n" in name:
        raise ValueError(
            f"component name {name!r} must be non-empty and on one line, e.g. 'featurize'"
        )
    return name


def key(kind: str, k: object) -> str:
    if not isinstance(k, str) or not k or any(c in k for c in "\n\r"):
        raise TypeError(f"{kind} name must be a non-empty one-line str, got {k!r}")
    return k


def param_value(k: str, v: object) -> Scalar:
    if isinstance(v, str | bool | int | float):
        return v
    raise TypeError(
        f"param {k!r} has a {type(v).__name__} value {v!r}; params must be str, bool, int "
        f"or float: pass str(value) or json.dumps(value)"
    )


def metric_value(k: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        # numpy scalars: accept anything with __float__ that is not a str/bool
        if hasattr(v, "__float__") and not isinstance(v, str | bytes | bool):
            v = float(v)
        else:
            raise TypeError(
                f"metric {k!r} must be a number, got {type(v).__name__} {v!r}; "
                "log non-numbers with log_param()"
            )
    return float(v)  # NaN and ±inf are values too (a diverged loss): stored and shown as such


def string_list(kind: str, values: Any) -> list[Any]:
    if values is None:
        return []
    # A dict would give its keys, an array its rows, a DataFrame its column names: each
    # silently taken as a separate artifact. They are one item (or a mistake), not a list.
    if (
        isinstance(values, str | bytes | Mapping)
        or hasattr(values, "shape")
        or not hasattr(values, "__iter__")
    ):
        shape = getattr(values, "shape", None)
        shown = f"of shape {tuple(shape)}" if shape is not None else reprlib.repr(values)
        fix = f"wrap a single item: {kind}=[item]"
        if isinstance(values, Mapping):
            fix += f", or pass the values: {kind}=list(d.values())"
        raise TypeError(f"{kind} must be a list, got {type(values).__name__} {shown}; {fix}")
    return list(values)


def mapping(kind: str, values: Any) -> dict[Any, Any]:
    """``values`` as a dict; a TypeError naming ``kind`` and the expected shape otherwise."""
    if values is None:
        return {}
    if not hasattr(values, "items") or not callable(values.items):
        hint = ""
        if isinstance(values, list | tuple) and all(
            isinstance(p, tuple | list) and len(p) == 2 for p in values
        ):
            hint = f"; for pairs use {kind}=dict({values!r})"
        raise TypeError(
            f"{kind} must be a mapping of names to values, e.g. {kind}={{'C': 1.0}}, got "
            f"{type(values).__name__} {values!r}{hint}"
        )
    return dict(values.items())


def name_list(kind: str, values: Any) -> list[str]:
    """Argument names for ``@component``: a list of str (a bare str is a common slip)."""
    items = string_list(kind, values)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(
                f"{kind} must list argument names as str, got {type(item).__name__} {item!r}"
            )
    return items
