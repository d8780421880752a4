"""Users, namespaces (one per user, one per organization), memberships and access tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.tables import memberships, namespaces, tokens, users


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    password_hash: str
    is_admin: bool
    namespace_id: int


@dataclass(frozen=True, slots=True)
class NamespaceRow:
    id: int
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: int
    name: str
    user_id: int | None
    namespace_id: int | None
    scope: str
    expires_at: float | None


async def create_namespace(conn: AsyncConnection, name: str, kind: str) -> int:
    result = await conn.execute(
        insert(namespaces).values(name=name, kind=kind, created_at=time.time())
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def namespace_by_name(conn: AsyncConnection, name: str) -> NamespaceRow | None:
    row = (
        await conn.execute(
            select(namespaces.c.id, namespaces.c.name, namespaces.c.kind).where(
                namespaces.c.name == name
            )
        )
    ).first()
    return NamespaceRow(row.id, row.name, row.kind) if row else None


async def create_user(
    conn: AsyncConnection, name: str, password_hash: str, is_admin: bool = False
) -> int:
    namespace_id = await create_namespace(conn, name, "user")
    result = await conn.execute(
        insert(users).values(
            name=name,
            password_hash=password_hash,
            is_admin=is_admin,
            namespace_id=namespace_id,
            created_at=time.time(),
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def _user(row: Any) -> UserRow:
    return UserRow(row.id, row.name, row.password_hash, bool(row.is_admin), row.namespace_id)


async def user_by_name(conn: AsyncConnection, name: str) -> UserRow | None:
    row = (await conn.execute(select(users).where(users.c.name == name))).first()
    return _user(row) if row else None


async def user_by_id(conn: AsyncConnection, user_id: int) -> UserRow | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def set_password(conn: AsyncConnection, user_id: int, password_hash: str) -> None:
    await conn.execute(
        update(users).where(users.c.id == user_id).values(password_hash=password_hash)
    )


async def count_users(conn: AsyncConnection) -> int:
    return len((await conn.execute(select(users.c.id))).all())


async def set_membership(conn: AsyncConnection, namespace_id: int, user_id: int, role: str) -> None:
    await conn.execute(
        delete(memberships).where(
            and_(memberships.c.namespace_id == namespace_id, memberships.c.user_id == user_id)
        )
    )
    await conn.execute(
        insert(memberships).values(namespace_id=namespace_id, user_id=user_id, role=role)
    )


async def roles_of(conn: AsyncConnection, user_id: int) -> dict[str, str]:
    """Namespace name → role for every organization the user belongs to."""
    rows = await conn.execute(
        select(namespaces.c.name, memberships.c.role)
        .join(memberships, memberships.c.namespace_id == namespaces.c.id)
        .where(memberships.c.user_id == user_id)
    )
    return {row.name: row.role for row in rows}


async def create_token(
    conn: AsyncConnection,
    token_hash: str,
    name: str,
    scope: str,
    user_id: int | None,
    namespace_id: int | None,
    expires_at: float | None,
) -> int:
    result = await conn.execute(
        insert(tokens).values(
            token_hash=token_hash,
            name=name,
            scope=scope,
            user_id=user_id,
            namespace_id=namespace_id,
            expires_at=expires_at,
            created_at=time.time(),
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def token_by_hash(conn: AsyncConnection, token_hash: str) -> TokenRow | None:
    row = (await conn.execute(select(tokens).where(tokens.c.token_hash == token_hash))).first()
    if row is None:
        return None
    return TokenRow(row.id, row.name, row.user_id, row.namespace_id, row.scope, row.expires_at)


async def namespace_by_id(conn: AsyncConnection, namespace_id: int) -> NamespaceRow | None:
    row = (await conn.execute(select(namespaces).where(namespaces.c.id == namespace_id))).first()
    return NamespaceRow(row.id, row.name, row.kind) if row else None


async def token_by_id(conn: AsyncConnection, token_id: int) -> TokenRow | None:
    row = (await conn.execute(select(tokens).where(tokens.c.id == token_id))).first()
    if row is None:
        return None
    return TokenRow(row.id, row.name, row.user_id, row.namespace_id, row.scope, row.expires_at)


# Listings for the management API: pages in key order, one row past the page to tell whether
# another follows. -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    is_admin: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class OrgInfo:
    id: int
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class MemberInfo:
    user: str
    role: str


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    scope: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None


_USER_INFO = (users.c.name, users.c.is_admin, users.c.created_at)
_ORG_INFO = (namespaces.c.id, namespaces.c.name, namespaces.c.created_at)
_TOKEN_INFO = (
    tokens.c.id,
    tokens.c.name,
    tokens.c.scope,
    tokens.c.created_at,
    tokens.c.expires_at,
    tokens.c.last_used_at,
)


def _user_info(row: Any) -> UserInfo:
    return UserInfo(row.name, bool(row.is_admin), row.created_at)


def _token_info(row: Any) -> TokenInfo:
    return TokenInfo(*row)


async def user_info(conn: AsyncConnection, name: str) -> UserInfo | None:
    row = (await conn.execute(select(*_USER_INFO).where(users.c.name == name))).first()
    return _user_info(row) if row else None


async def users_after(conn: AsyncConnection, after: str | None, limit: int) -> list[UserInfo]:
    """Users in name order after `after`."""
    query = select(*_USER_INFO).order_by(users.c.name).limit(limit)
    if after is not None:
        query = query.where(users.c.name > after)
    return [_user_info(row) for row in await conn.execute(query)]


async def org_info(conn: AsyncConnection, name: str) -> OrgInfo | None:
    query = select(*_ORG_INFO).where(and_(namespaces.c.name == name, namespaces.c.kind == "org"))
    row = (await conn.execute(query)).first()
    return OrgInfo(*row) if row else None


async def orgs_after(
    conn: AsyncConnection, after: str | None, limit: int, member_id: int | None = None
) -> list[OrgInfo]:
    """Organizations in name order after `after`; only those `member_id` belongs to if given."""
    query = (
        select(*_ORG_INFO)
        .where(namespaces.c.kind == "org")
        .order_by(namespaces.c.name)
        .limit(limit)
    )
    if member_id is not None:
        query = query.join(memberships, memberships.c.namespace_id == namespaces.c.id).where(
            memberships.c.user_id == member_id
        )
    if after is not None:
        query = query.where(namespaces.c.name > after)
    return [OrgInfo(*row) for row in await conn.execute(query)]


async def members_after(
    conn: AsyncConnection, namespace_id: int, after: str | None, limit: int
) -> list[MemberInfo]:
    """An organization's members in user name order after `after`."""
    query = (
        select(users.c.name, memberships.c.role)
        .join(memberships, memberships.c.user_id == users.c.id)
        .where(memberships.c.namespace_id == namespace_id)
        .order_by(users.c.name)
        .limit(limit)
    )
    if after is not None:
        query = query.where(users.c.name > after)
    return [MemberInfo(row.name, row.role) for row in await conn.execute(query)]


async def role_in(conn: AsyncConnection, namespace_id: int, user_id: int) -> str | None:
    query = select(memberships.c.role).where(
        and_(memberships.c.namespace_id == namespace_id, memberships.c.user_id == user_id)
    )
    return (await conn.execute(query)).scalar()


async def owner_ids(conn: AsyncConnection, namespace_id: int) -> list[int]:
    query = select(memberships.c.user_id).where(
        and_(memberships.c.namespace_id == namespace_id, memberships.c.role == "owner")
    )
    return list((await conn.execute(query)).scalars())


async def remove_membership(conn: AsyncConnection, namespace_id: int, user_id: int) -> bool:
    result = await conn.execute(
        delete(memberships).where(
            and_(memberships.c.namespace_id == namespace_id, memberships.c.user_id == user_id)
        )
    )
    return result.rowcount > 0


def _owned_by(user_id: int | None, namespace_id: int | None) -> Any:
    if user_id is not None:
        return tokens.c.user_id == user_id
    return tokens.c.namespace_id == namespace_id


async def token_info(conn: AsyncConnection, token_id: int) -> TokenInfo | None:
    row = (await conn.execute(select(*_TOKEN_INFO).where(tokens.c.id == token_id))).first()
    return _token_info(row) if row else None


async def tokens_after(
    conn: AsyncConnection,
    after: int | None,
    limit: int,
    user_id: int | None = None,
    namespace_id: int | None = None,
) -> list[TokenInfo]:
    """A user's (or an organization's) access tokens in id order after `after`."""
    query = (
        select(*_TOKEN_INFO)
        .where(_owned_by(user_id, namespace_id))
        .order_by(tokens.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(tokens.c.id > after)
    return [_token_info(row) for row in await conn.execute(query)]


async def delete_token(
    conn: AsyncConnection,
    token_id: int,
    user_id: int | None = None,
    namespace_id: int | None = None,
) -> bool:
    """Delete a token if it belongs to the user (or organization) given."""
    result = await conn.execute(
        delete(tokens).where(and_(tokens.c.id == token_id, _owned_by(user_id, namespace_id)))
    )
    return result.rowcount > 0
