"""pytest fixtures around ``PostgresServer``: one server per session, fresh databases.

``postgres_server`` (session) starts the server once and always stops it; when PostgreSQL
cannot be found or started it *skips* the tests that need it, with the reason — unless
``MLTRACE_REQUIRE_POSTGRES=1`` (CI), where it fails instead. ``postgres_url`` gives each
test a fresh empty database, dropped afterwards.

Session scope only holds across modules when the fixtures are registered once, from
``tests/conftest.py``::

    pytest_plugins = ["tests.servers.fixtures"]

Example::

    def test_roundtrip(postgres_url: str) -> None:
        store = PostgresStore(postgres_url)
        ...
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator

import pytest

from .postgres import PostgresServer, PostgresUnavailable

REQUIRE_ENV = "MLTRACE_REQUIRE_POSTGRES"


def _interrupt_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM (CI cancelling a job) interrupt pytest like Ctrl-C, so finalizers stop
    the server; plain SIGTERM would kill Python and orphan ``postgres``. Returns an undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return lambda: None
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway PostgreSQL for the whole session (skips if there is none)."""
    restore = _interrupt_on_sigterm()
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        restore()
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"PostgreSQL required ({REQUIRE_ENV}) but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()
        restore()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database on the session server; dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url.rsplit("/", 1)[1])
