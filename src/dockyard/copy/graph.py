"""The copy plan as an immutable graph: every manifest and blob to copy, where it is read
from and written to, what the target already has, and the order to write them in."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum

from dockyard.client.target import Target, same_place
from dockyard.copy.options import CopyOptions
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest
from dockyard.oci.reference import Reference


def pinned(ref: Reference, digest: Digest) -> Reference:
    """`ref`'s repository (or layout) at `digest`, without a tag (so a push never moves a tag)."""
    return replace(ref, tag=None, digest=digest)


def external_layers(manifest: Manifest) -> set[Digest]:
    """Layers that name `urls` to fetch them from (foreign layers): not hosted by the source,
    so not copied, as regclient does by default."""
    body = json.loads(manifest.raw)
    layers = body.get("layers") if isinstance(body, dict) else None
    external = set()
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("urls"):
            external.add(Digest.parse(str(layer.get("digest"))))
    return external


class Role(StrEnum):
    """Why a manifest is in the plan."""

    ROOT = "root"  # the reference asked for
    CHILD = "child"  # listed by an index in the plan
    REFERRER = "referrer"  # its `subject` is a manifest in the plan
    DIGEST_TAG = "digest-tag"  # tagged `<alg>-<hex>.*` after a manifest in the plan (cosign)


class Side(StrEnum):
    """Which of the copy's places a node is read from or written to."""

    SOURCE = "source"
    TARGET = "target"
    REFERRERS_SOURCE = "referrers-source"
    REFERRERS_TARGET = "referrers-target"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The places of one copy; referrers come from and go to the source and target unless a
    separate place is given for them."""

    source: Target
    target: Target
    referrers_source: Target
    referrers_target: Target

    def get(self, side: Side) -> Target:
        """The place `side` names."""
        return {
            Side.SOURCE: self.source,
            Side.TARGET: self.target,
            Side.REFERRERS_SOURCE: self.referrers_source,
            Side.REFERRERS_TARGET: self.referrers_target,
        }[side]


@dataclass(frozen=True, slots=True)
class BlobNode:
    """A blob to put in `target`'s repository, read from `source`'s; `present` when the target
    already has it."""

    descriptor: Descriptor
    source: Reference
    target: Reference
    reads: Side
    writes: Side
    present: bool

    @property
    def mountable(self) -> bool:
        """Whether the target may link the blob from the source repository (same place,
        another repository) instead of receiving its bytes."""
        return same_place(self.source, self.target) and self.source.name != self.target.name


@dataclass(frozen=True, slots=True)
class ManifestNode:
    """A manifest to write to `target` (a tag for the root and digest tags, else a digest).

    `children` and `blobs` are indexes of what it lists (written before it), `subject` the
    node it refers to or is a digest tag of (written before it). `manifest` holds the exact
    source bytes; it is None only for a manifest the target already has (`present`) that did
    not need reading. `left_out` are index entries the platform filter did not keep.
    """

    role: Role
    descriptor: Descriptor
    source: Reference
    target: Reference
    reads: Side
    writes: Side
    present: bool
    manifest: Manifest | None = None
    children: tuple[int, ...] = ()
    blobs: tuple[int, ...] = ()
    subject: int | None = None
    left_out: tuple[Descriptor, ...] = ()

    @property
    def digest(self) -> Digest:
        """The manifest's digest."""
        return self.descriptor.digest

    @property
    def dependencies(self) -> tuple[int, ...]:
        """Nodes that must be on the target before this one is written."""
        return self.children if self.subject is None else (*self.children, self.subject)


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """Everything one copy will do, in write order: each node comes after its children and
    after its subject, so a target never sees a manifest before what it names.

    `previous` is the digest the target reference pointed at before the copy (None: absent).
    """

    endpoints: Endpoints
    options: CopyOptions
    source: Reference
    target: Reference
    nodes: tuple[ManifestNode, ...]
    blobs: tuple[BlobNode, ...]
    root: int
    previous: Digest | None

    @property
    def digest(self) -> Digest:
        """The digest of the root manifest."""
        return self.nodes[self.root].digest

    @property
    def status(self) -> str:
        """`add` (the target reference is new), `update` (it moves) or `unchanged`."""
        if self.previous is None:
            return "add"
        return "unchanged" if self.previous == self.digest else "update"

    @property
    def has_work(self) -> bool:
        """Whether the target lacks any manifest or blob of the plan."""
        return any(not n.present for n in self.nodes) or any(not b.present for b in self.blobs)

    @property
    def bytes_to_transfer(self) -> int:
        """Bytes of the blobs the target lacks (some may be mounted instead)."""
        return sum(b.descriptor.size for b in self.blobs if not b.present)

    @property
    def manifests_to_write(self) -> int:
        """Manifests the target lacks (or that a forced copy rewrites)."""
        return sum(1 for n in self.nodes if not n.present)

    @property
    def referrers_to_copy(self) -> int:
        """Referrers the target lacks."""
        return sum(1 for n in self.nodes if n.role is Role.REFERRER and not n.present)

    @property
    def blobs_to_copy(self) -> int:
        """Blobs the target lacks."""
        return sum(1 for b in self.blobs if not b.present)


def write_order(dependencies: list[list[int]]) -> list[int]:
    """Node ids ordered so that each comes after its dependencies (Kahn's algorithm, stable
    by id). Content addressing rules out cycles; if one appears anyway, the nodes left are
    appended by id rather than dropped."""
    count = len(dependencies)
    waiting = [len(set(deps)) for deps in dependencies]
    dependents: list[list[int]] = [[] for _ in range(count)]
    for node, deps in enumerate(dependencies):
        for dep in set(deps):
            dependents[dep].append(node)
    ready = [node for node in range(count) if waiting[node] == 0]
    order: list[int] = []
    while ready:
        ready.sort(reverse=True)
        node = ready.pop()
        order.append(node)
        for dependent in dependents[node]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    placed = set(order)
    return order + [node for node in range(count) if node not in placed]
