"""Query API: out-of-range parameters are a 400 naming the parameter, and the OpenAPI
document declares every status the API answers.

``/api/v1/runs?offset=2^64`` and ``since_ns=2^63`` used to reach SQLite and fail there
(500: "Python int too large to convert to SQLite INTEGER"); the OpenAPI document listed
only 200 and 422 although the API answers 400, 401, 404, 413, 415 and 503 too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mltrace_collector.service.collector import Collector
from tests.collector_variants import loopback_collector

TOKEN = "s3cret-token"
OUT_OF_RANGE = [
    ("/api/v1/runs?offset=99999999999999999999", "offset"),
    ("/api/v1/runs?offset=9223372036854775808", "offset"),
    ("/api/v1/runs?limit=0", "limit"),
    ("/api/v1/runs?limit=many", "limit"),
    ("/api/v1/components/c/history?since_ns=9223372036854775808", "since_ns"),
    ("/api/v1/components/c/history?until_ns=-1", "until_ns"),
    ("/api/v1/stale?now_ns=9223372036854775808", "now_ns"),
    ("/api/v1/stale?older_than_s=nan", "older_than_s"),
    ("/api/v1/trace?id=x&depth=-1", "depth"),
    ("/api/v1/review?limit=100000", "limit"),
]


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Collector]:
    """A collector that requires a bearer token."""
    with loopback_collector(tmp_path / "lineage.db", auth_token=TOKEN, decode_workers=0) as c:
        yield c


def test_out_of_range_parameters_are_400_naming_them(collector: Collector) -> None:
    assert collector.http is not None
    base = f"http://127.0.0.1:{collector.http.port}"
    with httpx.Client(base_url=base, timeout=30) as http:
        for path, parameter in OUT_OF_RANGE:
            got = http.get(path)
            assert got.status_code == 400, (path, got.status_code, got.text)
            detail = got.json()["detail"]
            assert f"query parameter {parameter}=" in detail, (path, detail)
        # The largest values the index holds are fine, and so is a well-formed query.
        assert http.get("/api/v1/runs?offset=9223372036854775807").json() == []
        history = "/api/v1/components/c/history?since_ns=0&until_ns=9223372036854775807"
        assert http.get(history).status_code in (200, 404)
        # A body that does not match its schema keeps FastAPI's 422 with the error list.
        got = http.post("/api/v1/flags", json={"ids": "not-a-list"})
        assert got.status_code == 422
        assert got.json()["detail"][0]["loc"] == ["body", "ids"]


def test_openapi_declares_every_status(guarded: Collector) -> None:
    assert guarded.http is not None
    base = f"http://127.0.0.1:{guarded.http.port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, timeout=30, headers=auth) as http:
        doc = http.get("/openapi.json").json()
        paths = doc["paths"]
        declared = {
            (method, path): set(op["responses"])
            for path, ops in paths.items()
            for method, op in ops.items()
        }
        every = set().union(*declared.values())
        assert {"200", "400", "401", "404", "413", "415", "422", "503"} <= every
        assert {"200", "400", "401", "413", "415", "503"} <= declared[("post", "/v1/traces")]
        assert {"400", "401"} <= declared[("get", "/api/v1/runs")]
        assert "422" not in declared[("get", "/api/v1/runs")]  # parameter errors are 400
        assert {"400", "401", "404", "422"} <= declared[("post", "/api/v1/flags")]
        assert {"400", "401", "404"} <= declared[("get", "/api/v1/runs/{run_id}")]
        assert "401" not in declared[("get", "/healthz")]  # exempt from the token

        # What the document declares, the API answers.
        assert http.get("/api/v1/runs?offset=-1").status_code == 400
        assert http.get("/api/v1/runs/nope").status_code == 404
        assert http.post("/api/v1/flags", json={"ids": 3}).status_code == 422
        assert httpx.get(base + "/api/v1/runs").status_code == 401
        assert (
            http.post(
                "/v1/traces", content=b"x", headers={"Content-Type": "text/plain"}
            ).status_code
            == 415
        )
        assert (
            http.post(
                "/v1/traces", content=b"\xff", headers={"Content-Type": "application/x-protobuf"}
            ).status_code
            == 400
        )
