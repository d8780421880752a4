"""Failed sign-ins: which bucket refuses whom, before any password is checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from dockyard.auth import secrets
from dockyard.auth.accounts import Accounts
from dockyard.auth.limits import HostBuckets, SiteBuckets
from dockyard.auth.throttle import LoginThrottle, LoginThrottled, ThrottleLimits
from dockyard.metadata.db import Database
from dockyard.storage.buckets import SharedTable
from dockyard.storage.generation import Generation

NOW = 1_000_000.0
LIMITS = ThrottleLimits(per_address=10, per_account_address=3, per_account=6, window=60.0)


@pytest.fixture(params=["host", pytest.param("site", marks=pytest.mark.peers)])
async def throttle(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LoginThrottle]:
    """The throttle over a host's tables, and over a PostgreSQL site's rows."""
    if request.param == "host":
        yield LoginThrottle(
            HostBuckets(SharedTable(tmp_path / "failures"), SharedTable(tmp_path / "known")),
            LIMITS,
        )
        return
    db = Database(request.getfixturevalue("postgres_database_url"))
    await db.migrate()
    try:
        yield LoginThrottle(SiteBuckets(db), LIMITS)
    finally:
        await db.close()


async def _fail(throttle: LoginThrottle, user: str | None, address: str, times: int) -> None:
    for _ in range(times):
        await throttle.admit(user, address, NOW)


async def test_one_account_from_one_address_is_refused_past_its_limit(
    throttle: LoginThrottle,
) -> None:
    await _fail(throttle, "alice", "10.0.0.1", 3)
    with pytest.raises(LoginThrottled) as refused:
        await throttle.admit("alice", "10.0.0.1", NOW)
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "20"
    assert "'alice' from 10.0.0.1" in refused.value.message
    await throttle.admit("alice", "10.0.0.2", NOW)  # another address still may try
    await throttle.admit("alice", "10.0.0.1", NOW + 20)  # and this one again, later


async def test_one_address_trying_many_accounts_is_refused(throttle: LoginThrottle) -> None:
    for i in range(10):
        await throttle.admit(f"user{i}", "10.0.0.1", NOW)
    with pytest.raises(LoginThrottled, match=r"from 10\.0\.0\.1"):
        await throttle.admit("someone-else", "10.0.0.1", NOW)


async def test_many_addresses_lock_an_account_but_not_from_where_it_signed_in(
    throttle: LoginThrottle,
) -> None:
    await throttle.admit("alice", "192.0.2.7", NOW - 3600)
    await throttle.succeeded("alice", "192.0.2.7", NOW - 3600)
    for i in range(6):
        await throttle.admit("alice", f"10.0.0.{i}", NOW)
    with pytest.raises(LoginThrottled, match="for 'alice';"):
        await throttle.admit("alice", "10.0.1.1", NOW)
    await throttle.admit("alice", "192.0.2.7", NOW)  # the address alice signed in from


async def test_a_success_gives_the_tokens_back(throttle: LoginThrottle) -> None:
    await _fail(throttle, "alice", "10.0.0.1", 3)
    await throttle.succeeded("alice", "10.0.0.1", NOW)
    await _fail(throttle, "alice", "10.0.0.1", 3)  # the pair's bucket is full again


async def test_an_unknown_user_costs_an_argon2_check_like_a_known_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    checked: list[str] = []
    verify = secrets.verify_password

    async def recording(password_hash: str, password: str, *args: object) -> bool:
        checked.append(password_hash)
        return await verify(password_hash, password, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(secrets, "verify_password", recording)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'dockyard.db'}")
    await db.migrate()
    try:
        accounts = Accounts(db, Generation())
        await accounts.create_user("alice", "correct horse")
        assert await accounts.authenticate("alice", "wrong") is None
        assert await accounts.authenticate("nobody", "wrong") is None
        assert await accounts.authenticate("nobody", "wrong again") is None
    finally:
        await db.close()
    known, unknown, again = checked
    assert known.startswith("$argon2")
    assert unknown != known  # checked against a hash of its own
    assert unknown == again  # one dummy hash, made once
    assert unknown.rsplit("$", 2)[0] == known.rsplit("$", 2)[0]


async def test_accounts_refuse_guesses_past_the_limit_before_checking_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, throttle: LoginThrottle
) -> None:
    monkeypatch.setattr(
        secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'dockyard.db'}")
    await db.migrate()
    try:
        accounts = Accounts(db, Generation(), throttle=throttle)
        await accounts.create_user("alice", "correct horse")
        for guess in ("guess1", "guess2", "guess1"):  # a wrong pair again is a guess again
            assert await accounts.authenticate("alice", guess, "10.0.0.1") is None
        with pytest.raises(LoginThrottled):
            await accounts.authenticate("alice", "guess3", "10.0.0.1")
        assert await accounts.authenticate("alice", "correct horse", "10.0.0.2") is not None
        with pytest.raises(LoginThrottled):  # cached now, but no oracle for a throttled guesser
            await accounts.authenticate("alice", "correct horse", "10.0.0.1")
    finally:
        await db.close()


async def test_a_check_takes_nothing_and_refuses_what_an_attempt_would(
    throttle: LoginThrottle,
) -> None:
    for _ in range(10):
        await throttle.check("alice", "10.0.0.1", NOW)
    await _fail(throttle, "alice", "10.0.0.1", 3)
    with pytest.raises(LoginThrottled):
        await throttle.check("alice", "10.0.0.1", NOW + 1)
    await throttle.check("alice", "10.0.0.1", NOW + 20)  # refilled
    await throttle.check("alice", "10.0.0.1", NOW + 3600)  # long after anything was emptied


async def test_wrong_access_tokens_count_against_the_address_alone(throttle: LoginThrottle) -> None:
    for _ in range(5):  # no username: an access token, which cannot be guessed
        await throttle.admit(None, "10.0.0.1", NOW)
    await _fail(throttle, "alice", "10.0.0.1", 3)  # alice's pair bucket was still full
    with pytest.raises(LoginThrottled, match="for 'alice' from"):
        await throttle.admit("alice", "10.0.0.1", NOW)
    await _fail(throttle, None, "10.0.0.1", 2)  # 5 + 3 + 2: the address's 10 are spent
    with pytest.raises(LoginThrottled, match=r"^too many failed sign-ins from 10\.0\.0\.1"):
        await throttle.admit(None, "10.0.0.1", NOW)
