"""The Docker token endpoint (`/token`), bearer tokens on /v2, and the Basic credentials cache.

In process on SQLite and PostgreSQL, plus one real-socket round trip with podman.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from argon2 import PasswordHasher

from dockyard.auth import accounts as accounts_module
from dockyard.auth import secrets
from dockyard.auth.policy import Role, Scope, Subject
from dockyard.auth.tokens import REFRESH_TTL, Grant, TokenIssuer, new_signing_key
from support.inprocess import BASE, Auth, InProcess, basic
from support.ocilayout import Layout
from support.peers import CommandError, DockyardServer, Podman, Skopeo

ORG = "acme"
OWNER, MEMBER, OUTSIDER = "olivia", "mona", "otto"
PUBLIC, PRIVATE = "acme/public", "acme/private"
SITE_ADMIN = Subject(name="admin", is_admin=True)

"""For tests of POST /token: expected to fail while the form parser it needs is missing."""


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production argon2 costs ~150 ms a hash; token rules do not depend on its cost."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(secrets, "_hasher", cheap, raising=False)


@pytest.fixture
async def app(cheap_argon2: None, registry_app: InProcess) -> InProcess:
    """Org acme (owner olivia, member mona), user otto, acme/public and acme/private."""
    await registry_app.user(OWNER)
    await registry_app.user(MEMBER)
    await registry_app.user(OUTSIDER)
    await registry_app.org(ORG, OWNER, {MEMBER: Role.MEMBER})
    for repo in (PUBLIC, PRIVATE):
        await registry_app.push_image(repo, "v1")
    await registry_app.state.registry.repositories.configure(
        SITE_ADMIN, PUBLIC, visibility="public"
    )
    return registry_app


def bearer(token: str) -> Auth:
    return {"Authorization": f"Bearer {token}"}


def password_of(user: str) -> str:
    return f"{user}-password"  # what InProcess.user gives


def challenge(scope: str | None = None) -> str:
    value = f'Bearer realm="{BASE}/token",service="dockyard"'
    return value + (f',scope="{scope}"' if scope else "")


def access_of(token: str) -> list[dict[str, Any]]:
    """The `access` claim, read without verifying (the server verifies; we look)."""
    claims: list[dict[str, Any]] = jwt.decode(token, options={"verify_signature": False})["access"]
    return claims


async def get_token(
    app: InProcess, scopes: list[str], auth: Auth | None = None, **params: str
) -> tuple[int, dict[str, Any]]:
    query = [("service", "dockyard"), *(("scope", s) for s in scopes), *params.items()]
    async with app.client.get("/token", params=query, headers=auth or {}) as resp:
        return resp.status, await resp.json(content_type=None)


async def post_token(app: InProcess, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with app.client.post("/token", data=form) as resp:
        return resp.status, await resp.json(content_type=None)


async def status_of(
    app: InProcess, method: str, path: str, auth: Auth | None = None, **kwargs: Any
) -> tuple[int, str | None, str | None]:
    """(status, error code, WWW-Authenticate) of one /v2 request."""
    async with app.client.request(method, path, headers=auth or {}, **kwargs) as resp:
        code = None
        if resp.status >= 400 and method != "HEAD":
            code = (await resp.json(content_type=None))["errors"][0]["code"]
        return resp.status, code, resp.headers.get("WWW-Authenticate")


# --- GET /token ------------------------------------------------------------------------------


async def test_token_grants_only_what_the_policy_allows(app: InProcess) -> None:
    member = basic(MEMBER, password_of(MEMBER))
    status, body = await get_token(app, [f"repository:{PRIVATE}:pull,push,delete"], member)
    assert status == 200
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert time.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert access_of(body["token"]) == [
        {"type": "repository", "name": PRIVATE, "actions": ["pull", "push"]}
    ]
    assert body["scope"] == f"repository:{PRIVATE}:pull,push"
    assert "refresh_token" not in body

    # the token does what it grants, and no more
    token = bearer(body["token"])
    assert (await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", token))[0] == 200
    assert (await status_of(app, "POST", f"/v2/{PRIVATE}/blobs/uploads/", token))[0] == 202
    # (members may not delete: the token does not grant it, so the client is sent for one)
    status, code, header = await status_of(app, "DELETE", f"/v2/{PRIVATE}/manifests/v1", token)
    assert (status, code) == (401, "UNAUTHORIZED")
    assert header == challenge(f"repository:{PRIVATE}:delete")


@pytest.mark.parametrize(
    ("who", "scopes", "expected"),
    [
        # owners get everything they ask for, several scopes at once
        (
            "owner",
            [f"repository:{PRIVATE}:pull,push,delete", f"repository:{PUBLIC}:pull"],
            [(PRIVATE, ["delete", "pull", "push"]), (PUBLIC, ["pull"])],
        ),
        ("owner", [f"repository:{PRIVATE}:*"], [(PRIVATE, ["delete", "pull", "push"])]),
        # never more than asked for
        ("owner", [f"repository:{PRIVATE}:pull"], [(PRIVATE, ["pull"])]),
        # outsiders get public pulls only; nothing of private repositories, existing or not
        ("outsider", [f"repository:{PUBLIC}:pull,push"], [(PUBLIC, ["pull"])]),
        ("outsider", [f"repository:{PRIVATE}:pull"], []),
        ("outsider", ["repository:acme/ghost:pull"], []),
        # a new repository in one's own namespace may be pushed
        (
            "outsider",
            [f"repository:{OUTSIDER}/new:pull,push"],
            [(f"{OUTSIDER}/new", ["pull", "push"])],
        ),
        # scopes this registry does not know, or names that are not names, are left out
        ("owner", ["repository:acme/UPPER:pull", "repository:../x:pull", "nonsense"], []),
        ("owner", ["repository:localhost:5000/acme/private:pull"], []),
        ("owner", [f"repository:{PRIVATE}:frobnicate"], []),
        # a space-separated list in one parameter counts as several scopes
        (
            "member",
            [f"repository:{PRIVATE}:pull repository:{PUBLIC}:pull"],
            [(PRIVATE, ["pull"]), (PUBLIC, ["pull"])],
        ),
    ],
)
async def test_token_access_claims(
    app: InProcess, who: str, scopes: list[str], expected: list[tuple[str, list[str]]]
) -> None:
    user = {"owner": OWNER, "member": MEMBER, "outsider": OUTSIDER}[who]
    status, body = await get_token(app, scopes, basic(user, password_of(user)))
    assert status == 200
    assert access_of(body["token"]) == [
        {"type": "repository", "name": name, "actions": actions} for name, actions in expected
    ]


async def test_personal_and_org_tokens_are_capped_by_their_scope(app: InProcess) -> None:
    asked = [f"repository:{PRIVATE}:pull,push,delete"]
    cases = [
        (await app.token(Scope.READ, user=OWNER), ["pull"]),
        (await app.token(Scope.WRITE, user=OWNER), ["pull", "push"]),
        (await app.token(Scope.DELETE, user=OWNER), ["delete", "pull", "push"]),
        (await app.token(Scope.DELETE, user=MEMBER), ["pull", "push"]),
        (await app.token(Scope.READ, org=ORG), ["pull"]),
        (await app.token(Scope.WRITE, org=ORG), ["pull", "push"]),
    ]
    for auth, actions in cases:
        status, body = await get_token(app, asked, auth)
        assert status == 200
        assert access_of(body["token"]) == [
            {"type": "repository", "name": PRIVATE, "actions": actions}
        ]
        payload = jwt.decode(body["token"], options={"verify_signature": False})
        assert payload["scope_cap"] in ("read", "write", "delete")


async def test_anonymous_token_pulls_public_repositories_only(app: InProcess) -> None:
    status, body = await get_token(
        app, [f"repository:{PUBLIC}:pull,push", f"repository:{PRIVATE}:pull", "registry:catalog:*"]
    )
    assert status == 200
    # the catalog is granted to anyone: its listing shows only what the caller may pull
    assert access_of(body["token"]) == [
        {"type": "repository", "name": PUBLIC, "actions": ["pull"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert jwt.decode(body["token"], options={"verify_signature": False})["sub"] == ""

    token = bearer(body["token"])
    assert (await status_of(app, "GET", f"/v2/{PUBLIC}/manifests/v1", token))[0] == 200
    assert (await status_of(app, "HEAD", f"/v2/{PUBLIC}/manifests/v1", token))[0] == 200
    status, code, header = await status_of(app, "POST", f"/v2/{PUBLIC}/blobs/uploads/", token)
    assert (status, code) == (401, "UNAUTHORIZED")
    assert header == challenge(f"repository:{PUBLIC}:pull,push")
    status, code, _ = await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", token)
    assert (status, code) == (401, "UNAUTHORIZED")


async def test_anonymous_token_endpoint_offers_no_refresh_token(app: InProcess) -> None:
    status, body = await get_token(app, [f"repository:{PUBLIC}:pull"], offline_token="true")
    assert status == 200
    assert "refresh_token" not in body


async def test_a_token_for_one_repository_is_refused_on_another(app: InProcess) -> None:
    owner = basic(OWNER, password_of(OWNER))
    _, body = await get_token(app, [f"repository:{PRIVATE}:pull,push,delete"], owner)
    token = bearer(body["token"])
    assert (await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", token))[0] == 200
    for path, scope in [
        (f"/v2/{PUBLIC}/manifests/v1", f"repository:{PUBLIC}:pull"),
        ("/v2/acme/private-too/manifests/v1", "repository:acme/private-too:pull"),
        ("/v2/acme/private/sub/manifests/v1", "repository:acme/private/sub:pull"),
        ("/v2/acme/public/tags/list", f"repository:{PUBLIC}:pull"),
    ]:
        status, code, header = await status_of(app, "GET", path, token)
        assert (status, code) == (401, "UNAUTHORIZED"), path
        assert header == challenge(scope), path
    status, code, header = await status_of(app, "POST", f"/v2/{PUBLIC}/blobs/uploads/", token)
    assert (status, code, header) == (
        401,
        "UNAUTHORIZED",
        challenge(f"repository:{PUBLIC}:pull,push"),
    )
    # the catalog wants its own grant
    status, code, header = await status_of(app, "GET", "/v2/_catalog", token)
    assert (status, code, header) == (401, "UNAUTHORIZED", challenge("registry:catalog:*"))


async def test_catalog_token(app: InProcess) -> None:
    member = basic(MEMBER, password_of(MEMBER))
    _, body = await get_token(app, ["registry:catalog:*"], member)
    assert access_of(body["token"]) == [{"type": "registry", "name": "catalog", "actions": ["*"]}]
    async with app.client.get("/v2/_catalog", headers=bearer(body["token"])) as resp:
        assert resp.status == 200
        assert (await resp.json())["repositories"] == [PRIVATE, PUBLIC]
    outsider = basic(OUTSIDER, password_of(OUTSIDER))
    _, body = await get_token(app, ["registry:catalog:*"], outsider)
    async with app.client.get("/v2/_catalog", headers=bearer(body["token"])) as resp:
        assert (await resp.json())["repositories"] == [PUBLIC]


async def test_anonymous_catalog_is_the_same_with_or_without_a_token(app: InProcess) -> None:
    async with app.client.get("/v2/_catalog") as resp:
        without = resp.status, await resp.json()
    assert without == (200, {"repositories": [PUBLIC]})
    status, body = await get_token(app, ["registry:catalog:*"])
    assert status == 200
    async with app.client.get("/v2/_catalog", headers=bearer(body["token"])) as resp:
        assert (resp.status, await resp.json()) == without


async def test_a_bearer_token_follows_the_accounts_current_rights(app: InProcess) -> None:
    """The policy is asked again on every request: a token cannot outlive the rights behind it."""
    _, body = await get_token(app, [f"repository:{PUBLIC}:pull"])
    token = bearer(body["token"])
    assert (await status_of(app, "GET", f"/v2/{PUBLIC}/manifests/v1", token))[0] == 200
    await app.state.registry.repositories.configure(SITE_ADMIN, PUBLIC, visibility="private")
    status, code, _ = await status_of(app, "GET", f"/v2/{PUBLIC}/manifests/v1", token)
    assert (status, code) == (401, "UNAUTHORIZED")


async def test_a_bearer_token_loses_what_a_demoted_owner_lost(app: InProcess) -> None:
    await app.state.accounts.add_member(ORG, MEMBER, Role.OWNER)
    member = basic(MEMBER, password_of(MEMBER))
    _, body = await get_token(app, [f"repository:{PRIVATE}:pull,push,delete"], member)
    assert access_of(body["token"])[0]["actions"] == ["delete", "pull", "push"]
    token = bearer(body["token"])
    path = f"/v2/{PRIVATE}/blobs/{'sha256:' + '0' * 64}"
    # allowed (the blob is simply not there) while an owner, and the subject is now cached
    assert (await status_of(app, "DELETE", path, token))[:2] == (404, "BLOB_UNKNOWN")
    await app.state.accounts.add_member(ORG, MEMBER, Role.MEMBER)
    assert (await status_of(app, "DELETE", path, token))[:2] == (403, "DENIED")
    assert (await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", token))[0] == 200


async def test_bad_credentials_at_the_token_endpoint(app: InProcess) -> None:
    for auth in (
        basic(OWNER, "wrong"),
        basic("nobody", "whatever"),
        basic(OWNER, secrets.TOKEN_PREFIX + "forged"),
        {"Authorization": "Basic %%%"},
    ):
        async with app.client.get(
            "/token", params={"scope": f"repository:{PUBLIC}:pull"}, headers=auth
        ) as resp:
            assert resp.status == 401, auth
            body = await resp.json()
            assert body["errors"][0]["code"] == "UNAUTHORIZED"
            assert "token" not in body
    # a bearer token is not a credential for getting another token
    _, body = await get_token(app, [f"repository:{PUBLIC}:pull"])
    status, _ = await get_token(app, [f"repository:{PUBLIC}:pull"], bearer(body["token"]))
    assert status == 401


# --- POST /token (OAuth2) --------------------------------------------------------------------


async def test_post_password_grant(app: InProcess) -> None:
    status, body = await post_token(
        app,
        {
            "grant_type": "password",
            "service": "dockyard",
            "client_id": "tests",
            "username": MEMBER,
            "password": password_of(MEMBER),
            "scope": f"repository:{PRIVATE}:pull,push,delete repository:{PUBLIC}:pull",
        },
    )
    assert status == 200
    assert access_of(body["access_token"]) == [
        {"type": "repository", "name": PRIVATE, "actions": ["pull", "push"]},
        {"type": "repository", "name": PUBLIC, "actions": ["pull"]},
    ]
    assert "refresh_token" not in body
    token = bearer(body["access_token"])
    assert (await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", token))[0] == 200


async def test_post_password_grant_with_a_personal_token(app: InProcess) -> None:
    secret = await app.state.accounts.create_token("ci", Scope.READ, user=OWNER)
    status, body = await post_token(
        app,
        {
            "grant_type": "password",
            "username": OWNER,
            "password": secret,
            "scope": f"repository:{PRIVATE}:pull,push",
        },
    )
    assert status == 200
    assert access_of(body["access_token"]) == [
        {"type": "repository", "name": PRIVATE, "actions": ["pull"]}
    ]


async def test_offline_access_gives_a_refresh_token_that_refreshes(app: InProcess) -> None:
    status, body = await post_token(
        app,
        {
            "grant_type": "password",
            "username": MEMBER,
            "password": password_of(MEMBER),
            "access_type": "offline",
            "scope": f"repository:{PRIVATE}:pull",
        },
    )
    assert status == 200
    refresh = body["refresh_token"]
    claims = jwt.decode(refresh, options={"verify_signature": False})
    assert claims["kind"] == "refresh"
    assert claims["access"] == []
    assert claims["exp"] - claims["iat"] == REFRESH_TTL

    # a refresh token is not an access token
    status, code, header = await status_of(
        app, "GET", f"/v2/{PRIVATE}/manifests/v1", bearer(refresh)
    )
    assert (status, code) == (401, "UNAUTHORIZED")
    assert header == challenge(f"repository:{PRIVATE}:pull")

    # ... but it buys new access tokens, for whatever the account may do now
    status, body = await post_token(
        app,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "scope": f"repository:{PRIVATE}:pull,push,delete",
        },
    )
    assert status == 200
    assert body["refresh_token"] == refresh
    assert access_of(body["access_token"]) == [
        {"type": "repository", "name": PRIVATE, "actions": ["pull", "push"]}
    ]
    token = bearer(body["access_token"])
    assert (await status_of(app, "POST", f"/v2/{PRIVATE}/blobs/uploads/", token))[0] == 202

    # an access token does not refresh
    status, body = await post_token(
        app, {"grant_type": "refresh_token", "refresh_token": body["access_token"]}
    )
    assert status == 401
    assert body["errors"][0]["code"] == "UNAUTHORIZED"

    # a new password ends every refresh token earned with the old one
    await app.state.accounts.set_password(MEMBER, "a-brand-new-password")
    status, body = await post_token(app, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert status == 401
    assert "changed after this refresh token was issued" in body["errors"][0]["message"]


async def test_get_with_offline_token_gives_a_refresh_token(app: InProcess) -> None:
    status, body = await get_token(
        app,
        [f"repository:{PRIVATE}:pull"],
        basic(MEMBER, password_of(MEMBER)),
        offline_token="true",
    )
    assert status == 200
    claims = app.state.issuer.verify(body["refresh_token"], kind="refresh")
    assert (claims.subject, claims.access) == (MEMBER, ())
    # it is no access token
    status, code, _ = await status_of(
        app, "GET", f"/v2/{PRIVATE}/manifests/v1", bearer(body["refresh_token"])
    )
    assert (status, code) == (401, "UNAUTHORIZED")


async def test_refresh_keeps_the_scope_cap_of_a_personal_token(app: InProcess) -> None:
    secret = await app.state.accounts.create_token("ci", Scope.READ, user=OWNER)
    _, body = await post_token(
        app,
        {"grant_type": "password", "username": OWNER, "password": secret, "access_type": "offline"},
    )
    status, refreshed = await post_token(
        app,
        {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "scope": f"repository:{PRIVATE}:pull,push,delete",
        },
    )
    assert status == 200
    assert access_of(refreshed["access_token"]) == [
        {"type": "repository", "name": PRIVATE, "actions": ["pull"]}
    ]


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(
            {"grant_type": "password", "username": OWNER, "password": "wrong"}, id="wrong-password"
        ),
        pytest.param(
            {"grant_type": "password", "username": "nobody", "password": "x"}, id="unknown-user"
        ),
        pytest.param({"grant_type": "password"}, id="no-credentials"),
        pytest.param(
            {"grant_type": "refresh_token", "refresh_token": "not-a-jwt"}, id="garbage-refresh"
        ),
        pytest.param({"grant_type": "refresh_token"}, id="no-refresh-token"),
    ],
)
async def test_post_refuses_bad_credentials(app: InProcess, form: dict[str, str]) -> None:
    status, body = await post_token(app, {**form, "scope": f"repository:{PUBLIC}:pull"})
    assert status == 401
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    assert "access_token" not in body


async def test_post_refuses_unknown_grant_types(app: InProcess) -> None:
    for grant_type in ("client_credentials", ""):
        status, body = await post_token(app, {"grant_type": grant_type})
        assert status == 400
        assert body["errors"][0]["code"] == "UNSUPPORTED"


async def test_refresh_token_signed_elsewhere_is_refused(app: InProcess) -> None:
    stranger = TokenIssuer(new_signing_key(), "dockyard")
    forged, _, _ = stranger.issue(Subject(name=OWNER), [], ttl=3600, kind="refresh")
    status, _ = await post_token(app, {"grant_type": "refresh_token", "refresh_token": forged})
    assert status == 401


# --- bearer tokens that must not work --------------------------------------------------------


def _everything() -> list[Grant]:
    return [Grant("repository", PRIVATE, frozenset({"pull", "push", "delete"}))]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda app: app.state.issuer.issue(Subject(name=OWNER), _everything(), ttl=-1)[0],
            id="expired",
        ),
        pytest.param(
            lambda app: TokenIssuer(new_signing_key(), "dockyard").issue(
                Subject(name="admin"), _everything()
            )[0],
            id="signed-with-another-key",
        ),
        pytest.param(
            lambda app: TokenIssuer(new_signing_key(), "elsewhere").issue(
                Subject(name="admin"), _everything()
            )[0],
            id="other-service",
        ),
        pytest.param(
            lambda app: jwt.encode(
                {
                    "iss": "dockyard",
                    "aud": "dockyard",
                    "sub": "admin",
                    "exp": int(time.time()) + 60,
                    "kind": "access",
                    "access": [g.to_json() for g in _everything()],
                },
                None,
                algorithm="none",
            ),
            id="unsigned",
        ),
        pytest.param(
            lambda app: app.state.issuer.issue(
                Subject(name=OWNER), _everything(), ttl=3600, kind="refresh"
            )[0],
            id="refresh-token",
        ),
        pytest.param(lambda app: "not.a.jwt", id="garbage"),
    ],
)
async def test_expired_or_forged_bearer_tokens_are_refused(
    app: InProcess, make: Callable[[InProcess], str]
) -> None:
    token = bearer(make(app))
    for method, path, scope in [
        ("GET", f"/v2/{PRIVATE}/manifests/v1", f"repository:{PRIVATE}:pull"),
        ("GET", f"/v2/{PUBLIC}/manifests/v1", f"repository:{PUBLIC}:pull"),
        ("POST", f"/v2/{PRIVATE}/blobs/uploads/", f"repository:{PRIVATE}:pull,push"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("GET", "/v2/", None),
    ]:
        status, code, header = await status_of(app, method, path, token)
        assert (status, code) == (401, "UNAUTHORIZED"), path
        assert header == challenge(scope), path


async def test_a_token_for_an_account_that_does_not_exist_is_refused(app: InProcess) -> None:
    token, _, _ = app.state.issuer.issue(Subject(name="ghost"), _everything())
    status, code, _ = await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", bearer(token))
    assert status in (401, 403)
    assert code in ("UNAUTHORIZED", "DENIED")


# --- personal token expiry -------------------------------------------------------------------


class _Later:
    """The `time` module as `dockyard.auth.accounts` sees it, `offset` seconds from now."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


async def test_an_expired_personal_token_is_refused(
    app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = await app.state.accounts.create_token("ci", Scope.READ, user=OWNER, expires_in=600)
    auth = basic(OWNER, secret)
    assert (await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", auth))[0] == 200
    monkeypatch.setattr(accounts_module, "time", _Later(3600))
    status, code, _ = await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", auth)
    assert (status, code) == (401, "UNAUTHORIZED")
    status, _ = await get_token(app, [f"repository:{PRIVATE}:pull"], auth)
    assert status == 401


async def test_a_refresh_token_does_not_outlive_the_personal_token_behind_it(
    app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = await app.state.accounts.create_token("ci", Scope.READ, user=OWNER, expires_in=600)
    status, body = await post_token(
        app,
        {"grant_type": "password", "username": OWNER, "password": secret, "access_type": "offline"},
    )
    assert status == 200
    # an hour later the personal token has expired ...
    monkeypatch.setattr(accounts_module, "time", _Later(3600))
    status, _, _ = await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", basic(OWNER, secret))
    assert status == 401
    # ... and whatever was derived from it must stop working too
    status, refreshed = await post_token(
        app,
        {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "scope": f"repository:{PRIVATE}:pull",
        },
    )
    assert status == 401, f"refresh still grants {access_of(refreshed['access_token'])}"


async def test_the_basic_cache_does_not_outlive_a_personal_token(
    app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = await app.state.accounts.create_token("ci", Scope.READ, user=OWNER, expires_in=30)
    auth = basic(OWNER, secret)
    assert (await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", auth))[0] == 200
    # 45 s later: past the token's expiry, within the cache's minute
    monkeypatch.setattr(accounts_module, "time", _Later(45))
    status, _, _ = await status_of(app, "GET", f"/v2/{PRIVATE}/manifests/v1", auth)
    assert status == 401


# --- the Basic credentials cache -------------------------------------------------------------


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password hash `verify_password` is asked to check, in order."""
    calls: list[str] = []
    real: Callable[..., Awaitable[bool]] = secrets.verify_password

    async def counting(password_hash: str, password: str, executor: Any = None) -> bool:
        calls.append(password)
        return await real(password_hash, password, executor)

    monkeypatch.setattr(secrets, "verify_password", counting)
    return calls


async def test_concurrent_requests_with_new_credentials_share_one_check(
    sqlite_app: InProcess, argon2_calls: list[str]
) -> None:
    app = sqlite_app
    alice = await app.user("alice", "alice-pass-1x")
    argon2_calls.clear()

    async def ping() -> int:
        async with app.client.get("/v2/", headers=alice) as resp:
            return resp.status

    assert await asyncio.gather(*(ping() for _ in range(8))) == [200] * 8
    assert argon2_calls == ["alice-pass-1x"]


async def test_basic_credentials_are_verified_once(
    sqlite_app: InProcess, argon2_calls: list[str]
) -> None:
    app = sqlite_app
    alice = await app.user("alice", "alice-pass-1x")
    await app.push_image("alice/app", "v1")  # as the admin: alice's password is not used yet
    argon2_calls.clear()
    for _ in range(3):
        async with app.client.get("/v2/", headers=alice) as resp:
            assert resp.status == 200
        async with app.client.get("/v2/alice/app/manifests/v1", headers=alice) as resp:
            assert resp.status == 200
    status, _ = await get_token(app, ["repository:alice/app:pull"], alice)
    assert status == 200
    assert argon2_calls == ["alice-pass-1x"]


async def test_wrong_passwords_are_never_cached(
    sqlite_app: InProcess, argon2_calls: list[str]
) -> None:
    app = sqlite_app
    await app.user("alice", "alice-pass-1x")
    wrong = basic("alice", "not-alice-pass-1x")
    for _ in range(3):
        async with app.client.get("/v2/", headers=wrong) as resp:
            assert resp.status == 401
    assert argon2_calls == ["not-alice-pass-1x"] * 3

    # the right password, once verified, does not let the wrong one through
    async with app.client.get("/v2/", headers=basic("alice", "alice-pass-1x")) as resp:
        assert resp.status == 200
    async with app.client.get("/v2/", headers=wrong) as resp:
        assert resp.status == 401
    # ... nor a password that merely starts like the right one
    async with app.client.get("/v2/", headers=basic("alice", "alice-pass-1x ")) as resp:
        assert resp.status == 401
    assert argon2_calls == (
        ["not-alice-pass-1x"] * 3 + ["alice-pass-1x", "not-alice-pass-1x", "alice-pass-1x "]
    )


async def test_the_cache_is_per_user_and_password(
    sqlite_app: InProcess, argon2_calls: list[str]
) -> None:
    app = sqlite_app
    await app.user("alice", "shared-pass-1x")
    await app.user("bob", "shared-pass-1x")
    for _ in range(2):
        async with app.client.get("/v2/", headers=basic("alice", "shared-pass-1x")) as resp:
            assert resp.status == 200
        async with app.client.get("/v2/", headers=basic("bob", "shared-pass-1x")) as resp:
            assert resp.status == 200
    assert len(argon2_calls) == 2
    # the cached subject is bob's, not alice's
    await app.push_image("alice/app", "v1", auth=basic("alice", "shared-pass-1x"))
    async with app.client.get(
        "/v2/alice/app/manifests/v1", headers=basic("bob", "shared-pass-1x")
    ) as resp:
        assert resp.status == 403


async def test_a_new_password_drops_the_cached_old_one(
    sqlite_app: InProcess, argon2_calls: list[str]
) -> None:
    app = sqlite_app
    await app.user("alice", "old-passphrase")
    async with app.client.get("/v2/", headers=basic("alice", "old-passphrase")) as resp:
        assert resp.status == 200
    await app.state.accounts.set_password("alice", "new-passphrase")
    async with app.client.get("/v2/", headers=basic("alice", "old-passphrase")) as resp:
        assert resp.status == 401
    async with app.client.get("/v2/", headers=basic("alice", "new-passphrase")) as resp:
        assert resp.status == 200
    assert argon2_calls == ["old-passphrase", "old-passphrase", "new-passphrase"]


async def test_a_new_membership_is_seen_despite_the_cache(
    sqlite_app: InProcess, argon2_calls: list[str]
) -> None:
    app = sqlite_app
    await app.user("owner")
    bob = await app.user("bob")
    await app.org("team", "owner")
    await app.push_image("team/app", "v1")
    async with app.client.get("/v2/team/app/manifests/v1", headers=bob) as resp:
        assert resp.status == 403
    await app.state.accounts.add_member("team", "bob", Role.MEMBER)
    async with app.client.get("/v2/team/app/manifests/v1", headers=bob) as resp:
        assert resp.status == 200


async def test_the_cache_expires(
    sqlite_app: InProcess, argon2_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = sqlite_app
    alice = await app.user("alice", "alice-pass-1x")
    for _ in range(2):
        async with app.client.get("/v2/", headers=alice) as resp:
            assert resp.status == 200
    assert len(argon2_calls) == 1
    # past the cache's minute, the password is checked again (and then cached again)
    monkeypatch.setattr(accounts_module, "time", _Later(app.settings.basic_cache_seconds + 1))
    for _ in range(2):
        async with app.client.get("/v2/", headers=alice) as resp:
            assert resp.status == 200
    assert len(argon2_calls) == 2


# --- over a real socket, with podman ---------------------------------------------------------


@pytest.mark.peers
def test_podman_with_a_read_only_token_pulls_but_cannot_push(
    tmp_path: Path, dockyard_server: DockyardServer, podman: Podman, skopeo: Skopeo
) -> None:
    server = dockyard_server
    server.cli("admin", "user", "create", "alice", "--password-stdin", input="alice-pass-1x\n")
    server.cli("admin", "org", "create", "acme", "--owner", "alice")
    created = server.cli("admin", "token", "create", "--user", "alice", "--scope", "read")
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith(secrets.TOKEN_PREFIX)

    layout = Layout(tmp_path / "layout")
    desc = layout.add_image("v1", {"etc/motd": "read-only tokens pull\n"})
    config_digest = json.loads(layout.read_blob(desc["digest"]))["config"]["digest"]
    name = f"{server.host}/acme/app"
    skopeo.copy(layout.ref("v1"), f"docker://{name}:v1", dest_creds="alice:alice-pass-1x")

    # anonymous: the repository is private
    with pytest.raises(CommandError):
        podman.pull(f"{name}:v1")

    podman.login(server.host, "alice", token)
    podman.pull(f"{name}:v1")
    assert podman.image_id(f"{name}:v1") == config_digest.removeprefix("sha256:")

    podman.tag(f"{name}:v1", f"{name}:v2")
    with pytest.raises(CommandError) as refused:
        podman.push(f"{name}:v2")
    message = (refused.value.stderr or "").lower()
    assert any(word in message for word in ("denied", "unauthorized", "authentication")), message
    assert skopeo.list_tags(f"docker://{name}", creds="alice:alice-pass-1x") == ["v1"]

    # control: the same push with alice's password goes through
    podman.login(server.host, "alice", "alice-pass-1x")
    podman.push(f"{name}:v2")
    assert sorted(skopeo.list_tags(f"docker://{name}", creds="alice:alice-pass-1x")) == ["v1", "v2"]
