"""A per-client token bucket: past the rate, `429 TOOMANYREQUESTS` with `Retry-After`."""

from __future__ import annotations

import math
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from dockyard.api.errors import error_response
from dockyard.oci.errors import TooManyRequests


class RateLimit:
    """Each client (by address) may make `burst` requests at once and `rate` per second after."""

    def __init__(self, app: ASGIApp, rate: float, burst: int) -> None:
        self.app = app
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # client → (tokens, updated)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else "-"
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            err = TooManyRequests(
                f"rate limit of {self.rate:g} requests per second exceeded; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
            await error_response(Request(scope), err)(scope, receive, send)
            return
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1.0, now)
        await self.app(scope, receive, send)
