"""Finding, creating and configuring repositories; deciding access to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.auth.policy import Action, Subject, Target, allows, may_manage
from dockyard.metadata import accounts as account_rows
from dockyard.metadata import repositories as rows
from dockyard.metadata.db import Database
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.errors import Denied, NameUnknown, Unauthorized
from dockyard.oci.names import namespace_of, validate_name
from dockyard.registry.cache import ReadCache, store_cache
from dockyard.registry.context import Store

CATALOG_MAX = 1000


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    next_last: str | None  # the `last` of the next page, None when this is the last page


def target(name: str, repository: RepositoryRow | None) -> Target:
    return Target(name, namespace_of(name), repository is not None and repository.is_public)


async def create_in(db: Database, conn: AsyncConnection, name: str) -> RepositoryRow:
    """The repository `name`, created private in the caller's transaction if it is new."""
    existing = await rows.by_name(conn, name)
    if existing is not None:
        return existing
    namespace = namespace_of(name)
    namespace_row = await account_rows.namespace_by_name(conn, namespace) if namespace else None
    return await rows.create(db, conn, name, namespace_row.id if namespace_row else None)


class Repositories:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: ReadCache[RepositoryRow] = store_cache(store)

    def forget_cached(self) -> None:
        self._cache.invalidate()

    async def get(self, name: str) -> RepositoryRow | None:
        async def load() -> RepositoryRow | None:
            async with self.store.db.read() as conn:
                return await rows.by_name(conn, name)

        return await self._cache.fetch(name, load)

    async def authorize(self, subject: Subject, name: str, action: Action) -> RepositoryRow | None:
        """The repository if `subject` may do `action` on it (None: it does not exist yet).

        Refusals do not reveal whether a repository exists: anonymous callers get
        `Unauthorized` (log in), signed-in callers `Denied`.
        """
        validate_name(name)
        repository = await self.get(name)
        if allows(subject, target(name, repository), action):
            return repository
        verb = {Action.PULL: "pull from", Action.PUSH: "push to", Action.DELETE: "delete from"}[
            action
        ]
        if subject.is_anonymous:
            raise Unauthorized(f"authentication required to {verb} repository {name!r}")
        raise Denied(f"{subject.name!r} may not {verb} repository {name!r}")

    async def require(self, subject: Subject, name: str, action: Action) -> RepositoryRow:
        """As `authorize`, but the repository must exist (`NameUnknown` otherwise)."""
        repository = await self.authorize(subject, name, action)
        if repository is None:
            raise NameUnknown(f"repository {name!r} is not known to this registry")
        return repository

    async def ensure(self, subject: Subject, name: str) -> RepositoryRow:
        """The repository for a push, created private on first push."""
        repository = await self.authorize(subject, name, Action.PUSH)
        if repository is not None:
            return repository
        async with self.store.db.write() as conn:
            return await create_in(self.store.db, conn, name)

    async def configure(
        self,
        subject: Subject,
        name: str,
        visibility: str | None = None,
        immutable_tags: bool | None = None,
        sparse_indexes: str | None = None,
    ) -> RepositoryRow:
        """Change a repository's settings (owners and site admins only); None leaves one as
        it is. `sparse_indexes` is on (an index may name manifests the repository lacks), off,
        or site (the site's `index_platforms` decides)."""
        if not may_manage(subject, namespace_of(name)):
            raise Denied(f"only owners of {namespace_of(name)!r} may change repository settings")
        if visibility not in (None, "public", "private"):
            raise ValueError(f"visibility must be public or private, not {visibility!r}")
        if sparse_indexes is not None and sparse_indexes not in rows.SPARSE_INDEXES:
            raise ValueError(f"sparse indexes must be on, off or site, not {sparse_indexes!r}")
        async with self.store.db.write() as conn:
            repository = await rows.by_name(conn, name)
            if repository is None:
                raise NameUnknown(f"repository {name!r} is not known to this registry")
            await rows.update_settings(
                conn, repository.id, visibility, immutable_tags, sparse_indexes
            )
            updated = await rows.by_name(conn, name)
        self._cache.invalidate()  # after the commit, so no reader re-caches the old settings
        assert updated is not None
        return updated

    async def catalog(self, subject: Subject, n: int | None, last: str | None) -> Page:
        """Repository names the subject may pull, in order, at most `n` (capped)."""
        limit = CATALOG_MAX if n is None else max(0, min(n, CATALOG_MAX))
        return await self._page(
            lambda r: allows(subject, target(r.name, r), Action.PULL), limit, last
        )

    async def _page(
        self, visible: Callable[[RepositoryRow], bool], limit: int, last: str | None
    ) -> Page:
        found: list[str] = []
        cursor = last
        while len(found) <= limit:
            async with self.store.db.read() as conn:
                batch = await rows.names_after(conn, cursor, 500)
            if not batch:
                break
            for repository in batch:
                if visible(repository):
                    found.append(repository.name)
            cursor = batch[-1].name
        if len(found) > limit:
            return Page(found[:limit], found[limit - 1] if limit else None)
        return Page(found, None)

    async def visible(
        self, subject: Subject, after: str | None, limit: int, namespace: str | None = None
    ) -> tuple[list[RepositoryRow], bool]:
        """Repositories the subject may pull, in name order after `after`, at most `limit`.

        Also says whether more follow. `namespace` keeps only the repositories under it.
        """
        found: list[RepositoryRow] = []
        cursor = after
        while len(found) <= limit:
            async with self.store.db.read() as conn:
                if namespace is None:
                    batch = await rows.names_after(conn, cursor, 500)
                else:
                    batch = await rows.names_after_in(conn, namespace, cursor, 500)
            if not batch:
                break
            found.extend(r for r in batch if allows(subject, target(r.name, r), Action.PULL))
            cursor = batch[-1].name
        return found[:limit], len(found) > limit

    async def delete(self, subject: Subject, name: str) -> None:
        """Delete a repository and everything in it (its namespace's owners and site admins).

        The caller must be allowed to delete from it and to manage its namespace; the bytes of
        blobs nothing else links go with the next garbage collection.
        """
        repository = await self.require(subject, name, Action.DELETE)
        namespace = namespace_of(name)
        if not may_manage(subject, namespace):
            who = f"owners of {namespace!r} and site admins" if namespace else "site admins"
            raise Denied(f"only {who} may delete repository {name!r}")
        async with self.store.db.write() as conn:
            # a manifest push or link pruning in flight holds this lock; wait for it
            await rows.lock(conn, repository.id)
            await rows.delete_repository(conn, repository.id)
        self._cache.invalidate()
