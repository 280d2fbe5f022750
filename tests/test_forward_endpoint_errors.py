"""An endpoint the forwarder cannot use is refused at start with the value and a fix."""

from __future__ import annotations

import pytest

from mltrace_collector.service.exporters.forward_transport import open_transport


@pytest.mark.parametrize(
    ("endpoint", "protocol", "problem", "fix"),
    [
        ("jaeger", "grpc", "has no host:port", "=http://127.0.0.1:4317"),
        ("http://jaeger", "grpc", "has no host:port", "=http://127.0.0.1:4317"),
        ("jaeger:4318", "http/protobuf", "is not an http(s) URL", "=http://127.0.0.1:4318/"),
        ("ftp://jaeger:21", "http", "is not an http(s) URL", "=http://127.0.0.1:4318/"),
    ],
)
def test_unusable_endpoint_names_value_and_fix(
    endpoint: str, protocol: str, problem: str, fix: str
) -> None:
    with pytest.raises(ValueError) as err:
        open_transport(endpoint, protocol)
    message = str(err.value)
    assert f"forward endpoint {endpoint!r} {problem}" in message
    assert "use e.g. MLTRACE_FORWARD_ENDPOINT" + fix in message


def test_usable_endpoints_open() -> None:
    for endpoint, protocol in [("127.0.0.1:4317", "grpc"), ("http://127.0.0.1:4318", "http")]:
        open_transport(endpoint, protocol).close()
