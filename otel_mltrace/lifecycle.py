"""Killed runs leave a trace: SIGTERM handling and run start records.

* **SIGTERM** (an Airflow or Kubernetes timeout): every open run ends with status error
  and the message ``terminated by SIGTERM``, spans are flushed, then the handler the
  application had installed runs (the default one: the process dies of SIGTERM as before,
  exit status 143). Installed by the first run started in the main thread; not installed
  with ``MLTRACE_HANDLE_SIGTERM=false`` (applications that own their signals) or when the
  current handler was not set from Python (nothing to chain to).
* **SIGKILL / OOM** cannot be caught: instead each run is *announced* when it starts by a
  tiny start record (``semconv.RUN_START_SPAN_NAME``), made and exported about
  ``ANNOUNCE_DELAY_S`` after it started by a background thread (runs that ended by then
  need none), so the index shows the run as
  ``running`` and, once it has not ended within ``MLTRACE_ABANDON_AFTER`` seconds, as
  ``abandoned``. ``MLTRACE_ANNOUNCE_RUNS=false`` turns start records off.

``Run`` calls :func:`run_started` / :func:`run_ended`; nothing here is public API beyond the
settings. Example (what a killed process leaves)::

    $ otel-mltrace history train
    RUN           STATUS     ...   terminated by SIGTERM (signal 15)
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from otel_mltrace import semconv
from otel_mltrace.config import resolve

if TYPE_CHECKING:
    from otel_mltrace.run_view import RunView

log = logging.getLogger("otel_mltrace")

ANNOUNCE_DELAY_S = 0.1
"""A run still open this long after it started is announced (and flushed at once)."""

_announced: set[int] = set()  # id(run) of open runs whose start record was made
_open: dict[int, RunView] = {}  # id(run) -> run, in start order; dict ops are atomic (GIL)
_handler_state = {"checked": False}
_previous: list[Any] = []  # the handler ours replaced (one entry once installed)


def flush_spans(timeout_s: float) -> None:
    """Hand every finished span to the exporter now, keeping the retry back-off and the
    user's delivery report as they are (:meth:`DeliveringProcessor.hand_over`)."""
    from otel_mltrace.provider import hand_over

    hand_over(timeout_s)


# -- open runs -------------------------------------------------------------------------------
def run_started(run: RunView, span: trace.Span) -> None:
    """Register ``run`` as open; wake the announcer; install the SIGTERM handler on first
    use. Costs a dict insert and a flag test: the start record itself is made by the
    announcer thread, and only for runs still open when it looks (see ``_Announcer``)."""
    _open[id(run)] = run
    if not _handler_state["checked"]:
        _maybe_install()
    if _announce_enabled():
        _announcer.wake()


def run_ended(run: RunView) -> None:
    _open.pop(id(run), None)
    _announced.discard(id(run))


def open_runs() -> list[RunView]:
    """Runs started and not yet ended, in any thread, oldest first."""
    return list(_open.values())


# -- start records ---------------------------------------------------------------------------
_announce_setting: list[bool] = []


def _announce_enabled() -> bool:
    if not _announce_setting:
        try:
            _announce_setting.append(bool(resolve("announce_runs")))
        except ValueError as exc:
            log.warning("otel-mltrace: %s; run start records stay on", exc)
            _announce_setting.append(True)
    return _announce_setting[0]


def _announce(run: RunView, span: trace.Span) -> None:
    """Emit the start record of ``run``: a zero-length child of its span, at its start."""
    from otel_mltrace.provider import get_tracer

    attrs: dict[str, Any] = {
        semconv.RUN_START_RUN_ID: run.id,
        semconv.RUN_START_COMPONENT: run.component,
    }
    parent = run._initial.get(semconv.PARENT_RUN_ID)
    if parent is not None:
        attrs[semconv.PARENT_RUN_ID] = parent
    started = getattr(span, "start_time", None)  # SDK spans; None: now
    ctx = trace.set_span_in_context(span)
    record = get_tracer().start_span(
        semconv.RUN_START_SPAN_NAME, context=ctx, attributes=attrs, start_time=started
    )
    record.end(end_time=started)


class _Announcer:
    """One daemon thread that announces runs ``ANNOUNCE_DELAY_S`` after they start and
    flushes at once: a start record must be stored before a SIGKILL seconds later, and
    the batch processor alone waits up to its schedule delay. Runs already ended by then
    (most runs of a tight loop) need no start record: their own span is on its way, so
    a short run costs only a queue append, and a burst of long ones one export."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="otel-mltrace-announce", daemon=True
                    )
                    self._thread.start()
        if not self._event.is_set():
            self._event.set()

    def after_fork(self) -> None:  # the child has no thread: start one on the next run
        self._thread, self._event, self._lock = None, threading.Event(), threading.Lock()

    def _loop(self) -> None:
        if hasattr(signal, "pthread_sigmask"):  # SIGTERM is for the main thread: a signal
            # delivered to this one would not wake a main thread blocked in C (sleep, I/O)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        while True:
            self._event.wait()
            time.sleep(ANNOUNCE_DELAY_S)  # let short runs end; gather the burst
            self._event.clear()
            try:
                if self.announce_pending():
                    flush_spans(float(resolve("export_timeout")))
            except Exception:  # never let the thread die: later runs still need it
                log.debug("otel-mltrace: announcing runs failed", exc_info=True)

    @staticmethod
    def announce_pending() -> int:
        """Emit start records of the open runs not announced yet; returns how many."""
        emitted = 0
        for key, run in list(_open.items()):  # a C-level copy: safe against other threads
            span = run._span
            if span is not None and key not in _announced and _open.get(key) is run:
                _announced.add(key)
                _announce(run, span)
                emitted += 1
        return emitted


_announcer = _Announcer()


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing workers) inherits the parent's open runs: they are
    not its own, and a SIGTERM to the child (``Pool.terminate()``) must not end them."""
    _open.clear()
    _announced.clear()
    _announcer.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- SIGTERM ---------------------------------------------------------------------------------
Handler = Callable[[int, FrameType | None], Any] | int | None


def _maybe_install() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal works in the main thread only: a later run there installs
    _handler_state["checked"] = True
    try:
        if not resolve("handle_sigterm"):
            return
    except ValueError as exc:
        log.warning("otel-mltrace: %s; no SIGTERM handler installed", exc)
        return
    install_sigterm_handler()


def install_sigterm_handler() -> bool:
    """Install the SIGTERM handler now (main thread only); True if installed.

    Runs call this themselves; call it directly to have it before the first run.

    >>> install_sigterm_handler()   # doctest: +SKIP
    True
    """
    previous: Handler = signal.getsignal(signal.SIGTERM)
    if previous is None:  # set from C: it cannot be chained, so leave it alone
        log.info("otel-mltrace: SIGTERM has a non-Python handler; not installing ours")
        return False
    if previous == signal.SIG_IGN:  # the process survives SIGTERM: its runs go on too
        return False
    if previous is _on_sigterm:
        return True
    signal.signal(signal.SIGTERM, _on_sigterm)
    _previous[:] = [previous]
    _handler_state["checked"] = True
    return True


def end_open_runs(message: str) -> int:
    """End every open run (innermost first) with status error and ``message``."""
    runs = open_runs()
    for run in reversed(runs):
        run._terminate(message)
    return len(runs)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Chain to the application's handler first: it may shut down gracefully and let the
    runs finish (then only what already ended is flushed). When it ends the process (it
    raises, e.g. ``sys.exit``) or there is none (the default: die of the signal), the open
    runs are ended as error naming the signal and flushed before the process goes."""
    message = f"terminated by SIGTERM (signal {signum})"
    previous = _previous[0] if _previous else signal.SIG_DFL
    if callable(previous):
        try:
            previous(signum, frame)
        except BaseException:
            _off_main_thread(lambda: _record_and_flush(message))
            raise
        _off_main_thread(lambda: _record_and_flush(None))  # e.g. a Pool worker's queued runs
        return
    _off_main_thread(lambda: _record_and_flush(message))
    signal.signal(signum, signal.SIG_DFL)  # die of the signal: the exit status stays 143
    os.kill(os.getpid(), signum)


def _record_and_flush(message: str | None) -> None:
    try:
        if message is not None:
            end_open_runs(message)
        flush_spans(float(resolve("export_timeout")))
    except Exception:  # the application's own handling must still happen
        log.warning("otel-mltrace: recording runs killed by SIGTERM failed", exc_info=True)


def _off_main_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a helper thread, bounded: the handler interrupts the main thread at
    any bytecode, possibly while it holds a lock ``work`` needs (a span's, the exporter's);
    waiting there would hang the process until SIGKILL and lose everything."""
    helper = threading.Thread(target=work, name="otel-mltrace-sigterm", daemon=True)
    helper.start()
    helper.join(float(resolve("export_timeout")) + 1.0)
    if helper.is_alive():
        log.warning("otel-mltrace: recording runs at SIGTERM did not finish in time")
