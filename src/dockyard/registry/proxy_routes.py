"""Which repositories the pull-through cache serves, from which upstream, and who may use them.

A proxy with a `namespace` owns every repository under that prefix: `hub/library/nginx` is
`library/nginx` upstream. The proxy without one (the Docker daemon's `registry-mirrors` entry)
serves every repository that is not local: one that does not exist yet, outside the namespaces
of local users and organizations, or one it created itself. A push creates a local repository
as usual; a push to a repository the cache owns is refused, as distribution's proxy mode does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.auth.policy import Action, Resource, Subject, allows
from dockyard.client.settings import normalize_registry
from dockyard.config import ProxyUpstream
from dockyard.metadata import accounts as account_rows
from dockyard.metadata import proxy as proxy_rows
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.errors import Denied, OciError
from dockyard.oci.names import namespace_of, validate_name
from dockyard.oci.reference import Reference
from dockyard.registry.cache import ReadCache, store_cache
from dockyard.registry.context import Store
from dockyard.registry.repositories import Repositories, resource


@dataclass(frozen=True, slots=True)
class Route:
    """Where a proxied repository comes from: `remote` names the upstream registry and
    repository (Docker Hub's one-part names already under `library/`)."""

    upstream: ProxyUpstream
    remote: Reference
    mirror: bool  # the proxy without a namespace

    @property
    def public(self) -> bool:
        return self.upstream.visibility == "public"

    def describe(self) -> str:
        """The upstream repository as an operator configured it: `URL/repository`."""
        return f"{self.upstream.url}/{self.remote.repository}"


class ProxyRoutes:
    """The configured upstreams, matched against repository names."""

    def __init__(self, store: Store, upstreams: Sequence[ProxyUpstream]) -> None:
        self.store = store
        # the longest prefix wins: `mirror/ghcr` before `mirror`
        self.namespaced = sorted(
            (u for u in upstreams if u.namespace is not None),
            key=lambda u: -len(u.namespace or ""),
        )
        self.mirror = next((u for u in upstreams if u.namespace is None), None)
        self._registries = {u: normalize_registry(u.url) for u in upstreams}
        self._caches: ReadCache[bool] = store_cache(store)
        self._local_namespaces: ReadCache[bool] = store_cache(store)

    def forget_cached(self) -> None:
        self._caches.invalidate()
        self._local_namespaces.invalidate()

    def match(self, name: str) -> Route | None:
        """The upstream `name` maps to by configuration alone (see `pull_route`)."""
        for upstream in self.namespaced:
            prefix = f"{upstream.namespace}/"
            if name.startswith(prefix):
                return self._route(upstream, name[len(prefix) :], mirror=False)
        if self.mirror is not None:
            return self._route(self.mirror, name, mirror=True)
        return None

    def _route(self, upstream: ProxyUpstream, repository: str, mirror: bool) -> Route | None:
        try:
            return Route(upstream, Reference(self._registries[upstream], repository), mirror)
        except OciError:
            return None  # not a name the upstream can have

    async def pull_route(self, name: str, repository: RepositoryRow | None) -> Route | None:
        """The route a pull of `name` goes through; None when `name` is a local repository."""
        route = self.match(name)
        if route is None or not route.mirror:
            return route
        if repository is not None:
            return route if await self.is_cache(repository) else None
        return None if await self._in_local_namespace(name) else route

    async def push_route(self, name: str, repository: RepositoryRow | None) -> Route | None:
        """The route that makes `name` a read-only cache; None when it may be pushed to."""
        route = self.match(name)
        if route is None or not route.mirror:
            return route
        if repository is not None and await self.is_cache(repository):
            return route
        return None  # the mirror leaves new repositories to pushes

    async def policy_resource(self, name: str, repository: RepositoryRow | None) -> Resource:
        """What the access policy decides on: a cache repository that does not exist yet
        counts with the visibility its proxy gives the repositories it creates."""
        if repository is None:
            route = await self.pull_route(name, None)
            if route is not None:
                return Resource(name, namespace_of(name), route.public)
        return resource(name, repository)

    async def is_cache(self, repository: RepositoryRow) -> bool:
        """Whether the pull-through cache made `repository`."""

        async def load() -> bool:
            async with self.store.db.read() as conn:
                return await proxy_rows.is_cache(conn, repository.id)

        return bool(await self._caches.fetch(repository.id, load))

    def cached(self, repository: RepositoryRow) -> None:
        """Note that `repository` was just marked as a cache."""
        self._caches.put(repository.id, True)

    async def _in_local_namespace(self, name: str) -> bool:
        namespace = namespace_of(name)
        if namespace is None:
            return False

        async def load() -> bool:
            async with self.store.db.read() as conn:
                return await account_rows.namespace_by_name(conn, namespace) is not None

        return bool(await self._local_namespaces.fetch(namespace, load))


class CacheRepositories(Repositories):
    """Repositories whose access also knows the pull-through cache: pulls of a public cache
    repository that does not exist yet are allowed (it is made on the way), pushes to a cache
    repository are refused."""

    def __init__(self, store: Store, routes: ProxyRoutes) -> None:
        super().__init__(store)
        self.routes = routes

    def forget_cached(self) -> None:
        super().forget_cached()
        self.routes.forget_cached()

    async def authorize(self, subject: Subject, name: str, action: Action) -> RepositoryRow | None:
        """As `Repositories.authorize`, for cache repositories as well (see the class)."""
        validate_name(name)
        repository = await self.get(name)
        if action is Action.PUSH:
            route = await self.routes.push_route(name, repository)
            if route is not None:
                raise Denied(
                    f"repository {name!r} is a read-only cache of {route.describe()}: "
                    "push to another repository"
                )
        elif (
            action is Action.PULL
            and repository is None
            and allows(subject, await self.routes.policy_resource(name, None), action)
        ):
            return None
        return await super().authorize(subject, name, action)
