"""400 for a request whose Host header is not one `host[:port]`, before any handler reads it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from dockyard.api.bodies import shown
from dockyard.api.errors import BadRequest, error_response
from dockyard.api.hosts import valid_host


class HostCheck:
    """Refuse (400) more than one Host header, or one that is not a host name or address with
    an optional port, as RFC 9112 section 3.2 asks: a hostile Host must not reach the realm
    of a challenge, a Location or a Link. A request without one, or with an empty one (an
    HTTP/1.0 client), passes: `hosts.origin` falls back to the address it arrived at."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [value for key, value in scope["headers"] if key == b"host"]
            problem = None
            if len(hosts) > 1:
                problem = "the request has more than one Host header"
            elif hosts and hosts[0] and not valid_host(text := hosts[0].decode("latin-1")):
                problem = (
                    f"the Host header {shown(text)} is not a host name or address with an "
                    "optional :port"
                )
            if problem is not None:
                err = BadRequest(problem, {"header": "Host"})
                await error_response(Request(scope), err)(scope, receive, send)
                return
        await self.app(scope, receive, send)
