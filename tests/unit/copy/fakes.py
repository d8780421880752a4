"""An in-memory `Target` for copy tests, and helpers to fill it with images, indexes and
referrers built by `support.ocilayout`.

`MemoryTarget` keeps repositories in dicts, answers referrers by scanning subjects (as a
registry with the referrers API would), records every call in order, can refuse manifests
whose blobs or children are missing (as Dockyard and distribution do), can fail chosen
operations, and measures how many blob uploads and manifest requests overlap.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from dockyard.client.target import BlobBody, Target
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUnknown, DigestInvalid, ManifestBlobUnknown, ManifestUnknown
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from support.ocilayout import Image, index_bytes

CHUNK = 7


@dataclass
class Repository:
    manifests: dict[Digest, Manifest] = field(default_factory=dict)
    tags: dict[str, Digest] = field(default_factory=dict)
    blobs: dict[Digest, bytes] = field(default_factory=dict)


class Gauge:
    """Counts operations in flight and remembers the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        self.now -= 1


class MemoryTarget:
    """Repositories of one place, keyed by `registry/repository`."""

    def __init__(self, *, validate: bool = True, delay: float = 0.0) -> None:
        self.repos: dict[str, Repository] = defaultdict(Repository)
        self.validate = validate
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.failures: dict[tuple[str, str], Exception] = {}
        self.uploads = Gauge()
        self.requests = Gauge()
        self.interrupt_uploads: set[Digest] = set()

    # --- test helpers ----------------------------------------------------------------------

    def fail(self, operation: str, what: str | Digest, error: Exception) -> None:
        """Make `operation` on `what` (a digest or a tag) raise `error` from now on."""
        self.failures[(operation, str(what))] = error

    def ops(self, operation: str) -> list[str]:
        return [what for op, what in self.calls if op == operation]

    async def _enter(self, operation: str, what: str) -> None:
        self.calls.append((operation, what))
        error = self.failures.get((operation, what))
        if error is not None:
            raise error
        if self.delay:
            await asyncio.sleep(self.delay)

    def _digest(self, ref: Reference) -> Digest | None:
        repo = self.repos[ref.name]
        return ref.digest if ref.digest is not None else repo.tags.get(ref.tag or "")

    # --- Target ----------------------------------------------------------------------------

    async def manifest_get(self, ref: Reference) -> Manifest:
        with self.requests:
            await self._enter("manifest_get", ref.reference)
            digest = self._digest(ref)
            manifest = self.repos[ref.name].manifests.get(digest) if digest else None
            if manifest is None:
                raise ManifestUnknown(f"manifest {ref} is unknown")
            return manifest

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        with self.requests:
            await self._enter("manifest_head", ref.reference)
            digest = self._digest(ref)
            manifest = self.repos[ref.name].manifests.get(digest) if digest else None
            return manifest.descriptor() if manifest is not None else None

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Descriptor:
        with self.requests:
            await self._enter("manifest_put", ref.reference)
            repo = self.repos[ref.name]
            if self.validate:
                for blob in manifest.blobs:
                    if blob.digest not in repo.blobs:
                        raise ManifestBlobUnknown(f"blob {blob.digest} is not in {ref.name}")
                for child in manifest.children:
                    if child.digest not in repo.manifests:
                        raise ManifestBlobUnknown(f"manifest {child.digest} is not in {ref.name}")
            repo.manifests[manifest.digest] = manifest
            if ref.tag is not None:
                repo.tags[ref.tag] = manifest.digest
            return manifest.descriptor()

    async def tag_list(self, ref: Reference) -> list[str]:
        await self._enter("tag_list", ref.name)
        return sorted(self.repos[ref.name].tags)

    async def blob_head(self, ref: Reference, desc: Descriptor) -> Descriptor | None:
        with self.requests:
            await self._enter("blob_head", str(desc.digest))
            return desc if desc.digest in self.repos[ref.name].blobs else None

    def blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        return self._blob_get(ref, desc)

    async def _blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        await self._enter("blob_get", str(desc.digest))
        data = self.repos[ref.name].blobs.get(desc.digest)
        if data is None:
            raise BlobUnknown(f"blob {desc.digest} is not in {ref.name}")
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]

    async def blob_put(self, ref: Reference, desc: Descriptor, body: BlobBody) -> Descriptor:
        with self.uploads:
            await self._enter("blob_put", str(desc.digest))
            if desc.digest in self.interrupt_uploads and callable(body):
                self.interrupt_uploads.discard(desc.digest)
                async for _ in body():
                    break  # a connection lost after the first chunk: send again
            data = await _read(body)
            if Digest.of(data, desc.digest.algorithm) != desc.digest or len(data) != desc.size:
                raise DigestInvalid(f"blob {desc.digest} does not match its bytes")
            self.repos[ref.name].blobs[desc.digest] = data
            return desc

    async def blob_mount(self, ref: Reference, desc: Descriptor, from_repository: str) -> bool:
        await self._enter("blob_mount", str(desc.digest))
        other = self.repos.get(f"{ref.registry}/{from_repository}")
        if other is None or desc.digest not in other.blobs:
            return False
        self.repos[ref.name].blobs[desc.digest] = other.blobs[desc.digest]
        return True

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        subject = digest or self._digest(ref)
        with self.requests:
            await self._enter("referrers", str(subject))
            return [
                Descriptor(m.media_type, m.digest, len(m.raw), m.artifact_type, dict(m.annotations))
                for m in self.repos[ref.name].manifests.values()
                if m.subject is not None
                and m.subject.digest == subject
                and (artifact_type is None or m.artifact_type == artifact_type)
            ]

    async def close(self) -> None:
        pass


async def _read(body: BlobBody) -> bytes:
    if isinstance(body, bytes):
        return body
    stream = body() if callable(body) else body
    data = bytearray()
    async for chunk in stream:
        data += chunk
    return bytes(data)


def _is_a_target(target: MemoryTarget) -> Target:
    return target


# --- filling a target --------------------------------------------------------------------------


def store(target: MemoryTarget, ref: Reference, image: Image, tag: str | None = None) -> Manifest:
    """Put an image's blobs and manifest in `ref`'s repository (tagged `tag` if given)."""
    repo = target.repos[ref.name]
    for blob in image.blobs():
        repo.blobs[Digest.parse(blob.digest)] = blob.data
    manifest = parse_manifest(image.manifest.data)
    repo.manifests[manifest.digest] = manifest
    if tag is not None:
        repo.tags[tag] = manifest.digest
    return manifest


def store_index(
    target: MemoryTarget, ref: Reference, entries: list[dict[str, Any]], tag: str | None = None
) -> Manifest:
    """Put an index over `entries` (JSON descriptors) in `ref`'s repository."""
    manifest = parse_manifest(index_bytes(entries))
    repo = target.repos[ref.name]
    repo.manifests[manifest.digest] = manifest
    if tag is not None:
        repo.tags[tag] = manifest.digest
    return manifest


def as_descriptor(manifest: Manifest, **extra: Any) -> dict[str, Any]:
    """The JSON descriptor of `manifest` (for an index entry or a subject)."""
    return {**manifest.descriptor().to_json(), **extra}
