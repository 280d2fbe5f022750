"""The SDK's OTLP sender honours the standard exporter settings, as the official exporters do:
``OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT`` (ms), ``..._CERTIFICATE``, ``..._CLIENT_CERTIFICATE``
/ ``..._CLIENT_KEY`` (mTLS) and ``..._INSECURE``; ``TRACES_`` beats the generic variable and
a ``configure()`` argument beats both.

Against real TLS listeners on 127.0.0.1 that *require* a client certificate signed by a
test CA (made with ``openssl`` here): an HTTPS server (``ssl`` + ``http.server``) and a
gRPC server (``grpc.ssl_server_credentials(require_client_auth=True)``), each answering
the OTLP Export call with an empty (accepting) response and noting the client's CN.
"""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

import otel_mltrace as mlt
from otel_mltrace.otlp_transport import transport_settings
from otel_mltrace.sender import _GRPC_METHOD, make_sender

OTEL = "OTEL_EXPORTER_OTLP_"


@dataclass(frozen=True)
class Pki:
    ca: str
    server: tuple[str, str]  # (cert, key), SAN 127.0.0.1
    client: tuple[str, str]  # signed by ca, CN=mltrace-client
    stranger: tuple[str, str]  # self-signed, CN=stranger: not trusted by the servers
    stranger_ca: str  # a CA that did not sign the server certificate


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _self_signed(folder: Path, name: str) -> tuple[str, str]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
    )  # fmt: skip
    return str(cert), str(key)


def _signed(folder: Path, name: str, ca: tuple[str, str], ext: str) -> tuple[str, str]:
    cert, key, csr = folder / f"{name}.pem", folder / f"{name}.key", folder / f"{name}.csr"
    extfile = folder / f"{name}.ext"
    extfile.write_text(ext + "\n")
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(extfile),
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _self_signed(folder, "test-ca")
    server = _signed(folder, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost")
    client = _signed(folder, "mltrace-client", ca, "extendedKeyUsage=clientAuth")
    stranger = _self_signed(folder, "stranger")
    return Pki(ca[0], server, client, stranger, stranger[0])


@dataclass
class Listener:
    url: str
    clients: list[str] = field(default_factory=list)
    """CN of each client whose export was accepted."""


def _cn(subject: Any) -> str:
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


@pytest.fixture
def https_listener(pki: Pki) -> Iterator[Callable[[float], Listener]]:
    """``start(delay_s)``: an HTTPS OTLP listener requiring a client certificate."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(delay_s: float = 0.0) -> Listener:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*pki.server)
        context.load_verify_locations(pki.ca)
        context.verify_mode = ssl.CERT_REQUIRED
        listener = Listener("")

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay_s)
                listener.clients.append(_cn(self.connection.getpeercert()["subject"]))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        listener.url = f"https://127.0.0.1:{server.server_address[1]}"
        return listener

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def grpc_listener(pki: Pki) -> Iterator[Callable[[bool], Listener]]:
    """``start(tls)``: a gRPC OTLP listener, with TLS requiring a client certificate, or
    plaintext."""
    servers: list[grpc.Server] = []

    def start(tls: bool = True) -> Listener:
        listener = Listener("")

        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            names = context.auth_context().get("x509_common_name", [b""])
            listener.clients.append(names[0].decode())
            return b""  # an empty ExportTraceServiceResponse: all accepted

        handler = grpc.method_handlers_generic_handler(
            _GRPC_METHOD.split("/")[1], {"Export": grpc.unary_unary_rpc_method_handler(export)}
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        server.add_generic_rpc_handlers((handler,))
        if tls:
            cert, key = Path(pki.server[0]).read_bytes(), Path(pki.server[1]).read_bytes()
            creds = grpc.ssl_server_credentials(
                [(key, cert)], Path(pki.ca).read_bytes(), require_client_auth=True
            )
            port = server.add_secure_port("127.0.0.1:0", creds)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        listener.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        return listener

    yield start
    for server in servers:
        server.stop(0)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for var in list(os.environ):
        if var.startswith((OTEL, "MLTRACE_")):
            monkeypatch.delenv(var)
    return monkeypatch


PROTOCOLS = ["grpc", "http/protobuf"]


def _listener(request: pytest.FixtureRequest, protocol: str) -> Listener:
    if protocol == "grpc":
        return request.getfixturevalue("grpc_listener")(True)  # type: ignore[no-any-return]
    return request.getfixturevalue("https_listener")(0.0)  # type: ignore[no-any-return]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mtls_from_the_standard_variables_traces_beating_generic(
    request: pytest.FixtureRequest, clean_env: pytest.MonkeyPatch, pki: Pki, protocol: str
) -> None:
    listener = _listener(request, protocol)
    sender = make_sender(listener.url, protocol, {})
    outcome = sender.send(b"")
    sender.close()
    assert not outcome.ok and outcome.retryable, outcome  # no client certificate: refused
    assert listener.clients == []

    clean_env.setenv(f"{OTEL}CERTIFICATE", pki.stranger_ca)  # generic: the wrong CA …
    clean_env.setenv(f"{OTEL}TRACES_CERTIFICATE", pki.ca)  # … TRACES_ wins
    clean_env.setenv(f"{OTEL}CLIENT_CERTIFICATE", pki.stranger[0])
    clean_env.setenv(f"{OTEL}CLIENT_KEY", pki.stranger[1])
    clean_env.setenv(f"{OTEL}TRACES_CLIENT_CERTIFICATE", pki.client[0])
    clean_env.setenv(f"{OTEL}TRACES_CLIENT_KEY", pki.client[1])
    sender = make_sender(listener.url, protocol, {})
    outcome = sender.send(b"")
    sender.close()
    assert outcome.ok, outcome
    assert listener.clients == ["mltrace-client"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_configure_arguments_beat_the_variables_end_to_end(
    request: pytest.FixtureRequest,
    clean_env: pytest.MonkeyPatch,
    pki: Pki,
    protocol: str,
    tmp_path: Path,
) -> None:
    """Runs reach the mTLS listener through ``configure()``; the untrusted client pair in
    the variables is overridden by the arguments."""
    listener = _listener(request, protocol)
    clean_env.setenv(f"{OTEL}TRACES_CLIENT_CERTIFICATE", pki.stranger[0])
    clean_env.setenv(f"{OTEL}TRACES_CLIENT_KEY", pki.stranger[1])
    clean_env.setenv(f"{OTEL}TRACES_TIMEOUT", "1")  # 1 ms: would time every export out
    mlt.configure(
        service_name="mtls", endpoint=listener.url, protocol=protocol,
        spool_dir=str(tmp_path / "spool"), timeout=10, certificate=pki.ca,
        client_certificate=pki.client[0], client_key=pki.client[1],
    )  # fmt: skip
    try:
        with mlt.run("train"):
            pass
        report = mlt.flush(timeout_s=20)
    finally:
        mlt.shutdown()
    assert report.delivered == 1 and report.pending_in_spool == 0, report.summary()
    assert listener.clients == ["mltrace-client"]


def test_timeout_in_milliseconds_traces_beating_generic(
    https_listener: Callable[[float], Listener], clean_env: pytest.MonkeyPatch, pki: Pki
) -> None:
    listener = https_listener(3.0)  # answers after 3 s
    clean_env.setenv(f"{OTEL}CERTIFICATE", pki.ca)
    clean_env.setenv(f"{OTEL}CLIENT_CERTIFICATE", pki.client[0])
    clean_env.setenv(f"{OTEL}CLIENT_KEY", pki.client[1])
    clean_env.setenv(f"{OTEL}TIMEOUT", "60000")
    clean_env.setenv(f"{OTEL}TRACES_TIMEOUT", "400")
    sender = make_sender(listener.url, "http/protobuf", {})
    began = time.monotonic()
    outcome = sender.send(b"")
    took = time.monotonic() - began
    sender.close()
    assert not outcome.ok and outcome.retryable and "timed out" in outcome.message.lower()
    assert took < 2.0, took  # 400 ms, not the 10 s default nor the generic 60 s


def test_precedence_of_the_timeout(clean_env: pytest.MonkeyPatch) -> None:
    assert transport_settings().timeout_s == 10.0
    clean_env.setenv(f"{OTEL}TIMEOUT", "2500")
    assert transport_settings().timeout_s == 2.5
    clean_env.setenv(f"{OTEL}TRACES_TIMEOUT", "1500")
    assert transport_settings().timeout_s == 1.5
    clean_env.setenv("MLTRACE_EXPORT_TIMEOUT", "7")  # ours, in seconds
    assert transport_settings().timeout_s == 7.0
    assert transport_settings(timeout=3).timeout_s == 3.0


def test_insecure_means_plaintext_grpc_to_host_port(
    grpc_listener: Callable[[bool], Listener], clean_env: pytest.MonkeyPatch
) -> None:
    listener = grpc_listener(False)
    host_port = listener.url.removeprefix("http://")
    sender = make_sender(host_port, "grpc", {}, timeout_s=3)
    assert not sender.send(b"").ok  # host:port means TLS by default: no handshake
    sender.close()
    clean_env.setenv(f"{OTEL}TRACES_INSECURE", "true")
    sender = make_sender(host_port, "grpc", {}, timeout_s=3)
    outcome = sender.send(b"")
    sender.close()
    assert outcome.ok, outcome
    assert transport_settings(insecure=False).insecure is False  # the argument wins


def test_bad_settings_are_refused_with_the_variable_and_the_fix(
    clean_env: pytest.MonkeyPatch, pki: Pki, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nope.pem")
    clean_env.setenv(f"{OTEL}TRACES_CERTIFICATE", missing)
    with pytest.raises(ValueError, match=f"{OTEL}TRACES_CERTIFICATE: cannot read '{missing}'"):
        transport_settings()
    clean_env.delenv(f"{OTEL}TRACES_CERTIFICATE")
    clean_env.setenv(f"{OTEL}CLIENT_CERTIFICATE", pki.client[0])
    with pytest.raises(ValueError, match=f"set {OTEL}CLIENT_KEY"):
        transport_settings()
    with pytest.raises(ValueError, match=f"set {OTEL}CLIENT_KEY"):  # at configure(), not later
        mlt.configure(endpoint="https://127.0.0.1:9", spool_dir=str(tmp_path / "s"))
    clean_env.delenv(f"{OTEL}CLIENT_CERTIFICATE")
    clean_env.setenv(f"{OTEL}TIMEOUT", "ten")
    with pytest.raises(ValueError, match=f"{OTEL}TIMEOUT='ten' is invalid: expected a number"):
        transport_settings()
    clean_env.setenv(f"{OTEL}INSECURE", "maybe")
    clean_env.delenv(f"{OTEL}TIMEOUT")
    with pytest.raises(ValueError, match=f"{OTEL}INSECURE='maybe' is invalid"):
        transport_settings()


def test_a_timeout_that_looks_like_seconds_is_logged(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """opentelemetry-python reads OTEL_EXPORTER_OTLP_TIMEOUT as seconds; "10" is 10 ms by
    the spec, which we follow, and say so rather than time every export out silently."""
    clean_env.setenv(f"{OTEL}TIMEOUT", "10")
    with caplog.at_level("WARNING", logger="otel_mltrace"):
        assert transport_settings().timeout_s == 0.01
    assert f"{OTEL}TIMEOUT=10 is 10 ms" in caplog.text
    assert f"Set {OTEL}TIMEOUT=10000 for 10 s" in caplog.text
    caplog.clear()
    clean_env.setenv(f"{OTEL}TIMEOUT", "10000")
    with caplog.at_level("WARNING", logger="otel_mltrace"):
        assert transport_settings().timeout_s == 10.0
    assert caplog.text == ""
