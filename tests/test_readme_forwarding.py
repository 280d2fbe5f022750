"""The README's "Forwarding to Jaeger or Tempo" example works when pasted as written.

Jaeger receives OTLP on 4317/4318, the very ports `otel-mltrace serve` listens on by
default; the example used to start serve on them next to a local Jaeger, which cannot
work (one of the two fails to bind). Here the example's serve command is read from the
README and checked against the settings' real defaults: serve must not listen where it
forwards, and the pipelines must be sent to where serve listens.
"""

from __future__ import annotations

import re
import shlex

from otel_mltrace.config import SETTINGS
from tests.serve_process import REPO_ROOT


def forwarding_example() -> list[list[str]]:
    """The example's commands (continuation lines joined, comments dropped), as words."""
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    section = readme.split("### Forwarding to Jaeger or Tempo", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the forwarding section has no bash example"
    text = block.group(1).replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in text.splitlines() if line.strip()]


def port(address: str) -> int:
    return int(address.rstrip("/").rpartition(":")[2])


def test_the_jaeger_example_does_not_listen_where_it_forwards() -> None:
    commands = [c for c in forwarding_example() if c]
    jaeger = next(c for c in commands if "MLTRACE_FORWARD_ENDPOINT=http://127.0.0.1:4317" in c)
    assert "serve" in jaeger
    options = dict(zip(jaeger, jaeger[1:], strict=False))
    grpc = options.get("--grpc-address") or SETTINGS["grpc_address"].default()
    http = options.get("--http-address") or SETTINGS["http_address"].default()
    forward = port(next(w for w in jaeger if w.startswith("MLTRACE_FORWARD_ENDPOINT=")))
    assert forward not in (port(grpc), port(http)), (
        f"serve would listen on {grpc} / {http}, where Jaeger already receives OTLP"
    )
    senders = [w for c in commands for w in c if w.startswith("MLTRACE_ENDPOINT=")]
    assert senders and all(port(w) == port(grpc) for w in senders), (
        f"the example must send the pipelines to serve's OTLP/gRPC port {port(grpc)}"
    )
