"""The Host header: what a request may say about where it was sent, before the edge repeats it
back (in the realm of a `WWW-Authenticate` challenge, in links)."""

from __future__ import annotations

import re

from starlette.requests import Request

# A DNS name (underscores allowed, as in container networks' service names), an IPv4 address
# or a bracketed IPv6 address, then an optional port: nothing that could close a quoted
# string or start another parameter (quotes, commas, spaces, control characters).
_HOST = re.compile(
    r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?", re.ASCII
)


def valid_host(value: str) -> bool:
    """Whether `value` is one `host[:port]` (RFC 9110's uri-host, narrowed to what DNS names,
    IPv4 and IPv6 addresses use)."""
    return _HOST.fullmatch(value) is not None


def origin(request: Request) -> str:
    """`scheme://host[:port]` the request was sent to: its Host header when that is a valid
    one (`HostCheck` refuses the others), else the address it arrived at."""
    scheme = request.scope.get("scheme", "http")
    host = request.headers.get("host", "")
    if not valid_host(host):
        server = request.scope.get("server")
        if server is None:
            host = "localhost"
        else:
            address, port = server[0], server[1]
            host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return f"{scheme}://{host}"
