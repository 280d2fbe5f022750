"""A throwaway PostgreSQL server on the loopback interface, for tests.

``PostgresServer.start()`` finds ``initdb``/``pg_ctl`` (``$PATH``, then the usual install
folders), initializes a cluster in a temporary folder with trust authentication and the
``postgres`` superuser, starts it on ``127.0.0.1`` on a free port (fsync on, as in
production), waits until it accepts connections and hands back URLs of fresh databases.
``stop()`` shuts it down with ``pg_ctl stop -m fast`` and deletes the folder; it is
idempotent and also registered with ``atexit`` so an interrupted session leaves nothing.

PostgreSQL refuses to run as root: when tests run as root, every server command runs as
the ``postgres`` system user (the folder is handed to it). Anything that makes the server
impossible here (no binaries, root without a ``postgres`` user, a failed start) raises
``PostgresUnavailable`` with the reason, which fixtures turn into a skip.

Example::

    with PostgresServer.start() as pg:
        url = pg.create_database()      # postgresql://postgres@127.0.0.1:PORT/test_1a2b...
        ...                             # connect with psycopg, open a store, ...
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .ports import free_port

if TYPE_CHECKING:
    from psycopg.sql import Composed

SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/usr/local/pgsql/bin",  # source builds
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)
SERVER_USER = "postgres"
"""The unprivileged system user the server runs as when the tests run as root."""


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be found or started on this machine; ``str()`` says why."""


def _version_key(path: str) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in path).split()
    return tuple(int(d) for d in digits)


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: from ``$PATH`` first, else the newest
    of the usual install folders; ``None`` when there is none.

    >>> find_bindir()  # doctest: +SKIP
    PosixPath('/usr/lib/postgresql/15/bin')
    """
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    candidates: list[str] = []
    for pattern in SEARCH_GLOBS:
        candidates.extend(glob.glob(pattern))
    for folder in sorted(candidates, key=_version_key, reverse=True):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server as: ``None`` means "as the current user"."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no {SERVER_USER!r} system user to run PostgreSQL "
            "as (it refuses to run as root); create one or run the tests as a normal user"
        ) from None


def _reachable_by(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether ``account`` can traverse every parent folder of ``path``."""
    for parent in path.resolve().parents:
        mode = parent.stat()
        if mode.st_uid != account.pw_uid and not mode.st_mode & stat.S_IXOTH:
            return False
    return True


class PostgresServer:
    """One running throwaway PostgreSQL cluster; see the module docstring.

    Attributes: ``host`` (``127.0.0.1``), ``port``, ``user`` (``postgres``, trust auth),
    ``base`` (the temporary folder: ``data/``, ``server.log`` and the Unix socket).
    """

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, bindir: Path, base: Path, account: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.base = base
        self.data = base / "data"
        self.log = base / "server.log"
        self.port = 0
        self._account = account
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def start(cls, *, bindir: Path | None = None, timeout: float = 60.0) -> PostgresServer:
        """Initialize and start a cluster; raises ``PostgresUnavailable`` with the reason."""
        bindir = bindir or find_bindir()
        if bindir is None:
            raise PostgresUnavailable(
                "no PostgreSQL binaries (initdb, pg_ctl) on PATH or in " + ", ".join(SEARCH_GLOBS)
            )
        account = _server_account()
        parent = Path(tempfile.gettempdir())
        if account is not None and not _reachable_by(parent, account):
            parent = Path("/tmp")
        base = Path(tempfile.mkdtemp(prefix="mltrace-pg-", dir=parent))
        server = cls(bindir, base, account)
        atexit.register(server.stop)
        try:
            if account is not None:
                os.chown(base, account.pw_uid, account.pw_gid)
            server._initdb(timeout)
            server._start(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _initdb(self, timeout: float) -> None:
        # --no-sync only skips initdb's final flush of a folder that is thrown away anyway.
        self._run(
            ["initdb", "-D", str(self.data), "--auth=trust", "-U", self.user,
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            timeout, "initdb",
        )  # fmt: skip

    def _start(self, timeout: float, attempts: int = 3) -> None:
        conf = self.data / "postgresql.conf"
        original = conf.read_text("utf-8")
        for attempt in range(attempts):
            self.port = free_port(self.host)
            conf.write_text(
                original + "\n# throwaway test server\n"
                f"listen_addresses = '{self.host}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.base}'\nfsync = on\n"
                "max_connections = 200\n",
                "utf-8",
            )
            try:
                self._run(
                    ["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                     "-t", str(int(timeout)), "start"],
                    timeout + 10, "pg_ctl start",
                )  # fmt: skip
            except PostgresUnavailable:
                if "already in use" in self._log_tail() and attempt + 1 < attempts:
                    continue  # someone took the port between free_port() and bind: retry
                raise
            self._wait_ready(timeout)
            return

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"PostgreSQL on port {self.port} does not accept connections: {exc}"
                    ) from exc
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``) and delete its folder. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    self._run(
                        ["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"],
                        40,
                        "pg_ctl stop",
                    )
                except PostgresUnavailable:
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """Last resort: SIGQUIT then SIGKILL the postmaster recorded in *our* data folder."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            for sig in (signal.SIGQUIT, signal.SIGKILL):
                os.kill(pid, sig)
                for _ in range(50):
                    os.kill(pid, 0)  # raises ProcessLookupError once it is gone
                    time.sleep(0.1)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- databases ----------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:PORT/dbname`` (trust auth: no password)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a random ``test_…`` name by default); returns its URL."""
        from psycopg import sql

        name = name or f"test_{uuid.uuid4().hex[:16]}"
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting any session still in it."""
        from psycopg import sql

        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _admin(self, statement: Composed) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement)

    # -- processes ----------------------------------------------------------------------
    def _run(self, args: Sequence[str], timeout: float, what: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        kwargs: dict[str, Any] = {}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if self._account is not None:
            kwargs = {"user": self._account.pw_uid, "group": self._account.pw_gid,
                      "extra_groups": []}  # fmt: skip
            env["HOME"] = self._account.pw_dir
        try:
            proc = subprocess.run(
                cmd, env=env, cwd=self.base, capture_output=True, text=True,
                timeout=timeout, check=False, **kwargs,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{what} failed: {exc}") from exc
        if proc.returncode != 0:
            raise PostgresUnavailable(
                f"{what} exited with {proc.returncode}: {proc.stderr.strip() or proc.stdout}"
                f"\n--- server log ---\n{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"
