"""When to retry a request and how long to wait, for every part of Dockyard that retries: the
one rule for what is worth another try (`is_retryable_status`, `is_retryable_error`), the one
backoff (exponential with full jitter, capped), and the server's `Retry-After` in both its forms,
capped (`RetryPolicy`); plus per-registry limits on concurrency and requests per second."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import math
import random
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Answers that may differ if asked again: timeout, too early, too many requests, and the
transient server and gateway failures. Other 5xx (501, 505, 507, 511…) answer the same way."""

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    ConnectionResetError,
    TimeoutError,
)
"""Failures with no answer: refused, reset or dropped connections, bodies cut short, timeouts.
(Not the builtin `ConnectionError`: the transport raises that when its own retries ran out.)"""

_DELTA_SECONDS = re.compile(r"[0-9]+")
# 2.0 ** 1024 overflows a float; any cap is reached long before 2 ** 60.
_MAX_EXPONENT = 60


def is_retryable_status(status: int) -> bool:
    """Whether an answer with `status` may succeed if asked again (`RETRYABLE_STATUSES`)."""
    return status in RETRYABLE_STATUSES


def is_retryable_error(exc: BaseException) -> bool:
    """Whether a request that got no answer because of `exc` may succeed if sent again: a
    connection refused, reset or dropped, a body cut short, a timeout; never a TLS failure
    (a certificate, or a pinned fingerprint, the peer does not pass will not pass on the next
    try)."""
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch | ssl.SSLError):
        return False
    return isinstance(exc, CONNECTION_ERRORS)


def full_jitter(failures: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """A random wait in [0, min(cap, base·2ⁿ⁻¹)] after the n-th failure ("full jitter", which
    spreads apart the retries of clients that failed together)."""
    exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
    return rand() * min(cap, base * 2.0**exponent)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait that a `Retry-After` header asks for, never negative: delay-seconds or
    an HTTP date (relative to `now`, epoch seconds); None when absent or unreadable.
    Not capped here: `RetryPolicy.delay` caps it."""
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)  # huge values read as inf, which the cap then bounds
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000" or asctime: HTTP dates are always GMT
            when = when.replace(tzinfo=datetime.UTC)
        stamp = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    current = time.time() if now is None else now
    return max(stamp - current, 0.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to `attempts` tries; before try n+1 wait a random time in [0, min(cap, base·2ⁿ⁻¹)]
    ("full jitter"), or what `Retry-After` asks for, at most `max_retry_after` seconds."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failed try (1 for the first): what the
        server asked for (`retry_after`, capped), else the jittered backoff."""
        if retry_after is not None and not math.isnan(retry_after):
            return min(max(retry_after, 0.0), self.max_retry_after)
        return full_jitter(failures, self.base, self.cap, self.rand)


class RateLimiter:
    """At most `per_second` starts per second, spaced evenly (no bursts); 0 means no limit."""

    def __init__(
        self, per_second: float, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    async def wait(self) -> None:
        """Return when the next request may start."""
        if not self.interval:
            return
        now = self._clock()
        start = max(now, self._next)
        # reserve the slot before sleeping, so concurrent callers queue behind it
        self._next = start + self.interval
        if start > now:
            await self._sleep(start - now)


class Limits:
    """A registry's request limits: a concurrency cap and a request rate, plus a shared pause
    that a 429 or 503 with `Retry-After` imposes on every request to that registry."""

    def __init__(
        self,
        concurrent: int = 0,
        per_second: float = 0.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrent) if concurrent > 0 else None
        self._rate = RateLimiter(per_second, clock, sleep)
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every new request to this registry for `seconds`."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        """Wait out any pause, take a concurrency slot and a rate slot; give the concurrency
        slot back with `release`."""
        while (wait := self._paused_until - self._clock()) > 0:
            await self._sleep(wait)
        if self._slots is not None:
            await self._slots.acquire()
        try:
            await self._rate.wait()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give back the concurrency slot `acquire` took."""
        if self._slots is not None:
            self._slots.release()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """`acquire` and `release` around a block."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()
