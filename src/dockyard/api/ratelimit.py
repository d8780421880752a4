"""A per-client token bucket: past the rate, `429 TOOMANYREQUESTS` with `Retry-After`.

The buckets are the site's (`auth/limits.py`): on one host a table its workers share, across
the nodes of a PostgreSQL site rows of the database, so the limit is the site's, not the
site's times the workers (or the nodes). Clients not seen for a while give up theirs first.
"""

from __future__ import annotations

import math
import time
from typing import TypeVar

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from dockyard.api.clients import client_address
from dockyard.api.errors import error_response
from dockyard.auth.limits import Buckets
from dockyard.oci.errors import TooManyRequests
from dockyard.storage.buckets import Limit

_V = TypeVar("_V")

KEPT = 10_000  # clients whose leased tokens (or refusal) a worker keeps (the oldest go first)


class RateLimit:
    """Each client (by address) may make `burst` requests at once and `rate` per second after.

    A worker takes a client's tokens from the shared bucket a few at a time (a sixteenth of
    the burst, so one for small bursts) and spends them itself, so busy clients touch the
    shared buckets once every few requests. Tokens are only ever moved, never made: a client
    gets at most the limit, and less by the few tokens other workers hold for it. A client
    refused is refused by this worker until its bucket has a token again, without asking
    (nobody puts tokens back early), so a flood costs the shared buckets nothing.
    """

    def __init__(self, app: ASGIApp, rate: float, burst: int, buckets: Buckets) -> None:
        self.app = app
        self.rate = rate
        self.limit = Limit(float(burst), rate)
        self.buckets = buckets
        self.batch = max(1, burst // 16)
        self._leased: dict[str, int] = {}  # client → tokens this worker took and has not spent
        self._refused: dict[str, float] = {}  # client → when its bucket has a token again

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = client_address(scope)
        wait = await self._spend(key)
        if wait:
            err = TooManyRequests(
                f"rate limit of {self.rate:g} requests per second exceeded; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
            await error_response(Request(scope), err)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _spend(self, key: str) -> int:
        """Spend one of `key`'s tokens: 0 when spent, else whole seconds until one is there."""
        leased = self._leased.pop(key, 0)
        if not leased:
            now = time.time()
            until = self._refused.get(key)
            if until is not None and now < until:
                return max(1, math.ceil(until - now))
            leased, wait = await self.buckets.lease(f"r\0{key}", self.limit, now, self.batch)
            if not leased:
                _keep(self._refused, key, now + wait)
                return wait
            self._refused.pop(key, None)
        if leased > 1:
            _keep(self._leased, key, leased - 1)
        return 0


def _keep(memo: dict[str, _V], key: str, value: _V) -> None:
    """Put `key` last in `memo` (a dict is oldest first), forgetting the oldest past `KEPT`."""
    memo.pop(key, None)
    memo[key] = value
    if len(memo) > KEPT:
        del memo[next(iter(memo))]
