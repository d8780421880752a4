"""Failed sign-ins, throttled per client address, per account and address, and per account.

Every password that has to be checked costs a bucket token of three: the client address's
(one attacker trying many accounts), the pair of account and address's (strict: one attacker
guessing one account), and the account's (loose: many addresses guessing one account). An
access token (256 random bits) cannot be guessed: its failures count against the address
alone, which bounds the database work a flood of them costs. A success gives its tokens
back. An attempt that finds a bucket empty is refused with `429` and `Retry-After` *before*
argon2 runs, so refused guesses cost microseconds, not the argon2 threads everyone's sign-in
waits for. Credentials verified before (and cached) are refused too while their bucket is
empty, or the answer would tell a throttled guesser which guess was right.

So that an attacker elsewhere cannot lock the real user out, an address the account signed in
from recently is let past the address and account buckets: only its own pair bucket counts.
Each address also gets one argon2 check at a time per process; its other attempts wait their
turn without holding an argon2 thread.

The counters live in tables shared by this host's workers (`storage/buckets.py`), not in the
database: a refused attempt must cost no write (a flood of them would queue behind pushes on
SQLite's one writer), and the check runs on requests that have not proven anything yet. Each
node of a multi-node site counts its own, so a limit holds per node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.oci.errors import TooManyRequests
from dockyard.storage.buckets import Limit, SharedTable

KNOWN_ADDRESS_SECONDS = 30 * 86400.0  # how long a sign-in vouches for its address


class LoginThrottled(TooManyRequests):
    """Too many failed sign-ins: answered 429 with `Retry-After`."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


@dataclass(frozen=True)
class ThrottleLimits:
    """How many failed sign-ins each bucket allows at once, and again per `window` seconds;
    None turns that bucket off."""

    per_address: int | None = 30
    per_account_address: int | None = 5
    per_account: int | None = 100
    window: float = 300.0


class LoginThrottle:
    """Admits or refuses a sign-in attempt before its secret is checked (see the module)."""

    def __init__(
        self, failures: SharedTable, known: SharedTable, limits: ThrottleLimits | None = None
    ) -> None:
        self.failures = failures
        self.known = known
        limits = limits or ThrottleLimits()

        def limit(count: int | None) -> Limit | None:
            return None if not count else Limit.per_window(count, limits.window)

        self._window = limits.window
        self._address = limit(limits.per_address)
        self._pair = limit(limits.per_account_address)
        self._account = limit(limits.per_account)
        self._turns: dict[str, _Turn] = {}

    def _buckets(self, username: str | None, address: str) -> list[tuple[str, Limit, str, bool]]:
        """(key, limit, what it counts, whether a known address skips it) for each bucket;
        with no `username` (an access token, which cannot be guessed) the address's alone."""
        buckets: list[tuple[str, Limit | None, str, bool]] = [
            (f"a\0{address}", self._address, f"from {address}", True)
        ]
        if username is not None:
            buckets += [
                (
                    f"p\0{username}\0{address}",
                    self._pair,
                    f"for {username!r} from {address}",
                    False,
                ),
                (f"u\0{username}", self._account, f"for {username!r}", True),
            ]
        return [(k, lim, what, skip) for k, lim, what, skip in buckets if lim is not None]

    def check(self, username: str | None, address: str, now: float) -> None:
        """Raise `LoginThrottled` if an attempt now would be refused; take nothing.

        For credentials already verified and cached: were they let through while their
        address is refused, a throttled guesser would learn which guess was right."""
        self._admit(username, address, now, take=False)

    def admit(self, username: str | None, address: str, now: float) -> None:
        """Take a token from each bucket of this attempt, or raise `LoginThrottled`."""
        self._admit(username, address, now, take=True)

    def _admit(self, username: str | None, address: str, now: float, take: bool) -> None:
        if not take and now - self.failures.unlocked().note >= self._window:
            return  # no bucket was emptied for a window: all have refilled (the common case)
        buckets = self._buckets(username, address)
        if not buckets:
            return
        lock = self.failures.locked() if take else contextlib.nullcontext(self.failures.unlocked())
        with lock as slots:
            levels = [lim.level(slots.get(key), now) for key, lim, _, _ in buckets]
            for (_, lim, what, skip), tokens in zip(buckets, levels, strict=True):
                # the known addresses are looked up only when it matters (rarely)
                if tokens < 1.0 and not (skip and self.is_known(username, address, now)):
                    wait = lim.wait(tokens)
                    raise LoginThrottled(
                        f"too many failed sign-ins {what}; retry in {wait} s", wait
                    )
            if take:
                for (key, _, _, _), tokens in zip(buckets, levels, strict=True):
                    slots.put(key, now, max(0.0, tokens - 1.0))
                if min(levels) < 2.0:
                    slots.note = now  # when a bucket was last emptied

    def succeeded(self, username: str | None, address: str, now: float) -> None:
        """Give back this attempt's tokens (the pair's bucket fills up again) and remember
        the address as one the account signs in from."""
        with self.failures.locked() as slots:
            for key, lim, _, _ in self._buckets(username, address):
                if key.startswith("p\0"):
                    slots.drop(key)
                else:
                    slots.put(key, now, min(lim.capacity, lim.level(slots.get(key), now) + 1.0))
        if username is not None:
            with self.known.locked() as slots:
                slots.put(f"{username}\0{address}", now, 1.0)

    def is_known(self, username: str | None, address: str, now: float) -> bool:
        """Whether `username` signed in from `address` in the last 30 days."""
        if username is None:
            return False
        # a read, on the path of every throttled request: a torn one costs an exemption once
        entry = self.known.unlocked().get(f"{username}\0{address}")
        return entry is not None and now - entry[0] < KNOWN_ADDRESS_SECONDS

    @contextlib.asynccontextmanager
    async def turn(self, address: str) -> AsyncIterator[None]:
        """Wait until no other check from `address` runs in this process, then hold the turn:
        one address never holds more than one of the argon2 threads."""
        turn = self._turns.get(address)
        if turn is None:
            turn = self._turns[address] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[address]


class _Turn:
    """One address's lock, and how many attempts hold or wait for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
