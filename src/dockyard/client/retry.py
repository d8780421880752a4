"""When to retry a request and how long to wait: exponential backoff with full jitter, the
server's `Retry-After`, and per-registry limits on concurrency and requests per second."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# 501 (not implemented) and 505 (version not supported) will answer the same way every time.
_FINAL_5XX = frozenset({501, 505})


def is_retryable_status(status: int) -> bool:
    """Whether an answer with `status` may succeed if asked again: 408, 429 and most 5xx."""
    return status in (408, 429) or (500 <= status < 600 and status not in _FINAL_5XX)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to `attempts` tries; before try n+1 wait a random time in [0, min(cap, base·2ⁿ)]
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
        """Seconds to wait after the `failures`-th failed try (1 for the first)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.cap, self.base * (2.0 ** max(failures - 1, 0)))
        return self.rand() * ceiling


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait that a `Retry-After` header asks for: delta-seconds or an HTTP date
    (relative to `now`, epoch seconds); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


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

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait out any pause, take a concurrency slot and a rate slot; free the slot after."""
        while (wait := self._paused_until - self._clock()) > 0:
            await self._sleep(wait)
        if self._slots is None:
            await self._rate.wait()
            yield
            return
        async with self._slots:
            await self._rate.wait()
            yield
