"""HTTP client for a running collector's query API: same methods as ``LineageQueries``.

Uses only the standard library so the CLI works after a plain ``pip install``.

Example::

    remote = RemoteQueries("http://127.0.0.1:4318", token=None)
    remote.trace("file:///data/predictions.csv@sha256:…")
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from mltrace_collector.index.queries.lineage_queries import NotFound
from mltrace_collector.index.queries.run_search import BadQuery, RunFilter


class RemoteError(RuntimeError):
    """The collector could not be reached or answered with an error."""


class RemoteBadQuery(RemoteError, BadQuery):
    """The collector rejected a filter or argument (HTTP 400): the same ``BadQuery`` a
    local index raises, so callers handle both alike."""


class RemoteQueries:
    """Queries answered by a collector's ``/api/v1`` endpoints."""

    def __init__(self, base_url: str, token: str | None = None, ca_file: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def _request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        url = f"{self.base_url}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self._context) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("detail", detail)
            except (ValueError, AttributeError):
                pass
            if exc.code == 404:
                raise NotFound(str(detail)) from None
            if exc.code == 400 and isinstance(detail, str):
                raise RemoteBadQuery(detail) from None
            raise RemoteError(f"{method} {url} -> HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise RemoteError(
                f"cannot reach the collector at {self.base_url}: {exc.reason}; is "
                "`otel-mltrace serve` running there?"
            ) from None

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, **params)

    def trace(self, ident: str, depth: int = 1000) -> dict[str, Any]:
        return dict(self._get("/trace", id=ident, depth=depth))

    def downstream(self, ident: str, depth: int = 1000) -> dict[str, Any]:
        return dict(self._get("/downstream", id=ident, depth=depth))

    def inspect(self, run_id: str) -> dict[str, Any]:
        return dict(self._get("/runs/" + urllib.parse.quote(run_id, safe="")))

    def history(
        self, component: str, since_ns: int = 0, until_ns: int = 2**62, limit: int = 50
    ) -> list[dict[str, Any]]:
        path = "/components/" + urllib.parse.quote(component, safe="") + "/history"
        return list(self._get(path, since_ns=since_ns, until_ns=until_ns, limit=limit))

    def runs(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        return list(self._get("/runs", limit=limit, offset=offset))

    def components(self) -> list[dict[str, Any]]:
        return list(self._get("/components"))

    def stale(self, older_than_s: float, now_ns: int | None = None) -> list[dict[str, Any]]:
        return list(self._get("/stale", older_than_s=older_than_s, now_ns=now_ns))

    def flag(self, ids: list[str], reason: str | None = None) -> list[dict[str, Any]]:
        return list(self._request("POST", "/flags", {"ids": ids, "reason": reason}))

    def unflag(self, ids: list[str] | None) -> int:
        body = {"all": True} if ids is None else {"ids": ids}
        return int(self._request("POST", "/flags/remove", body)["removed"])

    def flags(self) -> list[dict[str, Any]]:
        return list(self._get("/flags"))

    def review(self, limit: int = 20) -> dict[str, Any]:
        return dict(self._get("/review", limit=limit))

    def search_runs(self, f: RunFilter) -> list[dict[str, Any]]:
        return list(self._get("/search/runs", **f.validate().to_params()))

    def compare(self, run_ids: list[str], depth: int = 1000) -> dict[str, Any]:
        return dict(self._get("/compare", run=run_ids, depth=depth))
