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

LEASES_KEPT = 10_000  # clients whose leased tokens a worker keeps (the oldest go first)


class RateLimit:
    """Each client (by address) may make `burst` requests at once and `rate` per second after.

    A worker takes a client's tokens from the shared bucket a few at a time (a sixteenth of
    the burst, so one for small bursts) and spends them itself, so busy clients touch the
    shared table once every few requests. Tokens are only ever moved, never made: a client
    gets at most the limit, and less by the few tokens another worker holds for it.
    """

    def __init__(self, app: ASGIApp, rate: float, burst: int, table: SharedTable) -> None:
        self.app = app
        self.rate = rate
        self.limit = Limit(float(burst), rate)
        self.table = table
        self.batch = max(1, burst // 16)
        self._leased: dict[str, int] = {}  # client → tokens this worker took and has not spent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = client_address(scope)
        wait = self._spend(key)
        if wait:
            err = TooManyRequests(
                f"rate limit of {self.rate:g} requests per second exceeded; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
            await error_response(Request(scope), err)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _spend(self, key: str) -> int:
        """Spend one of `key`'s tokens: 0 when spent, else whole seconds until one is there."""
        leased = self._leased.pop(key, 0)
        if not leased:
            # without the table's lock: taken on every lease, it made each worker wait
            # whenever another was descheduled holding it; two workers leasing for one client
            # in the same microseconds may let a request more through, which a limit can afford
            leased, wait = self.table.unlocked().lease(key, self.limit, time.time(), self.batch)
            if not leased:
                return wait
        if leased > 1:
            self._leased[key] = leased - 1  # (re)inserted last: the dict is oldest first
            if len(self._leased) > LEASES_KEPT:
                del self._leased[next(iter(self._leased))]
        return 0
