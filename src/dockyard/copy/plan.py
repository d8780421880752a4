"""Planning a copy: walk the source's descriptor graph from a reference (index → manifests →
config and layers; referrers and digest tags of every manifest, recursively) and ask the target
what it already has. Reads only; the result is an immutable `CopyPlan`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from dockyard.client.target import Target
from dockyard.copy.graph import (
    BlobNode,
    CopyPlan,
    Endpoints,
    ManifestNode,
    Role,
    Side,
    external_layers,
    pinned,
    write_order,
)
from dockyard.copy.limits import Limits
from dockyard.copy.options import CopyOptions
from dockyard.copy.platforms import keeps
from dockyard.copy.result import CopyError, NodeFailed, failing
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, ManifestUnknown
from dockyard.oci.manifest import Manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag


async def plan_copy(
    source: Target,
    src_ref: Reference,
    target: Target,
    dst_ref: Reference,
    options: CopyOptions | None = None,
    *,
    referrers_source: tuple[Target, Reference] | None = None,
    referrers_target: tuple[Target, Reference] | None = None,
    limits: Limits | None = None,
) -> CopyPlan:
    """Plan copying `src_ref` from `source` to `dst_ref` on `target`; writes nothing.

    Referrers are read from `referrers_source` (a place and a reference naming its
    repository) and written to `referrers_target` when given, else from the source and to the
    target repository. Raises `CopyError` naming the step, reference and descriptor that
    failed (e.g. `ManifestUnknown` when the source has no `src_ref`).
    """
    options = options or CopyOptions()
    endpoints = Endpoints(
        source,
        target,
        referrers_source[0] if referrers_source else source,
        referrers_target[0] if referrers_target else target,
    )
    planner = _Planner(
        endpoints,
        options,
        (src_ref, dst_ref),
        (
            referrers_source[1] if referrers_source else src_ref,
            referrers_target[1] if referrers_target else dst_ref,
        ),
        limits or Limits.of(options),
    )
    try:
        return await planner.plan()
    except NodeFailed as exc:
        raise CopyError(src_ref, dst_ref, [exc.failure]) from exc.failure.error
    except BaseExceptionGroup as group:
        raise CopyError.from_group(src_ref, dst_ref, group) from None


@dataclass
class _Draft:
    """A manifest node while the walk fills it in."""

    role: Role
    source: Reference
    target: Reference
    reads: Side
    writes: Side
    descriptor: Descriptor | None = None
    present: bool = False
    trusted: bool = False  # fast check: the target has everything below this node
    main_tree: bool = True  # the platform filter applies to its index entries
    manifest: Manifest | None = None
    subject: int | None = None
    children: list[int] = field(default_factory=list)
    blobs: list[int] = field(default_factory=list)
    left_out: list[Descriptor] = field(default_factory=list)

    @property
    def desc(self) -> Descriptor:
        """The descriptor, known once the node has been resolved."""
        if self.descriptor is None:
            raise AssertionError(f"{self.source} has not been read yet")
        return self.descriptor


@dataclass
class _BlobDraft:
    descriptor: Descriptor
    source: Reference
    target: Reference
    reads: Side
    writes: Side
    present: bool = False


class _Planner:
    """One walk: drafts keyed by where they go, so shared content is planned once."""

    def __init__(
        self,
        endpoints: Endpoints,
        options: CopyOptions,
        refs: tuple[Reference, Reference],
        referrer_refs: tuple[Reference, Reference],
        limits: Limits,
    ) -> None:
        self.endpoints = endpoints
        self.options = options
        self.src, self.dst = refs
        self.referrers_src, self.referrers_dst = referrer_refs
        self.limits = limits
        # a manifest the target has is skipped unless a forced copy rewrites it (fast wins)
        self.check = options.fast_check or not options.force_recursive
        self.walk = options.referrers or options.digest_tags
        self.drafts: list[_Draft] = []
        self.keys: dict[tuple[str, str], int] = {}
        self.blob_drafts: list[_BlobDraft] = []
        self.blob_keys: dict[tuple[str, str], int] = {}
        self.tag_lists: dict[tuple[Side, str], asyncio.Task[list[str]]] = {}
        self.group = asyncio.TaskGroup()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.group.create_task(work)

    def _add(self, key: tuple[str, str], draft: _Draft) -> int:
        self.keys[key] = len(self.drafts)
        self.drafts.append(draft)
        return len(self.drafts) - 1

    async def plan(self) -> CopyPlan:
        """Walk from the root, then freeze the drafts in write order."""
        root, previous = await self._root()
        async with self.group:
            self._spawn(self._expand(root))
        return self._freeze(root, previous)

    async def _root(self) -> tuple[int, Digest | None]:
        """Resolve the source reference and what the target reference points at (two HEADs)."""
        found, existing = await asyncio.gather(
            self._head(self.endpoints.source, self.src, "resolve source"),
            self._head(self.endpoints.target, self.dst, "check target"),
        )
        with failing("resolve source", self.src):
            if found is None:
                raise ManifestUnknown(f"manifest {self.src} is not in the source")
            if self.dst.digest is not None and self.dst.digest != found.digest:
                raise DigestInvalid(
                    f"{self.src} is {found.digest}, not the {self.dst.digest} asked"
                )
        previous = existing.digest if existing is not None else None
        present = self.check and previous == found.digest
        same_repository = (
            self.endpoints.source is self.endpoints.target and self.src.name == self.dst.name
        )
        draft = _Draft(
            Role.ROOT,
            self.src.with_digest(found.digest),
            self.dst,
            Side.SOURCE,
            Side.TARGET,
            descriptor=found,
            present=present,
            trusted=same_repository or (present and self.options.fast_check),
        )
        return self._add((self.dst.name, self.dst.reference), draft), previous

    async def _head(self, place: Target, ref: Reference, step: str) -> Descriptor | None:
        with failing(step, ref):
            async with self.limits.requests:
                return await place.manifest_head(ref)

    async def _expand(self, index: int) -> None:
        """Plan what a manifest names (children, blobs), its referrers and digest tags."""
        draft = self.drafts[index]
        desc = draft.desc
        if draft.manifest is None and (not draft.present or (self.walk and _is_index(desc))):
            with failing("read manifest", draft.source, desc):
                async with self.limits.requests:
                    place = self.endpoints.get(draft.reads)
                    draft.manifest = await place.manifest_get(draft.source)
        manifest = draft.manifest
        if manifest is not None and manifest.is_index:
            self._children(index, manifest)
        elif manifest is not None and not draft.present:
            external = set() if self.options.include_external else external_layers(manifest)
            for blob in manifest.blobs:
                if blob.digest not in external:
                    self._blob(index, blob)
        if self.options.referrers:
            self._spawn(self._referrers(index))
        if self.options.digest_tags:
            self._spawn(self._digest_tags(index))

    def _children(self, index: int, manifest: Manifest) -> None:
        draft = self.drafts[index]
        wanted = self.options.wanted_platforms if draft.main_tree else ()
        for entry in manifest.children:
            if not keeps(entry, wanted):
                draft.left_out.append(entry)
            elif entry.media_type not in mt.MANIFESTS:
                if not draft.present:  # an index may list a plain blob
                    self._blob(index, entry)
            else:
                self._child(index, entry)

    def _child(self, index: int, entry: Descriptor) -> None:
        parent = self.drafts[index]
        target = pinned(parent.target, entry.digest)
        key = (target.name, str(entry.digest))
        if key in self.keys:
            parent.children.append(self.keys[key])
            return
        child = _Draft(
            Role.CHILD,
            pinned(parent.source, entry.digest),
            target,
            parent.reads,
            parent.writes,
            descriptor=entry,
            trusted=parent.trusted,
            main_tree=parent.main_tree,
        )
        parent.children.append(self._add(key, child))
        self._spawn(self._visit(self.keys[key]))

    async def _visit(self, index: int) -> None:
        """Ask the target whether it has a manifest named by digest, then expand it."""
        draft = self.drafts[index]
        if draft.trusted:
            draft.present = True
        elif self.check:
            place = self.endpoints.get(draft.writes)
            found = await self._head(place, draft.target, "check target manifest")
            draft.present = found is not None and found.digest == draft.desc.digest
            draft.trusted = draft.present and self.options.fast_check
        await self._expand(index)

    def _blob(self, index: int, desc: Descriptor) -> None:
        parent = self.drafts[index]
        target = pinned(parent.target, desc.digest)
        key = (target.name, str(desc.digest))
        if key not in self.blob_keys:
            self.blob_keys[key] = len(self.blob_drafts)
            blob = _BlobDraft(
                desc, pinned(parent.source, desc.digest), target, parent.reads, parent.writes
            )
            self.blob_drafts.append(blob)
            if parent.trusted:
                blob.present = True
            else:
                self._spawn(self._probe(blob))
        parent.blobs.append(self.blob_keys[key])

    async def _probe(self, blob: _BlobDraft) -> None:
        place = self.endpoints.get(blob.writes)
        with failing("check target blob", blob.target, blob.descriptor):
            async with self.limits.requests:
                blob.present = await place.blob_head(blob.target, blob.descriptor) is not None

    async def _referrers(self, index: int) -> None:
        """Plan the referrers of a manifest: listed by the referrers source, filtered; present
        when the referrers target lists them for the same subject."""
        subject = self.drafts[index]
        digest = subject.desc.digest
        where = pinned(self.referrers_src, digest)
        with failing("list referrers", where, subject.desc):
            async with self.limits.requests:
                found = await self.endpoints.referrers_source.referrers(where, digest)
        found = [d for d in found if self.options.selects_referrer(d)]
        if not found:
            return
        there: set[Digest] = set()
        if self.check:
            goes = pinned(self.referrers_dst, digest)
            with failing("list target referrers", goes, subject.desc):
                async with self.limits.requests:
                    listed = await self.endpoints.referrers_target.referrers(goes, digest)
            there = {d.digest for d in listed}
        for desc in found:
            target = pinned(self.referrers_dst, desc.digest)
            key = (target.name, str(desc.digest))
            if key in self.keys:
                continue
            present = desc.digest in there
            referrer = _Draft(
                Role.REFERRER,
                pinned(self.referrers_src, desc.digest),
                target,
                Side.REFERRERS_SOURCE,
                Side.REFERRERS_TARGET,
                descriptor=desc,
                present=present,
                trusted=present and self.options.fast_check,
                main_tree=False,
                subject=index,
            )
            self._spawn(self._expand(self._add(key, referrer)))

    async def _digest_tags(self, index: int) -> None:
        """Plan the source tags `<alg>-<hex>*` of a manifest (cosign signatures,
        attestations, SBOMs); the fallback referrers tag itself is left to `referrers`."""
        draft = self.drafts[index]
        prefix = fallback_tag(draft.desc.digest)
        for tag in await self._tags(draft.reads, draft.source):
            if not tag.startswith(prefix) or (self.options.referrers and tag == prefix):
                continue
            target = draft.target.with_tag(tag)
            key = (target.name, tag)
            if key in self.keys:
                continue
            tagged = _Draft(
                Role.DIGEST_TAG,
                draft.source.with_tag(tag),
                target,
                draft.reads,
                draft.writes,
                main_tree=False,
                subject=index,
            )
            self._spawn(self._visit_tag(self._add(key, tagged)))

    async def _tags(self, side: Side, ref: Reference) -> list[str]:
        key = (side, ref.name)
        if key not in self.tag_lists:
            self.tag_lists[key] = self.group.create_task(self._list_tags(side, ref))
        return await self.tag_lists[key]

    async def _list_tags(self, side: Side, ref: Reference) -> list[str]:
        with failing("list tags", ref):
            async with self.limits.requests:
                return await self.endpoints.get(side).tag_list(ref)

    async def _visit_tag(self, index: int) -> None:
        draft = self.drafts[index]
        with failing("read digest tag", draft.source):
            async with self.limits.requests:
                manifest = await self.endpoints.get(draft.reads).manifest_get(draft.source)
        draft.manifest = manifest
        draft.descriptor = manifest.descriptor()
        draft.source = draft.source.with_digest(manifest.digest)
        if self.check:
            place = self.endpoints.get(draft.writes)
            found = await self._head(place, draft.target, "check target digest tag")
            draft.present = found is not None and found.digest == manifest.digest
            draft.trusted = draft.present and self.options.fast_check
        await self._expand(index)

    def _freeze(self, root: int, previous: Digest | None) -> CopyPlan:
        order = write_order(
            [d.children + ([d.subject] if d.subject is not None else []) for d in self.drafts]
        )
        position = {old: new for new, old in enumerate(order)}
        nodes = tuple(_node(self.drafts[old], position) for old in order)
        blobs = tuple(
            BlobNode(b.descriptor, b.source, b.target, b.reads, b.writes, b.present)
            for b in self.blob_drafts
        )
        return CopyPlan(
            self.endpoints, self.options, self.src, self.dst, nodes, blobs, position[root], previous
        )


def _node(draft: _Draft, position: dict[int, int]) -> ManifestNode:
    return ManifestNode(
        draft.role,
        draft.desc,
        draft.source,
        draft.target,
        draft.reads,
        draft.writes,
        draft.present,
        draft.manifest,
        tuple(position[c] for c in draft.children),
        tuple(draft.blobs),
        position[draft.subject] if draft.subject is not None else None,
        tuple(draft.left_out),
    )


def _is_index(desc: Descriptor) -> bool:
    return mt.is_index(desc.media_type)
