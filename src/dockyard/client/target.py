"""The protocol every place content can be read from or written to implements.

Like regclient's schemes: a remote registry (`RegistryClient`), an OCI image layout directory,
and Dockyard's own store in the same process all answer the same operations, each taking a
`Reference` (and a `Descriptor` for blobs). The copy engine only ever sees this protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest
from dockyard.oci.reference import Reference

BlobBody = bytes | Callable[[], AsyncIterator[bytes]] | AsyncIterator[bytes]
"""Bytes, a callable that opens the stream afresh (retryable), or a stream (sent once)."""


class Target(Protocol):
    """Manifests, blobs, tags and referrers of the repositories in one place."""

    async def manifest_get(self, ref: Reference) -> Manifest:
        """The manifest `ref` names, exact bytes kept; `ManifestUnknown` when there is none."""

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        """The descriptor of the manifest `ref` names, None when there is none."""

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Descriptor:
        """Store `manifest`'s exact bytes under `ref`'s tag (or digest).

        A manifest with a `subject` becomes discoverable as a referrer: by the referrers API
        where the place has one, else by adding it to the subject's fallback tag index.
        """

    async def tag_list(self, ref: Reference) -> list[str]:
        """Every tag of `ref`'s repository."""

    async def blob_head(self, ref: Reference, desc: Descriptor) -> Descriptor | None:
        """The blob's descriptor when `ref`'s repository has it, else None."""

    def blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        """The blob's bytes, verified against `desc` (size and digest) as they stream."""

    async def blob_put(self, ref: Reference, desc: Descriptor, body: BlobBody) -> Descriptor:
        """Store a blob in `ref`'s repository; rejects bytes that do not match `desc`."""

    async def blob_mount(self, ref: Reference, desc: Descriptor, from_repository: str) -> bool:
        """Make a blob of another repository of the same place visible in `ref`'s; False when
        that cannot be done (the caller then copies the bytes)."""

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """The referrers of `digest` (default: the one `ref` names) in `ref`'s repository."""

    async def close(self) -> None:
        """Release connections and files."""


def same_place(a: Reference, b: Reference) -> bool:
    """Whether two references are in the same place, so blobs can be mounted across them."""
    return (a.scheme, a.registry, a.path) == (b.scheme, b.registry, b.path)
