"""A throwaway Prometheus server on the loopback interface, for tests.

``PrometheusServer.start(...)`` writes a config into a temporary folder — one scrape job
(``mltrace``) for the given targets, short scrape and evaluation intervals, our rule files,
alerting to a test Alertmanager — starts the real ``prometheus`` binary (Debian package
``prometheus``) on ``127.0.0.1`` on a free port with exemplar storage on and the TSDB in the
folder, and waits for ``/-/ready``. ``stop()`` terminates it and deletes the folder; it is
idempotent and registered with ``atexit``.

Rule files are copied with every ``for:`` replaced by ``for_override`` (default ``0s``) so
that alerts fire within seconds; the real durations are covered by ``promtool test rules``.

When the binary is missing or does not start, ``PrometheusUnavailable`` says why (fixtures
turn it into a skip or a failure).

Example::

    with PrometheusServer.start(targets=["127.0.0.1:4318"], rule_files=RULES) as prom:
        prom.wait_for_series("mltrace_runs_total", timeout=30)
        prom.query('sum(mltrace_runs_total)')          # -> [{"metric": {...}, "value": [...]}]
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.servers.managed import HttpServer

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = (
    REPO / "deploy" / "prometheus" / "rules" / "mltrace-recording.yml",
    REPO / "deploy" / "prometheus" / "rules" / "mltrace-cadence.yml",
    REPO / "deploy" / "prometheus" / "rules" / "mltrace-alerts.yml",
)
"""The shipped rule files, in the order deploy/prometheus/prometheus.yml loads them."""

_FOR = re.compile(r"^(\s*)for:\s*\S+\s*$", re.MULTILINE)
T = TypeVar("T")


class PrometheusUnavailable(RuntimeError):
    """Prometheus cannot be found or started here; ``str()`` says why."""


def find_binary(name: str = "prometheus") -> str | None:
    """Path of ``name`` on ``$PATH`` (Debian installs /usr/bin/prometheus), else ``None``."""
    return shutil.which(name)


def wait_until(
    check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25
) -> T:
    """Poll ``check`` until it returns a truthy value; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def _config(
    targets: Sequence[str],
    rule_files: Sequence[Path],
    alertmanager: str | None,
    bearer_token_file: Path | None,
    scrape_interval: str,
    evaluation_interval: str,
    metrics_path: str,
) -> str:
    # JSON is YAML: no YAML library needed to write the config.
    job: dict[str, Any] = {
        "job_name": "mltrace",
        "metrics_path": metrics_path,
        "scrape_interval": scrape_interval,
        "scrape_timeout": scrape_interval,
        "static_configs": [{"targets": list(targets)}],
    }
    if bearer_token_file is not None:
        job["authorization"] = {"type": "Bearer", "credentials_file": str(bearer_token_file)}
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [job],
    }
    if alertmanager:
        host = alertmanager.split("://", 1)[-1].rstrip("/")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
    return json.dumps(config, indent=2)


class PrometheusServer(HttpServer):
    """One running Prometheus; see the module docstring. ``url`` is its base URL."""

    log_name = "prometheus.log"

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        targets: Sequence[str],
        *,
        rule_files: Sequence[Path] = RULE_FILES,
        extra_rules: str | None = None,
        alertmanager: str | None = None,
        bearer_token: str | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        for_override: str | None = "0s",
        metrics_path: str = "/metrics",
        timeout: float = 30.0,
    ) -> PrometheusServer:
        """Start Prometheus scraping ``targets`` (``host:port``); see the module docstring.

        ``extra_rules``: the text of one more rule file (e.g. a cadence configuration).
        ``alertmanager``: ``host:port`` or URL of the Alertmanager to send alerts to.
        """
        binary = find_binary()
        if binary is None:
            raise PrometheusUnavailable(
                "no `prometheus` on PATH (Debian: apt-get install prometheus; "
                "scripts/bootstrap.sh installs it)"
            )

        def launch(server: PrometheusServer) -> None:
            rules = server._copy_rules(rule_files, extra_rules, for_override)
            token_file = None
            if bearer_token is not None:
                token_file = server.base / "token"
                token_file.write_text(bearer_token)
            config = server.base / "prometheus.yml"
            config.write_text(
                _config(
                    targets,
                    rules,
                    alertmanager,
                    token_file,
                    scrape_interval,
                    evaluation_interval,
                    metrics_path,
                )
            )
            server._launch(binary, config, timeout)

        return cls._started("mltrace-prom-", launch)

    def _copy_rules(
        self, rule_files: Sequence[Path], extra: str | None, for_override: str | None
    ) -> list[Path]:
        folder = self.base / "rules"
        folder.mkdir()
        out: list[Path] = []
        texts = [(p.name, p.read_text()) for p in rule_files]
        if extra is not None:
            texts.append(("extra-rules.yml", extra))
        for name, text in texts:
            if for_override is not None:
                text = _FOR.sub(lambda m: f"{m.group(1)}for: {for_override}", text)
            (folder / name).write_text(text)
            out.append(folder / name)
        return out

    def _launch(self, binary: str, config: Path, timeout: float) -> None:
        self._launch_on_free_port(
            lambda: [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.base / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--enable-feature=exemplar-storage",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            "/-/ready",
            timeout,
            lambda tail: PrometheusUnavailable(f"prometheus did not become ready:\n{tail}"),
        )

    # -- HTTP API -----------------------------------------------------------------------
    def api(self, path: str, **params: Any) -> Any:
        """GET ``/api/v1/<path>``; returns ``data``, raises ``ValueError`` on an API error."""
        response = self.http.get(f"{self.url}/api/v1/{path}", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query: the result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_values(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Instant query as ``{sorted label items (without __name__): value}``."""
        out: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in self.query(expr):
            labels = tuple(sorted((k, v) for k, v in sample["metric"].items() if k != "__name__"))
            out[labels] = float(sample["value"][1])
        return out

    def query_exemplars(
        self, expr: str, start: float | None = None, end: float | None = None
    ) -> list[dict[str, Any]]:
        """``/api/v1/query_exemplars`` over ``[start, end]`` (default: the last hour)."""
        now = time.time()
        result: list[dict[str, Any]] = self.api(
            "query_exemplars", query=expr, start=start or now - 3600, end=end or now + 60
        )
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) with labels, annotations, state, value."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def rules(self) -> list[dict[str, Any]]:
        """Loaded rule groups (``name``, ``file``, ``rules``: each with ``query``, ``type``)."""
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    # -- waiting ------------------------------------------------------------------------
    def wait_for_query(
        self, expr: str, timeout: float = 30.0, check: Callable[[list[dict[str, Any]]], bool] = bool
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``check(result)`` holds (default: non-empty); the result."""

        def probe() -> list[dict[str, Any]] | None:
            result = self.query(expr)
            return result if check(result) and result else None

        return wait_until(probe, timeout, f"PromQL {expr!r} to return data")

    def wait_for_alerts(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0, state: str = "firing"
    ) -> list[dict[str, Any]]:
        """Poll until at least one alert in ``state`` satisfies ``match``; all such alerts."""

        def probe() -> list[dict[str, Any]] | None:
            found = [a for a in self.alerts() if a["state"] == state and match(a)]
            return found or None

        return wait_until(probe, timeout, f"a {state} alert")

    def wait_for_rule_evaluations(self, rounds: int = 2, timeout: float = 30.0) -> None:
        """Wait until every rule group has been evaluated ``rounds`` more times."""

        def evaluated() -> dict[str, str]:
            return {g["name"]: g.get("lastEvaluation", "") for g in self.rules()}

        for _ in range(rounds):
            before = evaluated()

            def advanced(before: dict[str, str] = before) -> bool:
                now = evaluated()
                return all(now.get(name) != stamp for name, stamp in before.items())

            wait_until(advanced, timeout, "a round of rule evaluations")


def label_set(samples: Iterable[dict[str, Any]], *names: str) -> set[tuple[str, ...]]:
    """The distinct ``names`` label tuples of query result samples."""
    return {tuple(s["metric"].get(n, "") for n in names) for s in samples}
