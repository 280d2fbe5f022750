"""Optional dependencies, imported only when the feature that needs one is used.

``pip install otel-mltrace`` gives the SDK, the embedded index and the CLI queries; each
extra (``collector``, ``postgres``, ``openlineage``, ``numpy``, ``pandas``, ``examples``)
adds the packages of one feature. When a configured feature's package is missing,
``require`` raises ``MissingExtra``, whose message names the feature, the missing module
and the command that installs it.

Example::

    from otel_mltrace.extras import require

    require("psycopg", extra="postgres", feature="a postgresql:// store")  # or MissingExtra
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ModuleNotFoundError):
    """A feature was asked for whose optional dependency is not installed."""


def install_hint(extra: str) -> str:
    return f"pip install 'otel-mltrace[{extra}]'"


def missing_message(module: str, *, extra: str, feature: str) -> str:
    """``<feature> needs <module>, which is not installed: pip install 'otel-mltrace[x]'``."""
    return f"{feature} needs the Python module {module!r}, which is not installed: " + (
        install_hint(extra)
    )


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise ``MissingExtra`` naming the extra.

    Only a missing ``module`` itself (or a package it is part of) becomes ``MissingExtra``;
    any other import failure inside it propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise
        raise MissingExtra(
            missing_message(exc.name, extra=extra, feature=feature), name=exc.name
        ) from exc
