"""Backoff with full jitter, Retry-After in both forms, rate limiting and the shared pause."""

from __future__ import annotations

import asyncio
import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.client.retry import Limits, RateLimiter, RetryPolicy, is_retryable_status
from dockyard.client.retry import parse_retry_after as retry_after


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        *[(status, True) for status in (408, 429, 500, 502, 503, 504)],
        *[(status, False) for status in (400, 401, 404, 416, 501, 505)],
    ],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


@given(failures=st.integers(1, 40), rand=st.floats(0.0, 1.0))
def test_full_jitter_stays_under_the_capped_exponential(failures: int, rand: float) -> None:
    policy = RetryPolicy(base=0.5, cap=30.0, rand=lambda: rand)
    delay = policy.delay(failures)
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** (failures - 1))


def test_retry_after_wins_and_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=60.0, rand=lambda: 0.0)
    assert policy.delay(1, 7.0) == 7.0
    assert policy.delay(1, 3600.0) == 60.0
    assert policy.delay(3) == 0.0


def test_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RetryPolicy(attempts=0)


def test_retry_after_seconds_and_dates() -> None:
    now = 1_700_000_000.0
    assert retry_after("120", now) == 120.0
    assert retry_after(" 0 ", now) == 0.0
    assert retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert retry_after(None, now) is None
    assert retry_after("soon", now) is None
    assert retry_after("-5", now) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_rate_limiter_spaces_requests_evenly() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock, clock.sleep)
    for _ in range(4):
        await limiter.wait()
    assert clock.slept == pytest.approx([0.1, 0.1, 0.1])
    clock.now += 5  # idle time is not banked into a burst
    await limiter.wait()
    await limiter.wait()
    assert clock.slept[-1] == pytest.approx(0.1)


async def test_rate_limiter_queues_concurrent_callers() -> None:
    clock = Clock()
    limiter = RateLimiter(4, clock, clock.sleep)
    await asyncio.gather(*(limiter.wait() for _ in range(3)))
    assert clock.now == pytest.approx(0.5)  # the third start waits for the second's slot


async def test_no_limits_means_no_waiting() -> None:
    clock = Clock()
    limits = Limits(0, 0.0, clock, clock.sleep)
    for _ in range(5):
        async with limits.slot():
            pass
    assert clock.slept == []


async def test_a_pause_holds_every_request() -> None:
    clock = Clock()
    limits = Limits(2, 0.0, clock, clock.sleep)
    limits.pause(3.0)
    async with limits.slot():
        pass
    assert clock.now == pytest.approx(3.0)
    async with limits.slot():
        pass
    assert clock.slept == [3.0]
