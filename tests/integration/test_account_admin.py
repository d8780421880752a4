"""Administering accounts against `dockyard serve --workers 2`, over a real socket.

Access tokens, whatever their scope, cannot change members, roles or tokens: only a person
signed in with a password can (an organization token of scope delete once made anyone owner).
A password change ends, on every worker at once, everything the old password earned.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from support.peers import DockyardServer, launch_dockyard

ROUNDS = 6  # fresh connections each, so both workers answer (and cache) some of them
TOKENS_CANNOT = (
    "access tokens cannot {}: sign in with a password (HTTP Basic with the user's password, "
    "or a Bearer token from /token earned with it)"
)


def _basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _call(
    server: DockyardServer, method: str, path: str, auth: dict[str, str] | None = None, **kw: Any
) -> tuple[int, Any]:
    """(status, JSON body or None), on a connection of its own."""
    async with (
        aiohttp.ClientSession(server.url) as session,
        session.request(method, path, headers=auth or {}, **kw) as resp,
    ):
        body = await resp.read()
        return resp.status, json.loads(body) if body else None


def _message(body: Any) -> str:
    [entry] = body["errors"]
    return str(entry["message"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    # these tests send old and wrong passwords on purpose, more than the sign-in throttle lets
    # one address try (test_throttle.py is about that); the throttle would answer 429 instead
    no_throttle = {
        "DOCKYARD_LOGIN_FAILURES_PER_ADDRESS": "0",
        "DOCKYARD_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS": "0",
    }
    process = launch_dockyard(
        tmp_path_factory.mktemp("accounts"), env=no_throttle, args=["--workers", "2"]
    )
    try:
        yield process
    finally:
        process.stop()


async def _user(server: DockyardServer, name: str, password: str) -> dict[str, str]:
    admin = _basic("admin", server.admin_password)
    body = {"name": name, "password": password}
    status, answer = await _call(server, "POST", "/api/v1/users", admin, json=body)
    assert status == 201, answer
    return _basic(name, password)


async def _statuses(server: DockyardServer, path: str, auth: dict[str, str]) -> set[int]:
    return {(await _call(server, "GET", path, auth))[0] for _ in range(ROUNDS)}


@pytest.mark.peers
async def test_no_access_token_makes_anyone_an_owner(server: DockyardServer) -> None:
    olivia = await _user(server, "olivia", "olivia's long password")
    await _user(server, "mallory", "mallory's long password")
    assert (await _call(server, "POST", "/api/v1/orgs", olivia, json={"name": "acme"}))[0] == 201
    tokens = {}
    for owner, path in (
        ("acme", "/api/v1/orgs/acme/tokens"),
        ("olivia", "/api/v1/users/olivia/tokens"),
    ):
        status, created = await _call(
            server, "POST", path, olivia, json={"name": "ci", "scope": "delete"}
        )
        assert status == 201, created
        tokens[owner] = _basic(owner, created["secret"])
    status, issued = await _call(server, "GET", "/token", tokens["acme"])
    assert status == 200
    tokens["bearer of acme"] = _bearer(issued["token"])

    # the exploit, and its variants: each refused, saying what to do instead
    members = "/api/v1/orgs/acme/members/mallory"
    for name, token in tokens.items():
        status, body = await _call(server, "PUT", members, token, json={"role": "owner"})
        assert status == 403, (name, body)
        assert _message(body) == TOKENS_CANNOT.format("change the members of 'acme'")
        status, body = await _call(
            server, "POST", "/api/v1/orgs/acme/tokens", token, json={"name": "x", "scope": "read"}
        )
        assert (status, _message(body)) == (403, TOKENS_CANNOT.format("create tokens for 'acme'"))
    status, body = await _call(server, "GET", "/api/v1/orgs/acme/members", olivia)
    assert body["items"] == [{"user": "olivia", "role": "owner"}]

    # the owner, signed in with her password, still can: by Basic, and by a Bearer token
    # bought with a refresh token that her password earned
    status, body = await _call(server, "PUT", members, olivia, json={"role": "member"})
    assert (status, body) == (200, {"user": "mallory", "role": "member"})
    form = {
        "grant_type": "password",
        "username": "olivia",
        "password": "olivia's long password",
        "access_type": "offline",
    }
    status, signed_in = await _call(server, "POST", "/token", data=form)
    assert status == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": signed_in["refresh_token"]}
    status, refreshed = await _call(server, "POST", "/token", data=refresh)
    assert status == 200
    bearer = _bearer(refreshed["access_token"])
    status, body = await _call(server, "PUT", members, bearer, json={"role": "owner"})
    assert (status, body) == (200, {"user": "mallory", "role": "owner"})


@pytest.mark.peers
async def test_a_new_password_ends_the_old_one_on_every_worker(server: DockyardServer) -> None:
    admin = _basic("admin", server.admin_password)
    old, new = "paula's first password", "paula's second password"
    paula = await _user(server, "paula", old)
    stranger = await _user(server, "sam", "sam's long password")
    # every worker has the old password's sign-in cached; paula holds a refresh token
    assert await _statuses(server, "/v2/", paula) == {200}
    form = {
        "grant_type": "password",
        "username": "paula",
        "password": old,
        "access_type": "offline",
    }
    status, signed_in = await _call(server, "POST", "/token", data=form)
    assert status == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": signed_in["refresh_token"]}

    path = "/api/v1/users/paula"
    refusals = [
        (stranger, {"password": new}, 403, "only 'paula' and site admins may change the password"),
        (paula, {"password": new, "current_password": "not it at all"}, 403, "that is not the"),
        (paula, {"password": new}, 422, "body.current_password: give your current password"),
        (paula, {"password": "short", "current_password": old}, 422, "body.password: String"),
        (
            paula,
            {"password": "qwertyuiop123", "current_password": old},
            422,
            "body.password: the password is one",
        ),
    ]
    for auth, change, expected_status, expected in refusals:
        status, body = await _call(server, "PATCH", path, auth, json=change)
        assert (status, _message(body)[: len(expected)]) == (expected_status, expected)
    assert await _statuses(server, "/v2/", paula) == {200}

    change = {"password": new, "current_password": old}
    status, body = await _call(server, "PATCH", path, paula, json=change)
    assert (status, body["name"]) == (200, "paula")
    # the old password is refused at once by both workers, on /v2 and on /token
    assert await _statuses(server, "/v2/", paula) == {401}
    assert (await _call(server, "GET", "/token", paula))[0] == 401
    assert (await _call(server, "POST", "/token", data=form))[0] == 401
    status, body = await _call(server, "POST", "/token", data=refresh)
    assert status == 401
    assert "changed after this refresh token was issued" in _message(body)
    assert await _statuses(server, "/v2/", _basic("paula", new)) == {200}
    assert (await _call(server, "POST", "/token", data={**form, "password": new}))[0] == 200

    # a site admin resets it without the current one
    status, _ = await _call(server, "PATCH", path, admin, json={"password": "reset by the admin"})
    assert status == 200
    assert await _statuses(server, "/v2/", _basic("paula", new)) == {401}
    assert await _statuses(server, "/v2/", _basic("paula", "reset by the admin")) == {200}


@pytest.mark.peers
async def test_set_password_on_the_command_line_reaches_a_running_server(
    server: DockyardServer,
) -> None:
    before = await _user(server, "carl", "carl's first password")
    assert await _statuses(server, "/v2/", before) == {200}  # cached by both workers
    refused = server.cli(
        "admin", "user", "set-password", "carl", "--password-stdin", input="carl12345678\n",
        check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "the password is the user name with digits or symbols added" in refused.stderr
    done = server.cli(
        "admin", "user", "set-password", "carl", "--password-stdin", input="carl's new one!\n"
    )
    assert "changed the password of 'carl'" in done.stdout
    assert await _statuses(server, "/v2/", before) == {401}
    assert await _statuses(server, "/v2/", _basic("carl", "carl's new one!")) == {200}
