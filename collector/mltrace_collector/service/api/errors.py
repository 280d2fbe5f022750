"""Error answers of the query API and the statuses its OpenAPI document declares.

A query or path parameter that is malformed or out of range is the caller's mistake:
HTTP 400 with a ``detail`` naming the parameter, its value and the allowed range (never
a 500 from deep in the store, e.g. an offset beyond what an SQL integer holds). A
malformed JSON *body* stays FastAPI's 422 with its list of errors. The OpenAPI document
lists every status each operation can answer, the OTLP ``/v1/traces`` route included
(it is a plain Starlette route, invisible to FastAPI's generator).

Example::

    app = FastAPI()
    install_error_answers(app, auth=True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from mltrace_collector.index.queries.lineage_queries import NotFound

T = TypeVar("T")


def answer(fn: Callable[[], T]) -> T:
    """``fn()``, its ``NotFound`` as a 404 and its ``ValueError`` (a bad query) as a 400."""
    try:
        return fn()
    except NotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc.args[0] if exc.args else exc)) from None
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


_STATUS_TEXT = {
    "400": "Bad request: a parameter or the body is malformed or out of range (detail names it)",
    "401": "Missing or wrong bearer token (when the collector is started with one)",
    "404": "No run, artifact or component with that ID",
    "413": "Body larger than the collector's limit",
    "415": "Unsupported Content-Type or Content-Encoding",
    "422": "JSON body that does not match the schema",
    "503": "Collector overloaded: retry after the Retry-After header's seconds",
}
_OTLP_PATH = "/v1/traces"
_LOOKUPS = ("/api/v1/trace", "/api/v1/downstream", "/api/v1/review")
"""GET operations without a path parameter that still answer 404 (an unknown ID)."""


def _parameter_problem(errors: list[Any]) -> str | None:
    """The first query/path parameter error as one sentence, or None for body errors."""
    for error in errors:
        loc = error.get("loc", ())
        if len(loc) >= 2 and loc[0] in ("query", "path"):
            where = "query parameter" if loc[0] == "query" else "path parameter"
            value = error.get("input")
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "..."
            return f"{where} {loc[1]}={shown}: {error.get('msg', 'invalid value')}"
    return None


def install_error_answers(app: FastAPI, *, auth: bool) -> None:
    """Answer bad parameters with 400 naming them, and declare every status in OpenAPI
    (``auth``: the routes answer 401 without the token)."""

    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problem = _parameter_problem(list(exc.errors()))
        if problem is None:  # a body that does not match its schema: FastAPI's 422
            return JSONResponse(status_code=422, content={"detail": _plain(exc.errors())})
        return JSONResponse(status_code=400, content={"detail": problem})

    app.add_exception_handler(RequestValidationError, bad_request)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document_statuses(schema, auth=auth)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _plain(errors: Any) -> Any:
    """Validation errors as JSON (their ``ctx`` may hold exception objects)."""
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]


def document_statuses(schema: dict[str, Any], *, auth: bool) -> None:
    """Add to ``schema`` the error statuses each operation answers, and the OTLP route."""
    paths = schema.setdefault("paths", {})
    paths[_OTLP_PATH] = {
        "post": {
            "tags": ["otlp"],
            "summary": "OTLP/HTTP trace export (protobuf or JSON)",
            "description": "Content-Type application/x-protobuf or application/json; "
            "gzip/deflate Content-Encoding. 200 may carry a partial success naming "
            "rejected spans.",
            "operationId": "otlp_traces_v1_traces_post",
            "responses": {"200": {"description": "Stored (see partial_success)"}},
        }
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = []
            if path == _OTLP_PATH or "parameters" in operation or "requestBody" in operation:
                codes.append("400")
            if auth and path != "/healthz":
                codes.append("401")
            if path == _OTLP_PATH:
                codes += ["413", "415", "503"]
            else:
                if "{" in path or method == "post" or path in _LOOKUPS:
                    codes.append("404")
                if "requestBody" in operation:
                    codes.append("422")
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(code, {"description": _STATUS_TEXT[code]})
            if "422" not in codes:
                responses.pop("422", None)  # parameter errors are 400 (install_error_answers)
