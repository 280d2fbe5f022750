"""Where the CLI's settings come from: flag (before or after the command) > env > default.

``--db`` and ``--server`` name the same thing — which index to query — so they compete:
the one given the strongest way wins (a flag after the command name, then one before it,
then ``MLTRACE_SERVER`` / ``MLTRACE_DB``, then ``MLTRACE_INDEX`` / its default). Two
given equally strongly is ambiguous and an error that says which to drop, never a silent
pick. ``otel-mltrace config`` shows every setting with its source (:func:`explain`).

Example::

    target = choose_target(Given("db", "local.db", FLAG), Given("server", "http://x", ENV))
    assert target.db == "local.db" and target.server is None
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from otel_mltrace.config import SETTINGS, resolve

DEFAULT, ENV, FLAG, FLAG_AFTER = 0, 1, 2, 3
SOURCE_NAMES = {DEFAULT: "default", ENV: "env", FLAG: "flag", FLAG_AFTER: "flag"}
SECRET = {"auth_token", "openlineage_api_key", "headers", "forward_headers"}


@dataclass(frozen=True)
class Given:
    """A setting's value and how strongly it was given (``DEFAULT`` … ``FLAG_AFTER``)."""

    name: str
    value: str | None
    rank: int

    def how(self) -> str:
        if self.rank >= FLAG:
            return f"--{self.name}"
        return SETTINGS[self.name].env


@dataclass(frozen=True)
class Target:
    """Which index the query commands read: a local ``db`` or a collector ``server``."""

    db: str | None
    server: str | None


def rank_of(ctx: click.Context, param: str, value: Any) -> int:
    """``FLAG`` / ``ENV`` / ``DEFAULT`` for a group-level click option."""
    if value is None:
        return DEFAULT
    source = ctx.get_parameter_source(param)
    if source is click.core.ParameterSource.COMMANDLINE:
        return FLAG
    if source is click.core.ParameterSource.ENVIRONMENT:
        return ENV
    return DEFAULT


def stronger(current: Given, new: Given) -> Given:
    """``new`` when it was given at least as strongly (the nearer flag wins)."""
    return new if new.value is not None and new.rank >= current.rank else current


def choose_target(db: Given, server: Given) -> Target:
    """The index to query; ``click.UsageError`` when ``db`` and ``server`` tie."""
    if db.value is not None and server.value is not None:
        if db.rank == server.rank:
            raise click.UsageError(
                f"both {db.how()}={db.value} and {server.how()}={server.value} are set the same "
                f"way; keep one (a flag overrides an environment variable)"
            )
        return Target(db.value, None) if db.rank > server.rank else Target(None, server.value)
    if server.value is not None:
        return Target(None, server.value)
    return Target(db.value if db.value is not None else str(resolve("index")), None)


def describe_target(db: Given, server: Given, environ: Mapping[str, str] | None = None) -> str:
    """Which index the query commands read, and which setting chose it, in words.

    >>> describe_target(Given("db", None, DEFAULT), Given("server", "http://c:4318", ENV))
    'the collector at http://c:4318 (MLTRACE_SERVER)'
    """
    try:
        target = choose_target(db, server)
    except click.UsageError as exc:
        return f"nothing until this is settled: {exc.message}"
    if target.server is not None:
        return f"the collector at {target.server} ({server.how()})"
    if db.value is not None:
        return f"{target.db} ({db.how()})"
    env = os.environ if environ is None else environ
    index_env = SETTINGS["index"].env
    return f"{target.db} ({index_env if env.get(index_env) else 'the default index path'})"


def _show(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in SECRET:
        return "(set, hidden)"
    return str(value)


def explain(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """Every setting: variable, default, current value and its source (flag / env / default).

    >>> [r for r in explain({"db": "x.db"}, {}) if r["setting"] == "db"][0]["source"]
    'flag'
    """
    env = os.environ if environ is None else environ
    rows = []
    for name, setting in SETTINGS.items():
        flag = (flags or {}).get(name)
        raw = env.get(setting.env)
        if flag is not None:
            source, value = "flag", flag
        elif raw:
            source = "env"
            try:
                value = setting.parse(raw)
            except ValueError as exc:
                value = f"INVALID {raw!r}: {exc}"
        else:
            source, value = "default", setting.default()
        rows.append(
            {
                "setting": name,
                "env": setting.env,
                "default": _show(name, setting.default()),
                "value": _show(name, value),
                "source": source,
                "help": setting.help,
            }
        )
    return rows
