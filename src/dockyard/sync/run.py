"""The state one sync run shares among its tags: what it has copied already, and the place as
the run sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import aiohttp

from dockyard.client.registry import RegistryClient
from dockyard.client.target import BlobBody, Target
from dockyard.copy.graph import CopyPlan, Role
from dockyard.copy.limits import Limits
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import NameUnknown, OciError
from dockyard.oci.manifest import Manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag, is_fallback_tag


@dataclass
class Run:
    """State shared by the tags of one run."""

    dry_run: bool
    missing_only: bool
    place: Target
    limits: Limits
    plans: asyncio.Semaphore
    copies: asyncio.Semaphore
    claimed: set[tuple[str, str]] = field(default_factory=set)
    done_blobs: set[tuple[str, str]] = field(default_factory=set)
    done_manifests: set[tuple[str, str]] = field(default_factory=set)

    def patch(self, plan: CopyPlan) -> CopyPlan:
        """`plan` with what other copies of this run have put on the target since it was
        made marked present, so shared blobs and manifests move once."""
        blobs = tuple(
            replace(b, present=True)
            if not b.present and (b.target.name, str(b.descriptor.digest)) in self.done_blobs
            else b
            for b in plan.blobs
        )
        nodes = tuple(
            replace(n, present=True)
            if not n.present
            and n.role in (Role.CHILD, Role.REFERRER)
            and (n.target.name, str(n.digest)) in self.done_manifests
            else n
            for n in plan.nodes
        )
        if blobs == plan.blobs and nodes == plan.nodes:
            return plan
        return replace(plan, blobs=blobs, nodes=nodes)


class RunPlace:
    """The place as one run sees it: `place` itself, except that in repositories of a
    `RegistryClient` known to have no referrers API (distribution 2.8), the fallback tags are
    listed once per run, so a manifest without referrers costs no request to find that out
    (a referrer tag made later in the run is found by the next run)."""

    def __init__(self, place: Target) -> None:
        self.place = place
        self.client = place if isinstance(place, RegistryClient) else None
        self._fallback: dict[str, frozenset[str] | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def manifest_get(self, ref: Reference) -> Manifest:
        return await self.place.manifest_get(ref)

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        return await self.place.manifest_head(ref)

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Descriptor:
        return await self.place.manifest_put(ref, manifest)

    async def tag_list(self, ref: Reference) -> list[str]:
        return await self.place.tag_list(ref)

    async def blob_head(self, ref: Reference, desc: Descriptor) -> Descriptor | None:
        return await self.place.blob_head(ref, desc)

    def blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        return self.place.blob_get(ref, desc)

    async def blob_put(self, ref: Reference, desc: Descriptor, body: BlobBody) -> Descriptor:
        return await self.place.blob_put(ref, desc, body)

    async def blob_mount(self, ref: Reference, desc: Descriptor, from_repository: str) -> bool:
        return await self.place.blob_mount(ref, desc, from_repository)

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        subject = digest or ref.digest
        client = self.client
        if (
            client is not None
            and subject is not None
            and client.referrers_store.api.get((ref.registry, ref.repository)) is False
        ):
            tags = await self._fallback_tags(ref)
            if tags is not None and fallback_tag(subject) not in tags:
                return []
        return await self.place.referrers(ref, digest, artifact_type)

    async def _fallback_tags(self, ref: Reference) -> frozenset[str] | None:
        name = ref.name
        if name not in self._fallback:
            async with self._locks.setdefault(name, asyncio.Lock()):
                if name not in self._fallback:
                    self._fallback[name] = await self._list_fallback_tags(ref)
        return self._fallback[name]

    async def _list_fallback_tags(self, ref: Reference) -> frozenset[str] | None:
        try:
            tags = await self.place.tag_list(ref)
        except NameUnknown:
            return frozenset()
        except OciError:
            return None
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            return None  # each lookup asks for its fallback tag instead
        return frozenset(t for t in tags if is_fallback_tag(t))

    async def close(self) -> None:
        await self.place.close()


def _is_a_target(place: RunPlace) -> Target:
    return place
