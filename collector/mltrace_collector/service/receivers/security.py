"""Bearer-token authentication and TLS settings shared by every collector listener.

One token (``MLTRACE_AUTH_TOKEN``) and one certificate pair (``MLTRACE_TLS_CERT`` /
``MLTRACE_TLS_KEY``) protect OTLP/gRPC, OTLP/HTTP, the query API and ``/metrics`` alike.
Tokens are compared in constant time (``hmac.compare_digest``).

Example::

    app = BearerAuthMiddleware(fastapi_app, token="s3cret", exempt_paths={"/healthz"})
    uvicorn.run(app, host="0.0.0.0", port=4318, **uvicorn_ssl_kwargs(cert, key))
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .otlp_json import status_payload

__all__ = [
    "BearerAuthMiddleware",
    "bearer_matches",
    "grpc_server_credentials",
    "tls_pair",
    "unauthenticated_response",
    "uvicorn_ssl_kwargs",
]

log = logging.getLogger("mltrace_collector.receivers")

GRPC_UNAUTHENTICATED = 16


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` value is ``Bearer <token>`` (scheme case-insensitive).

    Example::

        assert bearer_matches("Bearer s3cret", "s3cret")
        assert not bearer_matches(None, "s3cret")
    """
    if not authorization:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def unauthenticated_response(authorization: str | None, content_type: str | None) -> Response:
    """HTTP 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3) and a ``google.rpc.Status``.

    The body is protobuf for ``application/x-protobuf`` requests, JSON otherwise.

    Example::

        return unauthenticated_response(request.headers.get("authorization"), "application/json")
    """
    as_json = (content_type or "").split(";")[0].strip().lower() != "application/x-protobuf"
    challenge = 'Bearer realm="otel-mltrace"'
    if authorization:
        challenge += ', error="invalid_token"'
        message = "invalid bearer token"
    else:
        message = "missing 'Authorization: Bearer <token>' header"
    return Response(
        status_payload(GRPC_UNAUTHENTICATED, message, as_json=as_json),
        status_code=401,
        headers={"WWW-Authenticate": challenge},
        media_type="application/json" if as_json else "application/x-protobuf",
    )


class BearerAuthMiddleware:
    """ASGI middleware: every HTTP request except ``exempt_paths`` needs the bearer token.

    ``token=None`` disables the check, so the service can wrap its app unconditionally.

    Example::

        app = BearerAuthMiddleware(app, token=resolve("auth_token"), exempt_paths={"/healthz"})
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        exempt_paths: Iterable[str] = frozenset({"/healthz"}),
    ) -> None:
        self.app = app
        self.token = token
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.token is None
            or scope["type"] not in ("http", "websocket")
            or scope["path"] in self.exempt_paths
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        if bearer_matches(authorization, self.token):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        log.warning(
            "rejected %s %s from %s: 401 %s",
            scope.get("method", "WS"),
            scope["path"],
            f"{client[0]}:{client[1]}" if client else "?",
            "wrong bearer token" if authorization else "no bearer token",
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        response = unauthenticated_response(authorization, headers.get("content-type"))
        await response(scope, receive, send)


def tls_pair(tls_cert: str | None, tls_key: str | None) -> tuple[str, str] | None:
    """``(cert, key)`` when TLS is configured, ``None`` when not; half a pair is an error.

    Example::

        tls_pair(None, None)                         # None: plaintext
        tls_pair("/etc/c.pem", "/etc/k.pem")         # ("/etc/c.pem", "/etc/k.pem")
    """
    if not tls_cert and not tls_key:
        return None
    if not tls_cert or not tls_key:
        missing = "MLTRACE_TLS_CERT" if not tls_cert else "MLTRACE_TLS_KEY"
        raise ValueError(f"TLS needs both a certificate and a key; {missing} is not set")
    return tls_cert, tls_key


def uvicorn_ssl_kwargs(tls_cert: str | None, tls_key: str | None) -> dict[str, str]:
    """Keyword arguments for ``uvicorn.Config``/``uvicorn.run``: empty when TLS is off.

    Example::

        uvicorn.Config(app, port=4318, **uvicorn_ssl_kwargs("/etc/c.pem", "/etc/k.pem"))
    """
    pair = tls_pair(tls_cert, tls_key)
    if pair is None:
        return {}
    return {"ssl_certfile": pair[0], "ssl_keyfile": pair[1]}


def grpc_server_credentials(tls_cert: str | None, tls_key: str | None) -> Any | None:
    """``grpc.ServerCredentials`` for the PEM pair, or ``None`` when TLS is off.

    Example::

        creds = grpc_server_credentials("/etc/c.pem", "/etc/k.pem")
        server.add_secure_port("0.0.0.0:4317", creds)
    """
    import grpc

    pair = tls_pair(tls_cert, tls_key)
    if pair is None:
        return None
    with open(pair[0], "rb") as cert_file, open(pair[1], "rb") as key_file:
        chain, key = cert_file.read(), key_file.read()
    return grpc.ssl_server_credentials([(key, chain)])
