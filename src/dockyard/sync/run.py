"""The state one sync run shares among its tags: what it has copied already, and the place as
the run sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
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
    place: RunPlace
    trusting: TrustingPlace  # the target side of copies with fastCheck
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
    """The place as one run sees it: `place` itself, with what the run already knows.

    - In repositories of a `RegistryClient` known to have no referrers API (distribution
      2.8), the fallback tags are listed once per run, so a manifest without referrers costs
      no request to find that out (a referrer tag made later in the run is found by the next
      run).
    - A target repository the run has `survey`ed answers HEADs from what it knows: what the
      run wrote there is present; a tag its listing lacks is absent; in a repository that had
      no tags (a new mirror), every blob and manifest the run did not write is absent, so a
      cold copy asks nothing before it writes. (A repository that holds blobs but no tag,
      e.g. after a copy stopped before its first tag, gets them sent again.) There, the
      fallback tag index of a referrer's subject is the one this run pushed, or none: it is
      not read before it is updated; the referrers of a manifest are those the run pushed.
    - Each repository's tags are listed once (a tag made later in the run is found by the
      next run).
    - Manifests read by digest are kept in `manifests` (content never changes under a
      digest), so a syncer's later runs (server mode) do not read an unchanged index again.
    """

    def __init__(self, place: Target, manifests: ManifestCache | None = None) -> None:
        self.place = place
        self.manifests = manifests if manifests is not None else ManifestCache()
        self.client = place if isinstance(place, RegistryClient) else None
        self._fallback: dict[str, frozenset[str] | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tags: dict[str, frozenset[str]] = {}  # surveyed repositories: their tags
        # surveyed repositories: what the run wrote there, by digest and tag
        self._written: dict[str, dict[str, Descriptor]] = {}
        # new repositories: the fallback tag indexes this run pushed, by (repository, subject)
        self._indexes: dict[tuple[str, Digest], Manifest] = {}
        self._index_locks: dict[tuple[str, Digest], asyncio.Lock] = {}
        self._referrers: dict[tuple[str, Digest], list[Descriptor]] = {}
        self._listings: dict[str, asyncio.Future[list[str]]] = {}

    async def survey(self, ref: Reference) -> list[str]:
        """List the tags of `ref`'s repository (none: `NameUnknown`) and answer HEADs in it
        from that listing from now on (see the class)."""
        try:
            tags = await self.place.tag_list(ref)
        except NameUnknown:
            tags = []
        name = ref.name
        self._tags[name] = frozenset(tags)
        self._written.setdefault(name, {})
        self._fallback.setdefault(name, frozenset(t for t in tags if is_fallback_tag(t)))
        return tags

    def _known(self, ref: Reference, digest: Digest | None) -> tuple[bool, Descriptor | None]:
        """Whether the survey of `ref`'s repository answers for blob or manifest `digest`
        (None: `ref`'s tag), and what: the descriptor this run wrote, or None (absent)."""
        tags = self._tags.get(ref.name)
        key = str(digest) if digest is not None else ref.tag
        if tags is None or key is None:
            return False, None
        written = self._written[ref.name].get(key)
        if written is not None:
            return True, written
        if digest is not None:
            return not tags, None  # a new repository holds only what this run wrote
        return key not in tags, None

    def _wrote(self, ref: Reference, desc: Descriptor, tag: str | None = None) -> None:
        written = self._written.get(ref.name)
        if written is not None:
            written[str(desc.digest)] = desc
            if tag is not None:
                written[tag] = desc

    def _new(self, ref: Reference) -> bool:
        """Whether `ref`'s repository had no tags when surveyed (a new mirror)."""
        return self._tags.get(ref.name) == frozenset()

    async def manifest_get(self, ref: Reference) -> Manifest:
        if ref.digest is None:
            return await self.place.manifest_get(ref)
        key = (ref.name, ref.digest)
        found = self.manifests.get(key)
        if found is None:
            found = await self.place.manifest_get(ref)
            self.manifests.put(key, found)
        return found

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        known, desc = self._known(ref, ref.digest if ref.tag is None else None)
        return desc if known else await self.place.manifest_head(ref)

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Descriptor:
        subject = manifest.subject
        if subject is None or not self._new(ref):
            pushed = await self.place.manifest_put(ref, manifest)
        elif self.client is not None:
            pushed = await self._put_referrer(self.client, ref, manifest, subject.digest)
        else:
            pushed = await self.place.manifest_put(ref, manifest)
        if subject is not None and self._new(ref):
            self._referrers.setdefault((ref.name, subject.digest), []).append(pushed)
        self._wrote(ref, pushed, ref.tag)
        return pushed

    async def _put_referrer(
        self, client: RegistryClient, ref: Reference, manifest: Manifest, subject: Digest
    ) -> Descriptor:
        """Push a referrer to a new repository; without the referrers API, add it to its
        subject's fallback tag index as this run last pushed it (none yet: a new one)."""
        pushed = await client.manifest_put(ref, manifest, update_referrers=False)
        if client.referrers_store.api.get((ref.registry, ref.repository)) is True:
            return pushed  # the registry confirmed the subject (OCI-Subject)
        key = (ref.name, subject)
        async with self._index_locks.setdefault(key, asyncio.Lock()):
            index = await client.referrers_store.update_fallback(
                ref, subject, add=[pushed], current=self._indexes.get(key)
            )
            if index is not None:
                self._indexes[key] = index
        return pushed

    async def tag_list(self, ref: Reference) -> list[str]:
        """The repository's tags, listed once per run (the digest tags of every tag copied,
        the fallback tags and the tags to sync come from one listing)."""
        listing = self._listings.get(ref.name)
        if listing is None:
            listing = asyncio.ensure_future(self.place.tag_list(ref))
            self._listings[ref.name] = listing
        return list(await asyncio.shield(listing))

    async def blob_head(self, ref: Reference, desc: Descriptor) -> Descriptor | None:
        known, found = self._known(ref, desc.digest)
        return found if known else await self.place.blob_head(ref, desc)

    def blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        return self.place.blob_get(ref, desc)

    async def blob_put(self, ref: Reference, desc: Descriptor, body: BlobBody) -> Descriptor:
        put = await self.place.blob_put(ref, desc, body)
        self._wrote(ref, put)
        return put

    async def blob_mount(self, ref: Reference, desc: Descriptor, from_repository: str) -> bool:
        mounted = await self.place.blob_mount(ref, desc, from_repository)
        if mounted:
            self._wrote(ref, desc)
        return mounted

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        subject = digest or ref.digest
        client = self.client
        if subject is not None and self._new(ref):
            mine = self._referrers.get((ref.name, subject), [])
            return [d for d in mine if artifact_type in (None, d.artifact_type)]
        if client is not None and subject is not None:
            store = client.referrers_store
            key = (ref.registry, ref.repository)
            if key not in store.api:
                probed = await store.probe(ref, subject, artifact_type)
                if probed is not None:
                    return probed
            if store.api.get(key) is False:
                tags = await self._fallback_tags(ref)
                if tags is not None:
                    if fallback_tag(subject) not in tags:
                        return []
                    listed = await store.by_fallback_tag(ref, subject)
                    return [d for d in listed if artifact_type in (None, d.artifact_type)]
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
            tags = await self.tag_list(ref)
        except NameUnknown:
            return frozenset()
        except OciError:
            return None
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            return None  # each lookup asks for its fallback tag instead
        return frozenset(t for t in tags if is_fallback_tag(t))

    async def close(self) -> None:
        await self.place.close()


class ManifestCache:
    """Manifests by (repository, digest), the most recently used kept: at most `entries` of
    them and `size` bytes, so a long-running syncer's memory stays flat."""

    def __init__(self, entries: int = 4096, size: int = 64 * 1024 * 1024) -> None:
        self.entries, self.size = entries, size
        self._held: dict[tuple[str, Digest], Manifest] = {}
        self._bytes = 0

    def get(self, key: tuple[str, Digest]) -> Manifest | None:
        found = self._held.pop(key, None)
        if found is not None:
            self._held[key] = found  # most recently used last
        return found

    def put(self, key: tuple[str, Digest], manifest: Manifest) -> None:
        if key in self._held or len(manifest.raw) > self.size:
            return
        self._held[key] = manifest
        self._bytes += len(manifest.raw)
        while len(self._held) > self.entries or self._bytes > self.size:
            oldest = next(iter(self._held))
            self._bytes -= len(self._held.pop(oldest).raw)


class KnownReferrers:
    """The referrers a syncer found or put in its targets, by (repository, subject), trusted
    for `seconds`: the next cycles of a server take them as listed instead of asking the
    target again, as `fastCheck` trusts what is below a manifest the target has (a referrer
    deleted from the target by hand comes back within `seconds`). The source is always asked.
    At most `entries` subjects are kept, the oldest dropped first."""

    def __init__(
        self,
        seconds: float = 600.0,
        entries: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds, self.entries, self.clock = seconds, entries, clock
        self._known: dict[tuple[str, Digest], tuple[float, list[Descriptor]]] = {}

    def get(self, key: tuple[str, Digest]) -> list[Descriptor] | None:
        found = self._known.get(key)
        if found is None or found[0] <= self.clock():
            return None
        return found[1]

    def put(self, key: tuple[str, Digest], listed: list[Descriptor]) -> None:
        self._known.pop(key, None)
        self._known[key] = (self.clock() + self.seconds, list(listed))
        while len(self._known) > self.entries:
            del self._known[next(iter(self._known))]

    def add(self, key: tuple[str, Digest], desc: Descriptor) -> None:
        """Note a referrer pushed, if the subject's list is known (else it is asked for)."""
        found = self._known.get(key)
        if found is not None and all(d.digest != desc.digest for d in found[1]):
            found[1].append(desc)


class TrustingPlace:
    """A run's place as the target of copies with `fastCheck`: a subject's referrers come from
    `known` while it holds them (else from the target, then noted), referrers pushed are
    noted; everything else is the run's place."""

    def __init__(self, place: RunPlace, known: KnownReferrers) -> None:
        self.place = place
        self.known = known

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        subject = digest or ref.digest
        if subject is None:
            return await self.place.referrers(ref, digest, artifact_type)
        key = (ref.name, subject)
        listed = self.known.get(key)
        if listed is None:
            listed = await self.place.referrers(ref, subject)
            self.known.put(key, listed)
        return [d for d in listed if artifact_type in (None, d.artifact_type)]

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Descriptor:
        pushed = await self.place.manifest_put(ref, manifest)
        if manifest.subject is not None:
            self.known.add((ref.name, manifest.subject.digest), pushed)
        return pushed

    async def manifest_get(self, ref: Reference) -> Manifest:
        return await self.place.manifest_get(ref)

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        return await self.place.manifest_head(ref)

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

    async def close(self) -> None:
        await self.place.close()


def _is_a_target(place: RunPlace, trusting: TrustingPlace) -> tuple[Target, Target]:
    return place, trusting
