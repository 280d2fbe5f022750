"""A kept-alive HTTP connection answers without the ~40 ms Nagle / delayed-ACK stall.

The HTTP listener's socket came from ``socket.create_server`` (``proto`` 0), so asyncio
did not set ``TCP_NODELAY`` on its connections: uvicorn writes a response's headers and
body separately, Nagle held the body until the client ACKed the headers, and the client
delays that ACK (~40 ms on Linux) once the connection is out of quick-ACK mode, i.e. from
the second response on. Measured with a raw socket client, one ``sendall`` per request,
so that nothing on the client side can add the delay.
"""

from __future__ import annotations

import socket
import statistics
import time

from mltrace_collector.service.collector import Collector

REQUESTS = 21


def _timed_gets(port: int, path: str) -> list[float]:
    """Milliseconds per GET of ``path`` on one kept-alive connection."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        for _ in range(REQUESTS):
            start = time.perf_counter()
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += sock.recv(65536)
            times.append((time.perf_counter() - start) * 1000)
    return times


def test_kept_alive_responses_are_not_delayed(collector: Collector) -> None:
    assert collector.http is not None
    for path in ("/api/v1/runs", "/healthz"):
        later = _timed_gets(collector.http.port, path)[1:]
        # Stalled, every one of them took 40-50 ms; now ~1 ms. The median of 20 stays far
        # under 20 ms even on a loaded machine.
        assert statistics.median(later) < 20, (path, [round(t, 1) for t in later])
