"""Free TCP ports on the loopback interface, for servers started by tests.

Example::

    port = free_port()          # e.g. 40123; bind 127.0.0.1:port right away
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (the OS picked it for port 0).

    Another process may still take it before the caller binds it: callers that start a
    server should retry on "address in use".

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
