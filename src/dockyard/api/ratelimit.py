"""A per-client token bucket: past the rate, `429 TOOMANYREQUESTS` with `Retry-After`.

The buckets live in a table shared by every worker of this host (`storage/buckets.py`), so
the limit is the site's, not the site's times the workers; nodes behind a load balancer each
keep their own. Clients not seen for a while give up their slots first.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from dockyard.api.clients import client_address
from dockyard.api.errors import error_response
from dockyard.oci.errors import TooManyRequests
from dockyard.storage.buckets import Limit, SharedTable


class RateLimit:
    """Each client (by address) may make `burst` requests at once and `rate` per second after."""

    def __init__(self, app: ASGIApp, rate: float, burst: int, table: SharedTable) -> None:
        self.app = app
        self.rate = rate
        self.limit = Limit(float(burst), rate)
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wait = self.table.take(client_address(scope), self.limit, time.time())
        if wait:
            err = TooManyRequests(
                f"rate limit of {self.rate:g} requests per second exceeded; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
            await error_response(Request(scope), err)(scope, receive, send)
            return
        await self.app(scope, receive, send)
