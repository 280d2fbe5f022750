"""A throwaway Alertmanager on the loopback interface, and the webhook receiver it calls.

``WebhookReceiver`` is a small ``http.server`` on ``127.0.0.1`` (free port, own thread) that
records every POSTed JSON body (Alertmanager's webhook payload) — the test's stand-in for
Slack or PagerDuty, a real HTTP endpoint, not a mock. ``AlertmanagerServer.start(url)``
runs the real ``prometheus-alertmanager`` (Debian package ``prometheus-alertmanager``) with
clustering off (``--cluster.listen-address=``), storage in a temporary folder and a config
that routes every alert to that URL with short ``group_wait``/``group_interval``. Both have
an idempotent ``stop()``; the server is also stopped at exit.

Example::

    with WebhookReceiver() as hook, AlertmanagerServer.start(hook.url) as am:
        ...                                    # point Prometheus at am.address
        hook.wait_for(lambda alert: alert["labels"]["alertname"] == "X", timeout=30)
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.servers.managed import HttpServer, StopOnExit

from .prometheus import wait_until

BINARIES = ("prometheus-alertmanager", "alertmanager")


class AlertmanagerUnavailable(RuntimeError):
    """Alertmanager cannot be found or started here; ``str()`` says why."""


class WebhookReceiver(StopOnExit):
    """Records Alertmanager webhook POSTs; ``payloads`` holds the decoded bodies in order."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.payloads.append(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output quiet

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        self._stopped = False

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every payload received so far (each with ``status``, ``labels``)."""
        with self._lock:
            return [alert for p in self.payloads for alert in p.get("alerts", [])]

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Poll until a delivered alert satisfies ``match``; the matching alerts."""
        return wait_until(
            lambda: [a for a in self.alerts() if match(a)] or None,
            timeout,
            "Alertmanager to deliver a matching alert to the webhook",
        )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _config(webhook_url: str) -> str:
    # JSON is YAML.
    return json.dumps(
        {
            "route": {
                "receiver": "test-webhook",
                "group_by": ["alertname", "component", "output"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "test-webhook",
                    "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
                }
            ],
        },
        indent=2,
    )


def find_binary() -> str | None:
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


class AlertmanagerServer(HttpServer):
    """One running Alertmanager; ``url`` (API base) and ``address`` (``host:port``)."""

    log_name = "alertmanager.log"

    @classmethod
    def start(cls, webhook_url: str, *, timeout: float = 30.0) -> AlertmanagerServer:
        """Start Alertmanager routing every alert to ``webhook_url``."""
        binary = find_binary()
        if binary is None:
            raise AlertmanagerUnavailable(
                "no `prometheus-alertmanager` (or `alertmanager`) on PATH (Debian: apt-get "
                "install prometheus-alertmanager; scripts/bootstrap.sh installs it)"
            )

        def launch(server: AlertmanagerServer) -> None:
            config = server.base / "alertmanager.yml"
            config.write_text(_config(webhook_url))
            server._launch(binary, config, timeout)

        return cls._started("mltrace-am-", launch)

    def _launch(self, binary: str, config: Path, timeout: float) -> None:
        self._launch_on_free_port(
            lambda: [
                binary,
                f"--config.file={config}",
                f"--storage.path={self.base / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            "/-/ready",
            timeout,
            lambda tail: AlertmanagerUnavailable(f"alertmanager did not become ready:\n{tail}"),
        )

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (``/api/v2/alerts``)."""
        response = self.http.get(f"{self.url}/api/v2/alerts")
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts
