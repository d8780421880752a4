"""Users, organizations, memberships and tokens; turning credentials into a `Subject`."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.auth import secrets
from dockyard.auth.passwords import weakness
from dockyard.auth.policy import Role, Scope, Subject
from dockyard.auth.throttle import LoginThrottle
from dockyard.metadata import accounts as rows
from dockyard.metadata.db import Database
from dockyard.metadata.tables import tokens
from dockyard.oci.errors import NameInvalid, Unauthorized
from dockyard.oci.names import validate_name
from dockyard.storage.generation import Generation

ADMIN = "admin"
_Verdict = TypeVar("_Verdict", Subject | None, bool)


class AccountError(ValueError):
    """An account operation that cannot be done as asked (the message says why)."""


class AccountNotFound(AccountError):
    """The user, organization, membership or token named does not exist."""


class AccountConflict(AccountError):
    """The change contradicts what exists: a name taken, an organization left without owner."""


class WeakPassword(AccountError):
    """A new password that `auth/passwords.py` refuses (the message says why)."""


class WrongPassword(AccountError):
    """The current password given to confirm a change is not the user's password."""


@dataclass
class _Cached:
    subject: Subject
    expires: float
    stamp: int  # the generation read before the subject was loaded


class Accounts:
    """Account operations over the metadata database.

    Verified Basic credentials are cached for `cache_ttl` seconds under a hash of the pair, so a
    client sending Basic credentials on every request pays for argon2 once, not per request.
    Credentials that must be checked first pass `throttle` (failed sign-ins, per address and
    account), when given one.
    """

    def __init__(
        self,
        db: Database,
        generation: Generation,
        cache_ttl: float = 60.0,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.db = db
        self.cache_ttl = cache_ttl
        self.throttle = throttle
        self._dummy_hash: str | None = None  # what an unknown user's password is checked against
        # account changes made by any worker of this host void every worker's cache at once
        self.generation = generation
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Future[tuple[Subject | None, int]]] = {}
        # argon2 takes ~64 MiB and ~0.1 s a check: two at a time, away from the I/O threads
        self._argon2 = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")

    async def bootstrap_admin(self, password: str | None) -> str | None:
        """Create the site admin on first start; return its password when one was created."""
        async with self.db.write() as conn:
            if await rows.user_by_name(conn, ADMIN) is not None:
                return None
            chosen = password or secrets.new_password()
            await rows.create_user(conn, ADMIN, secrets.hash_password(chosen), is_admin=True)
        return chosen

    async def _hash(self, password: str) -> str:
        """argon2 on its own threads, before any transaction: it takes ~0.1 s of CPU, which
        would stall the event loop and hold SQLite's write lock."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._argon2, secrets.hash_password, password)

    async def create_user(self, name: str, password: str, is_admin: bool = False) -> None:
        """A new user; `WeakPassword` when the password is too short or too common."""
        _check_namespace_name(name)
        _check_password(password, name)
        hashed = await self._hash(password)
        async with self.db.write() as conn:
            if await rows.namespace_by_name(conn, name) is not None:
                raise AccountConflict(
                    f"the name {name!r} is already taken by a user or organization"
                )
            await rows.create_user(conn, name, hashed, is_admin)

    async def password_stamp(self, name: str) -> str | None:
        """A short digest of `name`'s password hash: it changes whenever the password does, so
        a refresh token carrying it dies with the password. None when there is no such user."""
        async with self.db.read() as conn:
            user = await rows.user_by_name(conn, name)
        if user is None:
            return None
        return hashlib.sha256(user.password_hash.encode()).hexdigest()[:24]

    async def set_password(
        self, name: str, password: str, current: str | None = None, address: str | None = None
    ) -> None:
        """Give `name` a new password, after checking `current` when it is given.

        Everything the old password earned stops at once on every worker of this host: the
        cached Basic logins (the shared stamp moves) and the refresh tokens (`password_stamp`).
        `WrongPassword` when `current` is wrong, `WeakPassword` when the new one is refused;
        a `current` sent from `address` is a sign-in guess like any other (`LoginThrottled`).
        """
        _check_password(password, name)
        confirmed = None
        if current is not None:
            if self.throttle is not None and address is not None:
                await self.throttle.admit(name, address, time.time())  # or LoginThrottled
            async with self.db.read() as conn:
                confirmed = (await _user(conn, name)).password_hash
            verify = secrets.verify_password(confirmed, current, self._argon2)
            if self.throttle is not None and address is not None:
                verify = self._throttled(verify, name, address)
            if not await verify:
                raise WrongPassword(f"that is not the current password of {name!r}")
        hashed = await self._hash(password)
        async with self.db.write() as conn:
            user = await _user(conn, name)
            if confirmed is not None and user.password_hash != confirmed:
                # two changes confirmed with the same old password: only the first may win
                raise WrongPassword(f"the password of {name!r} changed meanwhile: try again")
            await rows.set_password(conn, user.id, hashed)
        self._changed()

    async def create_org(self, name: str, owner: str) -> None:
        _check_namespace_name(name)
        async with self.db.write() as conn:
            if await rows.namespace_by_name(conn, name) is not None:
                raise AccountConflict(
                    f"the name {name!r} is already taken by a user or organization"
                )
            user = await _user(conn, owner)
            namespace_id = await rows.create_namespace(conn, name, "org")
            await rows.set_membership(conn, namespace_id, user.id, Role.OWNER)
        self._changed()

    async def add_member(self, org: str, user_name: str, role: Role) -> None:
        async with self.db.write() as conn:
            namespace = await rows.namespace_by_name(conn, org)
            if namespace is None or namespace.kind != "org":
                raise AccountNotFound(f"no organization named {org!r}")
            user = await _user(conn, user_name)
            await rows.set_membership(conn, namespace.id, user.id, role)
        self._changed()

    async def create_token(
        self,
        name: str,
        scope: Scope,
        user: str | None = None,
        org: str | None = None,
        expires_in: float | None = None,
    ) -> str:
        """A new personal (`user`) or organization (`org`) access token, returned once."""
        return (await self.issue_token(name, scope, user, org, expires_in))[1]

    async def issue_token(
        self,
        name: str,
        scope: Scope,
        user: str | None = None,
        org: str | None = None,
        expires_in: float | None = None,
    ) -> tuple[rows.TokenInfo, str]:
        """A new access token of `user` or `org`: its record, and its secret (shown once)."""
        token = secrets.new_token()
        expires_at = time.time() + expires_in if expires_in else None
        async with self.db.write() as conn:
            user_id, namespace_id = await _token_owner(conn, user, org)
            token_id = await rows.create_token(
                conn, secrets.token_hash(token), name, scope, user_id, namespace_id, expires_at
            )
            info = await rows.token_info(conn, token_id)
        assert info is not None
        return info, token

    async def tokens(
        self, after: int | None, limit: int, user: str | None = None, org: str | None = None
    ) -> list[rows.TokenInfo]:
        """The access tokens of `user` or `org` in id order after `after` (never the secrets)."""
        async with self.db.read() as conn:
            user_id, namespace_id = await _token_owner(conn, user, org)
            return await rows.tokens_after(conn, after, limit, user_id, namespace_id)

    async def revoke_token(
        self, token_id: int, user: str | None = None, org: str | None = None
    ) -> None:
        """Delete an access token of `user` or `org`; it stops working at once on this node."""
        async with self.db.write() as conn:
            user_id, namespace_id = await _token_owner(conn, user, org)
            if not await rows.delete_token(conn, token_id, user_id, namespace_id):
                raise AccountNotFound(f"{user or org!r} has no access token {token_id}")
        self._changed()

    async def users(self, after: str | None, limit: int) -> list[rows.UserInfo]:
        """Users in name order after `after`."""
        async with self.db.read() as conn:
            return await rows.users_after(conn, after, limit)

    async def user(self, name: str) -> rows.UserInfo:
        async with self.db.read() as conn:
            found = await rows.user_info(conn, name)
        if found is None:
            raise AccountNotFound(f"no user named {name!r}")
        return found

    async def orgs(
        self, after: str | None, limit: int, member: str | None = None
    ) -> list[rows.OrgInfo]:
        """Organizations in name order after `after`; with `member`, only those they are in."""
        async with self.db.read() as conn:
            member_id = None if member is None else (await _user(conn, member)).id
            return await rows.orgs_after(conn, after, limit, member_id)

    async def org(self, name: str) -> rows.OrgInfo:
        async with self.db.read() as conn:
            return await _org(conn, name)

    async def members(self, org: str, after: str | None, limit: int) -> list[rows.MemberInfo]:
        """An organization's members in name order after `after`."""
        async with self.db.read() as conn:
            return await rows.members_after(conn, (await _org(conn, org)).id, after, limit)

    async def set_role(self, org: str, user_name: str, role: Role) -> None:
        """Add a user to an organization or change their role; the last owner stays owner."""
        async with self.db.write() as conn:
            namespace = await _org(conn, org)
            user = await _user(conn, user_name)
            await self.db.lock(conn, f"org:{namespace.id}")
            if role != Role.OWNER:
                await _keep_an_owner(conn, namespace, user)
            await rows.set_membership(conn, namespace.id, user.id, role)
        self._changed()

    async def remove_member(self, org: str, user_name: str) -> None:
        """Take a user out of an organization; the last owner cannot leave."""
        async with self.db.write() as conn:
            namespace = await _org(conn, org)
            user = await _user(conn, user_name)
            await self.db.lock(conn, f"org:{namespace.id}")
            await _keep_an_owner(conn, namespace, user)
            if not await rows.remove_membership(conn, namespace.id, user.id):
                raise AccountNotFound(f"{user_name!r} is not a member of {org!r}")
        self._changed()

    async def authenticate(
        self, username: str, secret: str, address: str | None = None
    ) -> Subject | None:
        """The subject for Basic credentials (a password or an access token), None if wrong.

        Passwords sent from `address` pass the throttle first, which raises `LoginThrottled`
        after too many failures (cached ones included); those not cached take a token from it.
        Access tokens are not throttled: they cannot be guessed and cost a hash lookup, not
        argon2, and counting them would let a stale token (or a stranger behind the same
        address) lock out every other token's client there.
        """
        throttle = None if secrets.is_token(secret) or address is None else self.throttle
        if throttle is not None and address is not None:
            await throttle.check(username, address, time.time())  # or LoginThrottled
        key = hashlib.sha256(f"{username}\0{secret}".encode()).hexdigest()
        # a password checked from one address vouches for that address only: from any other,
        # the same credentials pass the throttle afresh, so a guesser elsewhere never meets a
        # cached answer (nor a check's view of the buckets that may lag on another node)
        shared = key if throttle is None else f"{key}\0{address}"
        now = time.monotonic()
        cached = self._cached(shared, now)
        if cached is not None:
            return cached
        # concurrent requests with the same credentials (from the same address, when the
        # throttle may refuse that address) share one check and one guess
        pending = self._inflight.get(shared)
        if pending is None:
            if throttle is not None and address is not None:
                check = self._admitted(username, secret, address)  # or LoginThrottled
            else:
                check = self._check(username, secret)
            # no await between the lookup and this: the requests that find it share it
            pending = asyncio.ensure_future(self._stamped(check))
            self._inflight[shared] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(shared, None))
        subject, stamp = await asyncio.shield(pending)
        if subject is not None:
            self._remember(shared, subject, now, stamp)
        return subject

    async def _stamped(
        self, check: Coroutine[Any, Any, Subject | None]
    ) -> tuple[Subject | None, int]:
        stamp = self.generation.current()
        return await check, stamp

    async def _admitted(self, username: str, secret: str, address: str) -> Subject | None:
        """Check a password once the throttle admits the attempt (or raise LoginThrottled)."""
        assert self.throttle is not None
        await self.throttle.admit(username, address, time.time())
        return await self._throttled(self._check(username, secret), username, address)

    async def _throttled(
        self, check: Coroutine[Any, Any, _Verdict], username: str | None, address: str
    ) -> _Verdict:
        """Run `check` (a sign-in's, or a password's) in `address`'s turn; a success (a
        subject, or True) gives the throttle's tokens back."""
        assert self.throttle is not None
        async with self.throttle.turn(address):
            verdict = await check
        if verdict:
            await self.throttle.succeeded(username, address, time.time())
        return verdict

    async def _check(self, username: str, secret: str) -> Subject | None:
        if secrets.is_token(secret):
            return await self._by_token(username, secret)
        return await self._by_password(username, secret)

    async def subject(
        self,
        name: str,
        scope: Scope | None = None,
        org: str | None = None,
        token_id: int | None = None,
    ) -> Subject:
        """The current subject behind a verified bearer or refresh token (cached briefly).

        A subject that signed in with an access token exists only while that token does.
        """
        key = f"subject\0{name}\0{scope or ''}\0{org or ''}\0{token_id or ''}"
        now = time.monotonic()
        cached = self._cached(key, now)
        if cached is not None:
            return cached
        stamp = self.generation.current()
        async with self.db.read() as conn:
            token = await rows.token_by_id(conn, token_id) if token_id is not None else None
            if token_id is not None and not _usable(token):
                raise Unauthorized(
                    "the access token behind this bearer token expired or was revoked"
                )
            if org is not None:
                subject = _org_subject(org, scope, token)
            else:
                user = await rows.user_by_name(conn, name)
                if user is None:
                    raise Unauthorized(f"the account {name!r} no longer exists")
                subject = await _user_subject(conn, user, scope, token)
        self._remember(key, subject, now, stamp)
        return subject

    def _changed(self) -> None:
        """After a committed account change: void this host's cached subjects."""
        self._cache.clear()
        self.generation.bump()

    def _cached(self, key: str, now: float) -> Subject | None:
        cached = self._cache.get(key)
        if cached is None:
            return None
        if cached.expires <= now or cached.stamp != self.generation.current():
            del self._cache[key]
            return None
        return cached.subject

    def _remember(self, key: str, subject: Subject, now: float, stamp: int) -> None:
        """Cache a subject for the TTL, or until its access token expires if that is sooner."""
        if len(self._cache) > 10_000:
            self._cache.clear()
        ttl = self.cache_ttl
        if subject.token_expires_at is not None:
            ttl = min(ttl, subject.token_expires_at - time.time())
        if ttl > 0:
            self._cache[key] = _Cached(subject, now + ttl, stamp)

    async def _by_password(self, username: str, password: str) -> Subject | None:
        async with self.db.read() as conn:
            user = await rows.user_by_name(conn, username)
        # an unknown user costs an argon2 check too, or the time taken would tell which exist
        hashed = user.password_hash if user is not None else await self._unknown_user_hash()
        if not await secrets.verify_password(hashed, password, self._argon2) or user is None:
            return None
        async with self.db.read() as conn:
            return await _user_subject(conn, user, None, None)

    async def _unknown_user_hash(self) -> str:
        """A hash of a password nobody knows, made with the parameters of every new hash."""
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.new_password())
        return self._dummy_hash

    async def _by_token(self, username: str, secret: str) -> Subject | None:
        async with self.db.write() as conn:
            token = await rows.token_by_hash(conn, secrets.token_hash(secret))
            if token is None or not _usable(token):
                return None
            await conn.execute(
                update(tokens).where(tokens.c.id == token.id).values(last_used_at=time.time())
            )
            scope = Scope(token.scope)
            if token.namespace_id is not None:
                org = await rows.namespace_by_id(conn, token.namespace_id)
                if org is None or username not in (org.name, ""):
                    return None
                return _org_subject(org.name, scope, token)
            user = await rows.user_by_id(conn, token.user_id or -1)
            if user is None or username not in (user.name, ""):
                return None
            return await _user_subject(conn, user, scope, token)


def _usable(token: rows.TokenRow | None) -> bool:
    return token is not None and (token.expires_at is None or token.expires_at > time.time())


async def _user(conn: AsyncConnection, name: str) -> rows.UserRow:
    user = await rows.user_by_name(conn, name)
    if user is None:
        raise AccountNotFound(f"no user named {name!r}")
    return user


async def _org(conn: AsyncConnection, name: str) -> rows.OrgInfo:
    org = await rows.org_info(conn, name)
    if org is None:
        raise AccountNotFound(f"no organization named {name!r}")
    return org


async def _token_owner(
    conn: AsyncConnection, user: str | None, org: str | None
) -> tuple[int | None, int | None]:
    """(user id, organization namespace id) of a token's owner: exactly one is set."""
    if (user is None) == (org is None):
        raise AccountError("a token belongs to exactly one user or one organization")
    if user is not None:
        return (await _user(conn, user)).id, None
    return None, (await _org(conn, org or "")).id


async def _keep_an_owner(conn: AsyncConnection, org: rows.OrgInfo, user: rows.UserRow) -> None:
    if await rows.owner_ids(conn, org.id) == [user.id]:
        raise AccountConflict(
            f"{user.name!r} is the last owner of {org.name!r}: make someone else owner first"
        )


async def _user_subject(
    conn: AsyncConnection, user: rows.UserRow, scope: Scope | None, token: rows.TokenRow | None
) -> Subject:
    roles = {ns: Role(role) for ns, role in (await rows.roles_of(conn, user.id)).items()}
    roles[user.name] = Role.OWNER
    return Subject(
        name=user.name,
        user_id=user.id,
        is_admin=user.is_admin,
        roles=roles,
        scope=scope,
        token_id=token.id if token else None,
        token_expires_at=token.expires_at if token else None,
    )


def _org_subject(org: str, scope: Scope | None, token: rows.TokenRow | None) -> Subject:
    return Subject(
        name=org,
        roles={org: Role.OWNER},
        scope=scope,
        org=org,
        token_id=token.id if token else None,
        token_expires_at=token.expires_at if token else None,
    )


def _check_password(password: str, name: str) -> None:
    reason = weakness(password, name)
    if reason is not None:
        raise WeakPassword(reason)


def _check_namespace_name(name: str) -> None:
    try:
        validate_name(name)
    except NameInvalid as exc:
        raise AccountError(exc.message) from exc
    if "/" in name:
        raise AccountError(f"{name!r}: user and organization names are one path component")
