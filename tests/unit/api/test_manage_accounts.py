"""/api/v1 organizations, members, users and access tokens: each operation, who may do it,
and how a refusal reads (in process, on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from dockyard.auth import secrets
from dockyard.auth.policy import Role, Scope
from support.inprocess import InProcess, basic
from support.manageapi import call, login, refusal

ORG = "acme"
OWNER, MEMBER, OUTSIDER = "olivia", "mona", "otto"


@pytest.fixture
async def app(monkeypatch: pytest.MonkeyPatch, registry_app: InProcess) -> InProcess:
    """Org acme (owner olivia, member mona) and user otto; argon2 made cheap for tests."""
    monkeypatch.setattr(
        secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    for user in (OWNER, MEMBER, OUTSIDER):
        await registry_app.user(user)
    await registry_app.org(ORG, OWNER, {MEMBER: Role.MEMBER})
    return registry_app


# --- organizations -----------------------------------------------------------------------------


async def test_list_orgs_shows_the_callers_own_and_all_to_a_site_admin(app: InProcess) -> None:
    await app.org("zeta", OUTSIDER)
    status, body = await call(app, "GET", "/orgs", login(OWNER))
    assert status == 200
    [org] = body["items"]
    assert (org["name"], org["role"], body["next"]) == (ORG, "owner", None)
    assert org["created_at"].endswith("Z")
    _, body = await call(app, "GET", "/orgs", login(MEMBER))
    assert [(o["name"], o["role"]) for o in body["items"]] == [(ORG, "member")]
    _, body = await call(app, "GET", "/orgs", login(OUTSIDER))
    assert [o["name"] for o in body["items"]] == ["zeta"]
    _, body = await call(app, "GET", "/orgs", app.admin)
    assert [(o["name"], o["role"]) for o in body["items"]] == [(ORG, None), ("zeta", None)]
    # an organization's token sees its organization
    _, body = await call(app, "GET", "/orgs", await app.token(Scope.READ, org=ORG))
    assert [(o["name"], o["role"]) for o in body["items"]] == [(ORG, "owner")]


async def test_any_user_creates_an_org_and_owns_it(app: InProcess) -> None:
    status, body = await call(app, "POST", "/orgs", login(OUTSIDER), json={"name": "otto-co"})
    assert status == 201
    assert body["name"] == "otto-co"
    assert body["role"] == "owner"
    _, body = await call(app, "GET", "/orgs/otto-co/members", login(OUTSIDER))
    assert body["items"] == [{"user": OUTSIDER, "role": "owner"}]


@pytest.mark.parametrize("taken", [ORG, MEMBER])
async def test_an_org_name_taken_by_a_user_or_org_conflicts(app: InProcess, taken: str) -> None:
    status, body = await call(app, "POST", "/orgs", login(OUTSIDER), json={"name": taken})
    assert status == 409
    code, message = refusal(body)
    assert code == "CONFLICT"
    assert "already taken" in message


async def test_access_tokens_may_not_create_orgs(app: InProcess) -> None:
    for auth in (
        await app.token(Scope.WRITE, user=OUTSIDER),
        await app.token(Scope.DELETE, user=OUTSIDER),
        await app.token(Scope.DELETE, org=ORG),
    ):
        status, body = await call(app, "POST", "/orgs", auth, json={"name": "new-org"})
        assert status == 403
        code, message = refusal(body)
        assert code == "DENIED"
        assert message.startswith("access tokens cannot create organizations: sign in with")
    assert (await call(app, "POST", "/orgs", login(OUTSIDER), json={"name": "new-org"}))[0] == 201


async def test_get_org_for_members_and_site_admins_only(app: InProcess) -> None:
    status, body = await call(app, "GET", f"/orgs/{ORG}", login(MEMBER))
    assert (status, body["name"], body["role"]) == (200, ORG, "member")
    status, body = await call(app, "GET", f"/orgs/{ORG}", app.admin)
    assert (status, body["role"]) == (200, None)
    status, body = await call(app, "GET", f"/orgs/{ORG}", login(OUTSIDER))
    assert status == 403
    assert refusal(body) == ("DENIED", f"only members of {ORG!r} and site admins may see it")
    status, body = await call(app, "GET", "/orgs/nope", app.admin)
    assert (status, refusal(body)[0]) == (404, "NOT_FOUND")
    # a user's own namespace is not an organization
    assert (await call(app, "GET", f"/orgs/{OWNER}", login(OWNER)))[0] == 404
    assert (await call(app, "GET", f"/orgs/{ORG}"))[0] == 401


# --- members -----------------------------------------------------------------------------------


async def test_members_are_listed_to_members(app: InProcess) -> None:
    status, body = await call(app, "GET", f"/orgs/{ORG}/members?limit=1", login(MEMBER))
    assert status == 200
    assert body["items"] == [{"user": MEMBER, "role": "member"}]
    _, rest = await call(app, "GET", f"/orgs/{ORG}/members?cursor={body['next']}", login(MEMBER))
    assert rest == {"items": [{"user": OWNER, "role": "owner"}], "next": None}
    status, body = await call(app, "GET", f"/orgs/{ORG}/members", login(OUTSIDER))
    assert (status, refusal(body)[0]) == (403, "DENIED")


async def test_owners_add_members_and_change_roles(app: InProcess) -> None:
    path = f"/orgs/{ORG}/members/{OUTSIDER}"
    status, body = await call(app, "PUT", path, login(OWNER), json={"role": "member"})
    assert (status, body) == (200, {"user": OUTSIDER, "role": "member"})
    # the new member's rights apply at once
    assert (await call(app, "GET", f"/orgs/{ORG}", login(OUTSIDER)))[0] == 200
    status, body = await call(app, "PUT", path, app.admin, json={"role": "owner"})
    assert (status, body["role"]) == (200, "owner")
    status, body = await call(app, "PUT", path, login(MEMBER), json={"role": "member"})
    assert status == 403
    assert refusal(body) == (
        "DENIED",
        f"only owners of {ORG!r} and site admins may change the members of {ORG!r}",
    )
    status, body = await call(
        app, "PUT", f"/orgs/{ORG}/members/ghost", login(OWNER), json={"role": "member"}
    )
    assert (status, refusal(body)[0]) == (404, "NOT_FOUND")
    status, body = await call(app, "PUT", path, login(OWNER), json={"role": "admin"})
    assert (status, refusal(body)[0]) == (422, "INVALID_REQUEST")


async def test_an_org_keeps_its_last_owner(app: InProcess) -> None:
    owner = f"/orgs/{ORG}/members/{OWNER}"
    status, body = await call(app, "PUT", owner, login(OWNER), json={"role": "member"})
    assert status == 409
    code, message = refusal(body)
    assert code == "CONFLICT"
    assert "last owner" in message
    assert (await call(app, "DELETE", owner, login(OWNER)))[0] == 409
    # with a second owner, the first may step down
    await call(app, "PUT", f"/orgs/{ORG}/members/{MEMBER}", login(OWNER), json={"role": "owner"})
    assert (await call(app, "PUT", owner, login(OWNER), json={"role": "member"}))[0] == 200


async def test_owners_remove_members_and_members_may_leave(app: InProcess) -> None:
    await call(app, "PUT", f"/orgs/{ORG}/members/{OUTSIDER}", app.admin, json={"role": "member"})
    status, body = await call(app, "DELETE", f"/orgs/{ORG}/members/{OUTSIDER}", login(MEMBER))
    assert status == 403
    assert f"may remove members of {ORG!r}" in refusal(body)[1]
    status, body = await call(app, "DELETE", f"/orgs/{ORG}/members/{OUTSIDER}", login(OWNER))
    assert (status, body) == (204, None)
    assert (await call(app, "GET", f"/orgs/{ORG}", login(OUTSIDER)))[0] == 403
    assert (await call(app, "DELETE", f"/orgs/{ORG}/members/{MEMBER}", login(MEMBER)))[0] == 204
    status, body = await call(app, "DELETE", f"/orgs/{ORG}/members/{MEMBER}", login(OWNER))
    assert (status, refusal(body)[0]) == (404, "NOT_FOUND")


# --- users -------------------------------------------------------------------------------------


async def test_site_admins_list_and_create_users(app: InProcess) -> None:
    status, body = await call(app, "GET", "/users", app.admin)
    assert status == 200
    assert [u["name"] for u in body["items"]] == ["admin", MEMBER, OWNER, OUTSIDER]
    assert body["items"][0]["is_admin"] is True
    new = {"name": "nina", "password": "nina-password"}
    status, body = await call(app, "POST", "/users", app.admin, json=new)
    assert status == 201
    assert (body["name"], body["is_admin"]) == ("nina", False)
    # the new user signs in
    assert (await call(app, "GET", "/users/nina", basic("nina", "nina-password")))[0] == 200
    status, body = await call(app, "POST", "/users", app.admin, json=new)
    assert (status, refusal(body)[0]) == (409, "CONFLICT")
    status, body = await call(app, "POST", "/users", app.admin, json={**new, "password": "short"})
    assert status == 422
    assert body["errors"][0]["detail"]["field"] == "body.password"


async def test_only_site_admins_manage_users(app: InProcess) -> None:
    new = {"name": "nina", "password": "nina-password"}
    for auth in (login(OWNER), await app.token(Scope.DELETE, org=ORG)):
        status, body = await call(app, "POST", "/users", auth, json=new)
        assert status == 403
        assert refusal(body)[1].startswith(("only site admins", "access tokens cannot"))
        assert (await call(app, "GET", "/users", auth))[0] == 403
    # a site admin's token, of any scope, may list users but not create them
    for scope in Scope:
        token = await app.token(scope, user="admin")
        status, body = await call(app, "POST", "/users", token, json=new)
        assert (status, refusal(body)[1].split(":")[0]) == (
            403,
            "access tokens cannot create users",
        )
        assert (await call(app, "GET", "/users", token))[0] == 200
    assert (await call(app, "POST", "/users", json=new))[0] == 401


async def test_users_see_themselves_and_site_admins_see_everyone(app: InProcess) -> None:
    assert (await call(app, "GET", f"/users/{OWNER}", login(OWNER)))[0] == 200
    status, body = await call(app, "GET", f"/users/{OWNER}", login(MEMBER))
    assert status == 403
    assert refusal(body)[1] == f"only {OWNER!r} and site admins may see this account"
    assert (await call(app, "GET", f"/users/{OWNER}", app.admin))[0] == 200
    status, body = await call(app, "GET", "/users/ghost", app.admin)
    assert (status, refusal(body)[0]) == (404, "NOT_FOUND")


async def test_users_change_their_own_password_with_the_current_one(app: InProcess) -> None:
    path = f"/users/{OWNER}"
    change = {"password": "a new passphrase", "current_password": "wrong-password"}
    status, body = await call(app, "PATCH", path, login(OWNER), json=change)
    assert (status, refusal(body)) == (
        403,
        ("DENIED", f"that is not the current password of {OWNER!r}"),
    )
    status, body = await call(
        app, "PATCH", path, login(OWNER), json={"password": "a new passphrase"}
    )
    assert (status, body["errors"][0]["detail"]["field"]) == (422, "body.current_password")
    change["current_password"] = f"{OWNER}-password"
    status, body = await call(app, "PATCH", path, login(OWNER), json=change)
    assert (status, body["name"]) == (200, OWNER)
    assert (await call(app, "GET", path, login(OWNER)))[0] == 401
    assert (await call(app, "GET", path, basic(OWNER, "a new passphrase")))[0] == 200


async def test_site_admins_reset_any_password_and_nobody_else_may(app: InProcess) -> None:
    path = f"/users/{MEMBER}"
    reset = {"password": "reset by the admin"}
    refusals = [
        (login(OWNER), f"only {MEMBER!r} and site admins may change the password of {MEMBER!r}"),
        (await app.token(Scope.DELETE, user=MEMBER), "access tokens cannot change the password"),
        (await app.token(Scope.DELETE, user="admin"), "access tokens cannot change the password"),
        (await app.token(Scope.DELETE, org=ORG), "access tokens cannot change the password"),
    ]
    for auth, expected in refusals:
        status, body = await call(app, "PATCH", path, auth, json=reset)
        assert status == 403
        assert refusal(body)[1].startswith(expected)
    assert (await call(app, "GET", path, login(MEMBER)))[0] == 200
    assert (await call(app, "PATCH", path, app.admin, json=reset))[0] == 200
    assert (await call(app, "GET", path, basic(MEMBER, "reset by the admin")))[0] == 200
    assert (await call(app, "GET", path, login(MEMBER)))[0] == 401
    status, body = await call(app, "PATCH", "/users/ghost", app.admin, json=reset)
    assert (status, refusal(body)[0]) == (404, "NOT_FOUND")
    assert (await call(app, "PATCH", path, json=reset))[0] == 401


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "body.password: String should have at least 12 characters"),
        ("qwertyuiop123", "body.password: the password is one of the most common passwords"),
        ("Baseball2024!", "body.password: the password is a common password with digits"),
    ],
)
async def test_weak_passwords_are_refused_on_create_and_change(
    app: InProcess, password: str, reason: str
) -> None:
    for method, path, body in (
        ("POST", "/users", {"name": "nina", "password": password}),
        ("PATCH", f"/users/{OWNER}", {"password": password}),
    ):
        status, answer = await call(app, method, path, app.admin, json=body)
        assert status == 422
        [entry] = answer["errors"]
        assert (entry["code"], entry["detail"]["field"]) == ("INVALID_REQUEST", "body.password")
        assert entry["message"].startswith(reason)
    assert (await call(app, "GET", f"/users/{OWNER}", login(OWNER)))[0] == 200


# --- personal access tokens --------------------------------------------------------------------


async def test_a_personal_token_is_shown_once_and_works(app: InProcess) -> None:
    status, created = await call(
        app, "POST", f"/users/{OWNER}/tokens", login(OWNER), json={"name": "ci", "scope": "read"}
    )
    assert status == 201
    assert (created["name"], created["scope"], created["expires_at"]) == ("ci", "read", None)
    secret = created.pop("secret")
    async with app.client.get("/v2/", headers=basic(OWNER, secret)) as resp:
        assert resp.status == 200
    status, listed = await call(app, "GET", f"/users/{OWNER}/tokens", login(OWNER))
    assert status == 200
    [entry] = listed["items"]
    assert "secret" not in entry
    assert entry["id"] == created["id"]
    assert entry["last_used_at"] is not None  # it was just used


async def test_tokens_may_not_create_tokens(app: InProcess) -> None:
    body = {"name": "more", "scope": "read"}
    refusals = [
        (await app.token(Scope.DELETE, user=OWNER), "access tokens cannot create tokens for"),
        (login(MEMBER), f"only {OWNER!r} may create tokens for"),
        (app.admin, f"only {OWNER!r} may create its tokens; site admins may not"),
    ]
    for auth, expected in refusals:
        status, answer = await call(app, "POST", f"/users/{OWNER}/tokens", auth, json=body)
        assert status == 403
        assert refusal(answer)[1].startswith(expected)


async def test_tokens_expire_when_asked(app: InProcess) -> None:
    body = {"name": "short", "scope": "write", "expires_in_seconds": 3600}
    status, created = await call(app, "POST", f"/users/{OWNER}/tokens", login(OWNER), json=body)
    assert status == 201
    assert created["expires_at"] is not None
    body["expires_in_seconds"] = 5
    status, answer = await call(app, "POST", f"/users/{OWNER}/tokens", login(OWNER), json=body)
    assert status == 422
    assert answer["errors"][0]["detail"]["field"] == "body.expires_in_seconds"


async def test_revoking_a_personal_token(app: InProcess) -> None:
    read = await app.token(Scope.READ, user=OWNER)
    _, listed = await call(app, "GET", f"/users/{OWNER}/tokens", app.admin)
    token_id = listed["items"][0]["id"]
    path = f"/users/{OWNER}/tokens/{token_id}"
    # a read token may not revoke (itself or others); another user may not either
    for auth in (read, login(MEMBER)):
        status, body = await call(app, "DELETE", path, auth)
        assert (status, refusal(body)[0]) == (403, "DENIED")
    assert (await call(app, "DELETE", path, app.admin))[0] == 204
    async with app.client.get("/v2/", headers=read) as resp:
        assert resp.status == 401
    status, body = await call(app, "DELETE", path, login(OWNER))
    assert (status, refusal(body)[0]) == (404, "NOT_FOUND")
    assert (await call(app, "DELETE", f"/users/{OWNER}/tokens/{2**40}", login(OWNER)))[0] == 422


async def test_token_listings_page_by_id(app: InProcess) -> None:
    for _ in range(3):
        await app.token(Scope.READ, user=OWNER)
    _, first = await call(app, "GET", f"/users/{OWNER}/tokens?limit=2", login(OWNER))
    _, rest = await call(app, "GET", f"/users/{OWNER}/tokens?cursor={first['next']}", login(OWNER))
    ids = [t["id"] for t in first["items"] + rest["items"]]
    assert len(ids) == 3
    assert ids == sorted(ids)
    assert rest["next"] is None
    assert (await call(app, "GET", f"/users/{OWNER}/tokens", login(MEMBER)))[0] == 403


# --- organization access tokens ----------------------------------------------------------------


async def test_owners_create_list_and_revoke_org_tokens(app: InProcess) -> None:
    path = f"/orgs/{ORG}/tokens"
    status, created = await call(
        app, "POST", path, login(OWNER), json={"name": "ci", "scope": "read"}
    )
    assert status == 201
    async with app.client.get("/v2/", headers=basic(ORG, created["secret"])) as resp:
        assert resp.status == 200
    status, listed = await call(app, "GET", path, login(OWNER))
    assert (status, [t["id"] for t in listed["items"]]) == (200, [created["id"]])
    assert "secret" not in listed["items"][0]
    for auth in (login(MEMBER), login(OUTSIDER)):
        status, body = await call(app, "GET", path, auth)
        assert status == 403
        assert refusal(body)[1] == (
            f"only owners of {ORG!r} and site admins may list the tokens of {ORG!r}"
        )
        assert (await call(app, "POST", path, auth, json={"name": "x", "scope": "read"}))[0] == 403
        assert (await call(app, "DELETE", f"{path}/{created['id']}", auth))[0] == 403
    # the org's own token may not mint another
    org_token = basic(ORG, created["secret"])
    assert (await call(app, "POST", path, org_token, json={"name": "x", "scope": "read"}))[0] == 403
    assert (await call(app, "DELETE", f"{path}/{created['id']}", login(OWNER)))[0] == 204
    async with app.client.get("/v2/", headers=org_token) as resp:
        assert resp.status == 401
    # a personal token's id is not the organization's to revoke
    await app.token(Scope.READ, user=OWNER)
    _, mine = await call(app, "GET", f"/users/{OWNER}/tokens", login(OWNER))
    assert (await call(app, "DELETE", f"{path}/{mine['items'][0]['id']}", login(OWNER)))[0] == 404
    status, body = await call(app, "GET", "/orgs/nope/tokens", app.admin)
    assert (status, refusal(body)[0]) == (404, "NOT_FOUND")


async def test_wrong_current_passwords_are_throttled_like_sign_ins(app: InProcess) -> None:
    """A guess at the current password is a sign-in guess: past the throttle's limit for the
    account and address, 429 before argon2 runs (the owner's own Basic login is not a guess)."""
    path = f"/users/{OWNER}"
    change = {"password": "a new passphrase", "current_password": "wrong-password"}
    statuses = [(await call(app, "PATCH", path, login(OWNER), json=change))[0] for _ in range(7)]
    assert statuses[0] == 403
    assert statuses[-1] == 429


async def test_wrong_access_tokens_never_lock_out_the_valid_ones_of_their_address(
    app: InProcess,
) -> None:
    """Tokens cannot be guessed: a stale one retried from an address (a CI fleet behind one
    NAT, every client behind a proxy) must not throttle the other tokens used from there."""
    accounts = app.state.accounts
    assert accounts.throttle is not None
    valid = await accounts.create_token("ci", Scope.READ, user=OWNER)
    stale = secrets.new_token()
    for _ in range(40):
        assert await accounts.authenticate(OWNER, stale, "192.0.2.7") is None
    subject = await accounts.authenticate(OWNER, valid, "192.0.2.7")
    assert subject is not None
    assert subject.name == OWNER
