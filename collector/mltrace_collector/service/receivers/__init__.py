"""OTLP trace receivers: gRPC (:4317) and HTTP (:4318, protobuf + JSON), auth and TLS.

Both decode transport into an ``ExportTraceServiceRequest`` and call
``mltrace_collector.index.ingest.ExportHandler.export``; status codes follow the OTLP spec.

Example::

    grpc_rx = start_grpc_server(handler, "127.0.0.1:4317", auth_token=token)
    app.router.routes.append(otlp_traces_route(handler, auth_token=token))
    http = start_http_server(BearerAuthMiddleware(app, token), "127.0.0.1:4318")
"""

from .grpc_receiver import GrpcReceiver, start_grpc_server
from .http_receiver import HttpServer, create_otlp_http_app, otlp_traces_route, start_http_server
from .otlp_json import parse_otlp_json, status_payload, to_otlp_json
from .security import (
    BearerAuthMiddleware,
    bearer_matches,
    grpc_server_credentials,
    tls_pair,
    unauthenticated_response,
    uvicorn_ssl_kwargs,
)

__all__ = [
    "BearerAuthMiddleware",
    "GrpcReceiver",
    "HttpServer",
    "bearer_matches",
    "create_otlp_http_app",
    "grpc_server_credentials",
    "otlp_traces_route",
    "parse_otlp_json",
    "start_grpc_server",
    "start_http_server",
    "status_payload",
    "tls_pair",
    "to_otlp_json",
    "unauthenticated_response",
    "uvicorn_ssl_kwargs",
]
