"""Failed sign-ins and the rate limit hold for the site, whichever worker of
`dockyard serve --workers 2` answers: every request here opens a fresh connection (from a
chosen loopback address), and each answer says which worker process held it."""

from __future__ import annotations

import orjson
import pytest

from support.peers import DockyardServer, DockyardServerFactory
from support.workers import Answer, basic, request

ATTACKER, ELSEWHERE, REGULAR, NEWCOMER = "127.0.0.1", "127.0.0.4", "127.0.0.3", "127.0.0.2"


async def _get(
    server: DockyardServer, path: str, source: str, headers: dict[str, str] | None = None
) -> Answer:
    assert server.process is not None
    return await request(
        server.url, server.process.pid, "GET", path, source=source, headers=headers
    )


def _code(answer: Answer) -> str:
    return str(orjson.loads(answer.body)["errors"][0]["code"])


@pytest.fixture
def server(dockyard_server_factory: DockyardServerFactory) -> DockyardServer:
    # the default limits but for the account's, lowered so that two addresses can reach it
    return dockyard_server_factory(
        args=["--workers", "2"], env={"DOCKYARD_LOGIN_FAILURES_PER_ACCOUNT": "8"}
    )


async def test_wrong_passwords_get_429_after_the_threshold_on_every_worker_and_login_path(
    server: DockyardServer,
) -> None:
    # the real user signs in once, before the attack, from their usual address
    assert (
        await _get(server, "/v2/", REGULAR, basic("admin", server.admin_password))
    ).status == 200
    answers = [
        await _get(server, "/v2/", ATTACKER, basic("admin", f"guess-{i}")) for i in range(30)
    ]
    statuses = [a.status for a in answers]
    assert statuses == [401] * 5 + [429] * 25, statuses  # 5 per account and address
    refused = answers[5:]
    assert {_code(a) for a in refused} == {"TOOMANYREQUESTS"}
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in refused)
    assert len({a.pid for a in refused} - {None}) == 2, "both workers refused"
    assert b"too many failed sign-ins for 'admin' from 127.0.0.1" in refused[-1].body

    # every place a password is checked refuses it now, the right one included
    right = basic("admin", server.admin_password)
    for path in ("/v2/", "/token?service=dockyard", "/api/v1/users/admin"):
        assert (await _get(server, path, ATTACKER, right)).status == 429, path
    assert server.process is not None
    posted = await request(
        server.url,
        server.process.pid,
        "POST",
        "/token",
        source=ATTACKER,
        form={"grant_type": "password", "username": "admin", "password": "guess-x"},
    )
    assert posted.status == 429

    # another address may still sign in, until the account's own limit (8) is reached
    for i in range(2):
        answer = await _get(server, "/v2/", ELSEWHERE, basic("admin", f"other-{i}"))
        assert answer.status == 401
    assert (await _get(server, "/token", ELSEWHERE, right)).status == 200
    assert (await _get(server, "/v2/", ELSEWHERE, basic("admin", "other-2"))).status == 401
    locked = await _get(server, "/v2/", NEWCOMER, right)
    assert locked.status == 429
    assert b"too many failed sign-ins for 'admin';" in locked.body
    # ... but not from where the real user signed in before: the account works for them
    for _ in range(4):  # on both workers, with no credential cached by either
        assert (await _get(server, "/v2/", REGULAR, right)).status == 200


async def test_an_unknown_user_is_throttled_like_a_known_one(server: DockyardServer) -> None:
    statuses = [
        (await _get(server, "/v2/", ATTACKER, basic("nosuchuser", f"g{i}"))).status
        for i in range(7)
    ]
    assert statuses == [401] * 5 + [429] * 2


@pytest.fixture
def limited(dockyard_server_factory: DockyardServerFactory) -> DockyardServer:
    return dockyard_server_factory(
        args=["--workers", "2"],
        env={"DOCKYARD_RATE_LIMIT_PER_SECOND": "0.05", "DOCKYARD_RATE_LIMIT_BURST": "10"},
    )


async def test_the_rate_limit_holds_across_workers(limited: DockyardServer) -> None:
    answers = [await _get(limited, "/v2/", NEWCOMER) for _ in range(30)]
    allowed = [a for a in answers if a.status != 429]
    assert len({a.pid for a in answers} - {None}) == 2, "both workers answered"
    # a burst of 10 for the site (one more may have refilled meanwhile), not 10 per worker
    assert 10 <= len(allowed) <= 11, [a.status for a in answers]
    assert all(a.status == 401 for a in allowed)
    assert {_code(a) for a in answers if a.status == 429} == {"TOOMANYREQUESTS"}


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_buckets(
    dockyard_server_factory: DockyardServerFactory,
) -> None:
    server = dockyard_server_factory(env={"DOCKYARD_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    proxy, stranger = "127.0.0.1", "127.0.0.2"

    def through(client: str, guess: str) -> dict[str, str]:
        # as HAProxy appends: the client, then any proxy of ours it passed
        return {"X-Forwarded-For": f"{client}, 10.1.2.3", **basic("admin", guess)}

    statuses = [
        (await _get(server, "/v2/", proxy, through("198.51.100.7", f"g{i}"))).status
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    refused = await _get(server, "/v2/", proxy, through("198.51.100.7", "g6"))
    assert b"from 198.51.100.7" in refused.body  # the client, not the proxy
    # another client behind the same proxy is not locked out with the first
    assert (await _get(server, "/v2/", proxy, through("198.51.100.8", "g0"))).status == 401
    # a peer that is no proxy of ours cannot choose whom it counts as
    spoofed = [
        (await _get(server, "/v2/", stranger, through(f"203.0.113.{i}", f"s{i}"))).status
        for i in range(6)
    ]
    assert spoofed == [401] * 5 + [429]
