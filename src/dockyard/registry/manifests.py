"""Manifests and tags: push (validated, all-or-nothing), pull with negotiation, delete."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata import content, events, repositories
from dockyard.metadata import manifests as rows
from dockyard.metadata.manifests import ManifestRow
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest, is_digest
from dockyard.oci.errors import (
    Denied,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    TagInvalid,
)
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.names import TAG_PATTERN, validate_tag
from dockyard.registry.cache import ReadCache, store_cache
from dockyard.registry.context import Store
from dockyard.registry.indexes import IndexChecks
from dockyard.registry.repositories import create_in

# Layers that live elsewhere by design; a registry does not hold them.
_NON_DISTRIBUTABLE = frozenset(
    {
        mt.DOCKER_FOREIGN_LAYER,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)
DEFAULT_PLATFORM = ("linux", "amd64")


MAX_TAG_PARAMETERS = 100  # the spec asks for at least 10 per push


@dataclass(frozen=True, slots=True)
class Pushed:
    """The outcome of a manifest push: the tags it applied (the reference's, then the `tag`
    parameters'), and whether the manifest was new to the repository."""

    manifest: Manifest
    tags: tuple[str, ...]
    created: bool  # False when the same manifest was already stored


class Manifests:
    def __init__(self, store: Store, indexes: IndexChecks | None = None) -> None:
        self.store = store
        self.indexes = indexes or IndexChecks()
        # ("tag" | "digest", repository id, tag or digest) → manifest
        self._cache: ReadCache[ManifestRow] = store_cache(store, 1024)

    def forget_cached(self) -> None:
        self._cache.invalidate()

    async def get(
        self, repository: RepositoryRow, reference: str, accept: frozenset[str] | None = None
    ) -> ManifestRow:
        """The manifest for a tag or digest that the client accepts.

        An index asked for by tag by a client that does not accept indexes gets its
        linux/amd64 image (as Docker's registry does); any other unaccepted type is unknown.
        """
        found = await self._lookup(repository, reference)
        if found is None:
            raise ManifestUnknown(
                f"manifest {reference!r} is not known to repository {repository.name!r}",
                {"name": repository.name, "reference": reference},
            )
        if accept is None or found.media_type in accept:
            return found
        if mt.is_index(found.media_type) and not is_digest(reference):
            child = await self._default_platform(repository, found, accept)
            if child is not None:
                return child
        raise ManifestUnknown(
            f"manifest {reference!r} is a {found.media_type}, "
            "which the request's Accept header does not allow",
            {"name": repository.name, "reference": reference, "mediaType": found.media_type},
        )

    async def _lookup(self, repository: RepositoryRow, reference: str) -> ManifestRow | None:
        if is_digest(reference):
            key: tuple[str, int, str] = ("digest", repository.id, str(Digest.parse(reference)))
        elif TAG_PATTERN.fullmatch(reference):
            key = ("tag", repository.id, reference)
        else:
            return None  # no tag can have that form, so none is known: 404, as the spec wants

        async def load() -> ManifestRow | None:
            async with self.store.db.read() as conn:
                if key[0] == "digest":
                    return await rows.by_digest(conn, repository.id, key[2])
                return await rows.by_tag(conn, repository.id, key[2])

        return await self._cache.fetch(key, load)

    async def _default_platform(
        self, repository: RepositoryRow, index: ManifestRow, accept: frozenset[str]
    ) -> ManifestRow | None:
        for entry in json.loads(index.content).get("manifests", []):
            platform = entry.get("platform") or {}
            if (platform.get("os"), platform.get("architecture")) == DEFAULT_PLATFORM and entry.get(
                "mediaType"
            ) in accept:
                async with self.store.db.read() as conn:
                    return await rows.by_digest(conn, repository.id, entry["digest"])
        return None

    async def put(
        self,
        name: str,
        reference: str,
        raw: bytes,
        content_type: str | None,
        pusher: str | None = None,
        tags: Sequence[str] = (),
    ) -> Pushed:
        """Store a manifest once everything it names is in the repository, then tag it.

        `reference` is a tag or the manifest's digest (any algorithm: the manifest is stored
        under that digest); `tags` (a push's `tag` parameters) point at it as well. The
        repository is created (private) by the same transaction, so a refused push leaves
        nothing behind. Pushes to one repository take its lock, as link pruning does. Every
        tag that is created or moved also records a push event (by `pusher`) in that
        transaction, which webhooks are delivered from.
        """
        manifest, wanted = _parse(reference, raw, content_type, tags)
        db = self.store.db
        async with db.write() as conn:
            repository = await create_in(db, conn, name)
            await repositories.lock(conn, repository.id)
            await self._check_references(conn, repository, manifest)
            created = await rows.put(db, conn, repository.id, manifest)
            for tag in wanted:
                await _tag(conn, repository, tag, manifest, pusher or "anonymous")
        if wanted:  # after the commit, so no reader re-caches the old value
            self._cache.invalidate()
        return Pushed(manifest, wanted, created)

    async def _check_references(
        self, conn: AsyncConnection, repository: RepositoryRow, manifest: Manifest
    ) -> None:
        wanted = [d for d in manifest.blobs if d.media_type not in _NON_DISTRIBUTABLE]
        sizes = await content.touch_links(conn, repository.id, [str(d.digest) for d in wanted])
        for descriptor in wanted:
            size = sizes.get(str(descriptor.digest))
            if size is None:
                raise ManifestBlobUnknown(
                    f"blob {descriptor.digest} is not in repository {repository.name!r}: "
                    "push it first",
                    {"digest": str(descriptor.digest)},
                )
            if size != descriptor.size:
                raise ManifestInvalid(
                    f"descriptor of {descriptor.digest} says {descriptor.size} bytes but the blob "
                    f"has {size}",
                    {"digest": str(descriptor.digest)},
                )
        required = self.indexes.required(repository, manifest.children)
        children = [str(d.digest) for d in required]
        missing = set(children) - await rows.existing(conn, repository.id, children)
        if missing:
            first = sorted(missing)[0]
            raise ManifestBlobUnknown(
                f"manifest {first} listed by the index is not in repository {repository.name!r}: "
                "push it first (or, to keep an index whose other platforms are not copied, "
                f"turn on sparse indexes: dockyard admin repo set {repository.name} "
                "--sparse-indexes on)",
                {"digest": first},
            )

    async def delete(self, repository: RepositoryRow, reference: str) -> None:
        """Delete a tag, or a manifest with every tag that points at it."""
        try:
            await self._delete(repository, reference)
        finally:  # after the commit, so no reader re-caches what was deleted
            self._cache.invalidate()

    async def _delete(self, repository: RepositoryRow, reference: str) -> None:
        async with self.store.db.write() as conn:
            if not is_digest(reference):
                tag = validate_tag(reference)
                if repository.immutable_tags:
                    raise Denied(
                        f"repository {repository.name!r} has immutable tags: tags cannot be deleted"
                    )
                if not await repositories.delete_tag(conn, repository.id, tag):
                    raise ManifestUnknown(
                        f"tag {tag!r} is not known to repository {repository.name!r}"
                    )
                return
            digest = str(Digest.parse(reference))
            if repository.immutable_tags and await repositories.tags_of_digest(
                conn, repository.id, digest
            ):
                raise Denied(
                    f"manifest {digest} is tagged in {repository.name!r}, which has immutable tags"
                )
            if not await rows.delete_manifest(conn, repository.id, digest):
                raise ManifestUnknown(
                    f"manifest {digest} is not known to repository {repository.name!r}"
                )

    async def tags(
        self, repository: RepositoryRow, n: int | None, last: str | None
    ) -> tuple[list[str], bool]:
        """Tag names in lexical order after `last`, at most `n`; and whether more follow."""
        if n is not None and n <= 0:
            return [], False
        async with self.store.db.read() as conn:
            names = await repositories.tags_after(
                conn, repository.id, last, None if n is None else n + 1
            )
        if n is not None and len(names) > n:
            return names[:n], True
        return names, False


def _parse(
    reference: str, raw: bytes, content_type: str | None, tag_parameters: Sequence[str]
) -> tuple[Manifest, tuple[str, ...]]:
    """The manifest a push sends, checked against a digest reference, and the tags to apply."""
    if len(tag_parameters) > MAX_TAG_PARAMETERS:
        raise TagInvalid(
            f"{len(tag_parameters)} tag parameters: at most {MAX_TAG_PARAMETERS} per push",
            {"count": len(tag_parameters)},
        )
    wanted = [validate_tag(tag) for tag in tag_parameters]
    if is_digest(reference):
        expected = Digest.parse(reference)
        manifest = parse_manifest(raw, content_type, expected.algorithm)
        if manifest.digest != expected:
            raise DigestInvalid(
                f"manifest has digest {manifest.digest}, not the {expected} it was pushed as",
                {"expected": str(expected), "actual": str(manifest.digest)},
            )
    else:
        wanted.insert(0, validate_tag(reference))
        manifest = parse_manifest(raw, content_type)
    return manifest, tuple(dict.fromkeys(wanted))  # once each, in the order given


async def _tag(
    conn: AsyncConnection, repository: RepositoryRow, tag: str, manifest: Manifest, pusher: str
) -> None:
    """Point `tag` at `manifest` and record the push when it moved (immutable tags refuse:
    the caller's transaction, which raising rolls back, holds the repository's lock)."""
    digest = str(manifest.digest)
    previous = await repositories.set_tag(conn, repository.id, tag, digest)
    if previous == digest:
        return
    if previous is not None and repository.immutable_tags:
        raise Denied(
            f"tag {tag!r} already exists and repository {repository.name!r} has "
            "immutable tags enabled: push a new tag instead",
        )
    await events.record_push(
        conn, repository.id, tag, previous, digest, manifest.media_type, pusher
    )
