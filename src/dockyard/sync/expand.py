"""Expanding sync entries into what to copy: the repositories of a registry (its `_catalog`)
that `repos` selects, the tags of a repository that `tags` and `tagSets` select, in natural
order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from dockyard.client.links import next_link
from dockyard.client.registry import RegistryClient
from dockyard.client.responses import read_body
from dockyard.client.target import Target
from dockyard.oci.errors import ManifestInvalid, OciError
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import is_digest_tag, is_fallback_tag
from dockyard.sync.model import SyncEntry, select_tags

MAX_CATALOG_PAGE = 16 * 1024 * 1024
MAX_CATALOG_PAGES = 10_000


@runtime_checkable
class Catalog(Protocol):
    """A place that can list its repositories (for `type: registry` entries)."""

    async def catalog(self, registry: str) -> list[str]: ...


def tags_to_sync(entry: SyncEntry, tags: Sequence[str]) -> list[str]:
    """The tags of a source repository that `entry` syncs: those its `tags` and `tagSets`
    select, less the fallback referrer tags (with `referrers`) and digest tags (with
    `digestTags`), which the copies of their subjects bring along."""
    if entry.referrers:
        tags = [t for t in tags if not is_fallback_tag(t)]
    if entry.digest_tags:
        tags = [t for t in tags if not is_digest_tag(t)]
    return select_tags(entry.tags, tags)


def repository_pairs(
    entry: SyncEntry,
    source: str,
    target: str,
    names: Iterable[str],
    log: Callable[[str], None],
) -> list[tuple[Reference, Reference]]:
    """The repositories of a registry entry that its `repos` select among `names` (in name
    order), each with its namesake under `target`; a name that is no valid repository is
    logged and skipped."""
    pairs = []
    for name in entry.repos.select(sorted(set(names))):
        try:
            pairs.append((Reference.parse(f"{source}/{name}"), Reference.parse(f"{target}/{name}")))
        except OciError as exc:
            log(f"{entry.name}: skipping repository {name!r}: {exc.message}")
    return pairs


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts `1.9` before `1.10`: runs of digits compare as numbers."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    )


async def list_repositories(place: Target, registry: str) -> list[str]:
    """The repositories of `registry` (the `_catalog` API of a remote registry)."""
    if isinstance(place, Catalog):
        return await place.catalog(registry)
    if isinstance(place, RegistryClient):
        return await registry_catalog(place, registry)
    raise ValueError(f"{type(place).__name__} cannot list the repositories of {registry}")


async def registry_catalog(client: RegistryClient, registry: str) -> list[str]:
    """`GET /v2/_catalog`, following `Link` pages."""
    transport = client.transport(registry)
    url = transport.url("/v2/_catalog")
    names: list[str] = []
    seen = set()
    for _ in range(MAX_CATALOG_PAGES):
        async with transport.request(
            "GET", url, scopes=frozenset({"registry:catalog:*"})
        ) as response:
            body = await read_body(response, MAX_CATALOG_PAGE)
            following = next_link(response.headers.getall("Link", []), response.url)
        try:
            data = json.loads(body)
        except ValueError:
            raise ManifestInvalid(f"the catalog of {registry} is not JSON") from None
        page = data.get("repositories") if isinstance(data, dict) else None
        if page is None:
            page = []
        if not isinstance(page, list) or not all(isinstance(n, str) for n in page):
            raise ManifestInvalid(f"the catalog of {registry} lists no repository names")
        names += page
        if following is None or following in seen:
            break
        seen.add(following)
        url = following
    return names
