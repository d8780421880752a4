"""`LayoutTarget`: an OCI image layout folder as a copy `Target` (regclient's `ocidir` scheme).

A layout holds one repository's worth of content, so only a `Reference`'s tag and digest are
used (its `ocidir://` path names the folder for people; the target's `root` is what is read):
its digest names a blob (`blobs/<alg>/<encoded>`), its tag the `index.json` entry
whose `org.opencontainers.image.ref.name` annotation is that tag, as skopeo, umoci and
regclient write it (`oci:DIR:TAG`). Manifests are stored as blobs; a tagged one also gets an
`index.json` entry (replacing the entry the tag had). Referrers live where regclient keeps them:
in an image index tagged with the fallback tag `<alg>-<encoded>` of their subject; referrers
that are only listed in `index.json` (as oras and other tools leave them) are found too.

Every read is verified against its digest; every write is verified, durable and atomic (see
`layoutfs`); all file I/O runs in worker threads, blobs in chunks, never whole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

from dockyard.client import layoutfs as fs
from dockyard.client.streams import CHUNK_SIZE, Verifier, aclose, body_chunks
from dockyard.client.target import BlobBody, Target
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    OciError,
    PayloadTooLarge,
    SizeInvalid,
)
from dockyard.oci.manifest import MAX_MANIFEST_SIZE, Manifest, parse_manifest
from dockyard.oci.reference import OCIDIR_PREFIX, Reference
from dockyard.oci.referrers import fallback_tag

WRITE_BUFFER = 4 * 1024 * 1024


def parse_layout_reference(text: str) -> tuple[Path, Reference]:
    """Split `oci:DIR[:TAG|@DIGEST]` (skopeo's form) or `ocidir://DIR[:TAG|@DIGEST]` (regctl's;
    `DIR` may not contain ':') into the folder and its `Reference.layout`; no tag means
    `latest`. Raises `ValueError` or an `OciError` saying what is wrong."""
    if text.startswith(OCIDIR_PREFIX):
        ref = Reference.parse(text)
    else:
        rest = text.removeprefix("oci:")
        if rest == text or not rest:
            raise ValueError(f"{text!r} is not an OCI layout reference: expected oci:DIR[:TAG]")
        try:
            ref = Reference.parse(OCIDIR_PREFIX + rest)
        except OciError as exc:
            raise ValueError(f"{text!r}: expected oci:DIR[:TAG] or oci:DIR@DIGEST") from exc
    return Path(ref.path or ""), ref


class LayoutTarget:
    """Manifests, blobs, tags and referrers of the OCI image layout at `root` (created by the
    first write). One instance per folder and process serializes its `index.json` updates with
    an asyncio lock; other writers are kept out by a `flock` on the folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._lock = asyncio.Lock()
        # manifest digest → (its subject's digest, its descriptor); content never changes
        self._subjects: dict[Digest, tuple[Digest | None, Descriptor]] = {}

    def __repr__(self) -> str:
        return f"LayoutTarget({str(self.root)!r})"

    # --- manifests -------------------------------------------------------------------------

    async def manifest_get(self, ref: Reference) -> Manifest:
        """The manifest `ref` names, its bytes verified against the digest; `ManifestUnknown`
        when the layout has none."""
        desc = await self._resolve(ref)
        if desc is None:
            raise ManifestUnknown(f"manifest {_name(ref)} is not in layout {self.root}")
        return await asyncio.to_thread(self._read_manifest, desc)

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        """The descriptor of the manifest `ref` names (media type, digest, size); None when the
        layout has none."""
        desc = await self._resolve(ref)
        if desc is None:
            return None
        if desc.media_type not in mt.MANIFESTS:  # no index.json entry says what it is: read it
            try:
                desc = (await self.manifest_get(ref)).descriptor()
            except (ManifestInvalid, PayloadTooLarge):
                return None  # a blob that is not a manifest (a layer, a config)
        return Descriptor(desc.media_type, desc.digest, desc.size)

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Descriptor:
        """Store `manifest`'s exact bytes as a blob once every blob and child manifest it names
        is in the layout; point `ref`'s tag at it; add it to its subject's fallback index."""
        if ref.digest is not None and ref.digest != manifest.digest:
            raise DigestInvalid(f"refusing to store manifest {manifest.digest} as {ref.digest}")
        desc = manifest.descriptor()
        await asyncio.to_thread(self._check_references, manifest)
        await asyncio.to_thread(fs.write_blob, self.root, desc, manifest.raw)
        if ref.tag is not None or manifest.subject is not None:
            async with self._lock:
                await asyncio.to_thread(fs.update_index, self.root, self._indexer(ref, manifest))
        return desc

    def _indexer(self, ref: Reference, manifest: Manifest) -> Callable[[fs.Index], bool]:
        def change(index: fs.Index) -> bool:
            changed = False
            if ref.tag is not None:
                fs.set_tag(index, ref.tag, manifest.descriptor())
                changed = True
            if manifest.subject is not None:
                changed |= self._add_referrer(index, manifest.subject.digest, manifest)
            return changed

        return change

    def _add_referrer(self, index: fs.Index, subject: Digest, manifest: Manifest) -> bool:
        """Add `manifest` to `subject`'s fallback tag index (blocking; under the lock)."""
        tag = fallback_tag(subject)
        current = fs.find_tag(index, tag)
        body = (
            json.loads(self._read_manifest(current).raw)
            if current is not None
            else fs.empty_index()
        )
        entries = body.get("manifests")
        if not isinstance(entries, list):
            raise ManifestInvalid(f"layout {self.root}: tag {tag} does not hold an image index")
        if any(isinstance(e, dict) and e.get("digest") == str(manifest.digest) for e in entries):
            return False
        entries.append(manifest.descriptor().to_json())
        raw = fs.index_bytes(body)
        referrers = parse_manifest(raw, mt.OCI_INDEX)
        fs.write_blob(self.root, referrers.descriptor(), raw)
        fs.set_tag(index, tag, referrers.descriptor())
        return True

    def _check_references(self, manifest: Manifest) -> None:
        """`ManifestBlobUnknown` unless every blob and child `manifest` names is stored with
        its size (blocking), as a registry checks before it accepts a manifest."""
        for desc in (*manifest.blobs, *manifest.children):
            if _non_distributable(desc.media_type):
                continue
            try:
                size = fs.blob_path(self.root, desc.digest).stat().st_size
            except FileNotFoundError:
                raise ManifestBlobUnknown(
                    f"{desc.digest} named by manifest {manifest.digest} is not in layout "
                    f"{self.root}: store it first",
                    {"digest": str(desc.digest)},
                ) from None
            if size != desc.size:
                raise ManifestInvalid(
                    f"descriptor of {desc.digest} says {desc.size} bytes but layout {self.root} "
                    f"holds {size}",
                    {"digest": str(desc.digest)},
                )

    async def _resolve(self, ref: Reference) -> Descriptor | None:
        """The descriptor `ref` names: by digest (from a stored blob), else by tag."""
        index = await asyncio.to_thread(fs.read_index, self.root)
        if ref.digest is not None:
            path = fs.blob_path(self.root, ref.digest)
            if not await asyncio.to_thread(path.is_file):
                return None
            found = fs.find_digest(index, ref.digest)
            if found is not None:
                return found
            size = (await asyncio.to_thread(path.stat)).st_size
            return Descriptor("", ref.digest, size)  # media type unknown until read
        desc = fs.find_tag(index, ref.tag or "latest")
        if desc is None or not await asyncio.to_thread(
            fs.blob_path(self.root, desc.digest).is_file
        ):
            return None
        return desc

    def _read_manifest(self, desc: Descriptor) -> Manifest:
        """The manifest blob `desc`, verified and parsed (blocking)."""
        try:
            raw = fs.read_manifest_blob(self.root, desc, MAX_MANIFEST_SIZE)
        except FileNotFoundError:
            raise ManifestUnknown(f"manifest {desc.digest} is not in layout {self.root}") from None
        if len(raw) != desc.size:
            raise SizeInvalid(
                f"layout {self.root}: index.json says manifest {desc.digest} has {desc.size} "
                f"bytes, the blob has {len(raw)}"
            )
        return parse_manifest(raw, desc.media_type or None, desc.digest.algorithm)

    # --- tags ------------------------------------------------------------------------------

    async def tag_list(self, ref: Reference) -> list[str]:
        """Every tag of the layout (`index.json` ref names that are not full image names)."""
        return fs.tags(await asyncio.to_thread(fs.read_index, self.root))

    # --- blobs -----------------------------------------------------------------------------

    async def blob_head(self, ref: Reference, desc: Descriptor) -> Descriptor | None:
        """`desc` with the stored size, if the layout has the blob."""
        try:
            stat = await asyncio.to_thread(fs.blob_path(self.root, desc.digest).stat)
        except FileNotFoundError:
            return None
        return Descriptor(
            desc.media_type,
            desc.digest,
            stat.st_size,
            desc.artifact_type,
            desc.annotations,
            desc.platform,
        )

    async def blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks read (and hashed) in a worker thread; `SizeInvalid` or
        `DigestInvalid` comes before the chunk that would complete a wrong blob."""
        where = f"layout {self.root}"
        verifier = Verifier(desc, where)
        try:
            handle = await asyncio.to_thread(fs.blob_path(self.root, desc.digest).open, "rb")
        except FileNotFoundError:
            raise BlobUnknown(
                f"blob {desc.digest} is not in layout {self.root}", {"digest": str(desc.digest)}
            ) from None
        try:
            while True:
                chunk = await asyncio.to_thread(_read_hashed, handle, verifier)
                if not chunk:
                    break
                if verifier.received == desc.size:
                    verifier.finish()
                yield chunk
            verifier.finish()
        finally:
            handle.close()

    async def blob_put(self, ref: Reference, desc: Descriptor, body: BlobBody) -> Descriptor:
        """Store a blob: streamed to a temp file in buffers of a few MiB (hashed and written in
        a worker thread while the next fills), verified, fsynced, renamed into place."""
        await asyncio.to_thread(fs.ensure_layout, self.root)
        writer = await asyncio.to_thread(fs.BlobWriter, self.root, desc, f"layout {self.root}")
        chunks = body_chunks(body)
        try:
            await _pump(chunks, writer)
            await asyncio.to_thread(writer.commit)
        finally:
            await aclose(chunks)
            writer.abort()
        return desc

    async def blob_mount(self, ref: Reference, desc: Descriptor, from_repository: str) -> bool:
        """False: a layout has one repository, so there is nothing to mount from."""
        return False

    # --- referrers -------------------------------------------------------------------------

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """The referrers of `digest` (default: the manifest `ref` names): the entries of its
        fallback tag index, then manifests listed in `index.json` whose subject it is."""
        subject = digest or ref.digest
        if subject is None:
            found = await self.manifest_head(ref)
            if found is None:
                raise ManifestUnknown(f"manifest {_name(ref)} is not in layout {self.root}")
            subject = found.digest
        index = await asyncio.to_thread(fs.read_index, self.root)
        found_list = await self._fallback_entries(index, subject)
        seen = {d.digest for d in found_list}
        for desc in await asyncio.to_thread(self._listed_referrers, index, subject):
            if desc.digest not in seen:
                found_list.append(desc)
                seen.add(desc.digest)
        if artifact_type is not None:
            found_list = [d for d in found_list if d.artifact_type == artifact_type]
        return found_list

    async def _fallback_entries(self, index: fs.Index, subject: Digest) -> list[Descriptor]:
        desc = fs.find_tag(index, fallback_tag(subject))
        if desc is None:
            return []
        fallback = await asyncio.to_thread(self._read_manifest, desc)
        if not fallback.is_index:
            raise ManifestInvalid(
                f"layout {self.root}: tag {fallback_tag(subject)} does not hold an image index"
            )
        return list(fallback.children)

    def _listed_referrers(self, index: fs.Index, subject: Digest) -> list[Descriptor]:
        """Manifests listed in `index.json` that refer to `subject` (blocking; each manifest is
        read once per instance: content under a digest never changes)."""
        found = []
        for entry in index["manifests"]:
            try:
                desc = Descriptor.from_json(entry)
            except OciError:
                continue
            if desc.media_type not in mt.MANIFESTS:
                continue
            if desc.digest not in self._subjects:
                try:
                    manifest = self._read_manifest(desc)
                except OciError:
                    continue  # a dangling or broken entry refers to nothing
                refers = manifest.subject.digest if manifest.subject is not None else None
                self._subjects[desc.digest] = (refers, manifest.descriptor())
            refers, described = self._subjects[desc.digest]
            if refers == subject:
                found.append(described)
        return found

    # --- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Nothing to release: files are closed after every operation."""


def _read_hashed(handle: BinaryIO, verifier: Verifier) -> bytes:
    chunk = handle.read(CHUNK_SIZE)
    if chunk:
        verifier.update(chunk)
    return chunk


async def _pump(chunks: AsyncIterator[bytes], writer: fs.BlobWriter) -> None:
    """Feed `chunks` to `writer` in WRITE_BUFFER pieces, one written while the next fills."""
    buffer = bytearray()
    pending: asyncio.Future[None] | None = None
    try:
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= WRITE_BUFFER:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(asyncio.to_thread(writer.write, bytes(buffer)))
                buffer.clear()
    finally:
        if pending is not None:
            await pending
    if buffer:
        await asyncio.to_thread(writer.write, bytes(buffer))


def _non_distributable(media_type: str) -> bool:
    """Layers that live elsewhere by design (foreign layers); a layout need not hold them."""
    return media_type == mt.DOCKER_FOREIGN_LAYER or ".nondistributable." in media_type


def _name(ref: Reference) -> str:
    return str(ref.digest) if ref.digest is not None else f":{ref.tag}"


def _is_a_target(target: LayoutTarget) -> Target:
    """Type-checked proof that an OCI layout folder is a copy `Target`."""
    return target
