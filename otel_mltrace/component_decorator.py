"""The ``@component`` decorator: every call of the decorated function is one component run.

It binds the function's arguments to the run's inputs, outputs and params and opens a
:class:`otel_mltrace.run_span.Run` around the call (sync and ``async def`` alike).
:mod:`otel_mltrace.run` re-exports it. Example::

    import otel_mltrace as mlt

    @mlt.component("train", inputs=["features"], outputs=["model_path"], params=["C"])
    def train(features: str, model_path: str, C: float = 1.0) -> None: ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar, cast, overload

from otel_mltrace import _validate
from otel_mltrace.checks import Check, CheckContext
from otel_mltrace.run_span import Run

P = ParamSpec("P")
R = TypeVar("R")


def _bind(sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _declare_returns(r: Run, value: Any) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        r.add_output(item)


@overload
def component(name: Callable[P, R]) -> Callable[P, R]: ...
@overload
def component(
    name: str | None = None,
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    params: Sequence[str] = (),
    checks: Sequence[Check | Callable[[CheckContext], Any]] = (),
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def component(
    name: str | Callable[P, R] | None = None,
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    params: Sequence[str] = (),
    checks: Sequence[Check | Callable[[CheckContext], Any]] = (),
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of :func:`run`: every call of the function is one component run.

    ``inputs`` names arguments whose values are artifacts read (identified before the
    call); ``outputs`` names arguments whose artifacts are written (identified after the
    call) and may include ``"return"`` for the return value (a returned tuple gives one
    output per element); ``params`` names arguments logged as params; ``checks`` see
    inputs/outputs by argument name (``"return"``). Works on functions,
    methods, and ``async def``. Inside, :func:`current_run` gives the run.

    >>> @component("train", inputs=["features"], outputs=["model_path"], params=["C"])
    ... def train(features: str, model_path: str, C: float = 1.0) -> None: ...
    """
    if callable(name):
        return component()(name)

    for kind, names in (("inputs", inputs), ("outputs", outputs), ("params", params)):
        _validate.name_list(kind, names)
    _validate.string_list("checks", checks)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        comp = _validate.component_name(name if name is not None else fn.__name__)
        sig = inspect.signature(fn)
        known = set(sig.parameters)
        for declared in (*inputs, *params, *(o for o in outputs if o != "return")):
            if declared not in known:
                raise ValueError(
                    f"@component({comp!r}) names argument {declared!r}, but "
                    f"{fn.__qualname__} has only {sorted(known)}; fix the name"
                )
        func_name = fn.__qualname__
        file_name = fn.__code__.co_filename

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Run, dict[str, Any]]:
            values = _bind(sig, args, kwargs)
            r = Run(
                comp,
                inputs=[values[a] for a in inputs],
                params={p: values[p] for p in params},
                code_function=func_name,
                code_file=file_name,
                checks=checks,
            )
            if checks:
                r._data_in = {a: values[a] for a in inputs}
            r._later = [values[o] for o in outputs if o != "return"]
            return r, values

        def finish(r: Run, values: dict[str, Any], result: Any) -> None:
            for o in outputs:
                if o == "return":
                    _declare_returns(r, result)
                else:
                    r.add_output(values[o])
            if checks:
                r._data_out = {o: result if o == "return" else values[o] for o in outputs}

        if inspect.iscoroutinefunction(fn):
            async_fn = cast(Callable[..., Any], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                r, values = start(args, kwargs)
                with r:
                    result = await async_fn(*args, **kwargs)
                    finish(r, values, result)
                    return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            r, values = start(args, kwargs)
            with r:
                result = fn(*args, **kwargs)
                finish(r, values, result)
                return result

        return wrapper

    return decorate
