"""`StoreTarget`: Dockyard's own store as a copy `Target`, in the same process, without HTTP.

The hub mirrors into itself through this. Every operation goes through the same registry
services, in the same order, as the /v2 handlers do: the access policy for `subject`
(`Repositories.authorize`), create-on-push, digest verification of uploads, manifests stored
only when everything they name is there, immutable tags. A reference's registry part is
ignored: it is always this registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from dockyard.auth.policy import Action, Subject
from dockyard.client.streams import body_chunks, limited, verified
from dockyard.client.target import BlobBody, Target
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestUnknown,
    NameUnknown,
    OciError,
    SizeInvalid,
)
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.registry.service import Registry


class StoreTarget:
    """Manifests, blobs, tags and referrers of this registry's repositories, as `subject` may
    see and change them."""

    def __init__(self, registry: Registry, subject: Subject) -> None:
        self.registry = registry
        self.subject = subject

    def __repr__(self) -> str:
        return f"StoreTarget(subject={self.subject.name!r})"

    async def _pullable(self, ref: Reference) -> RepositoryRow | None:
        """The repository if `subject` may pull from it (None: it does not exist)."""
        return await self.registry.repositories.authorize(self.subject, ref.repository, Action.PULL)

    async def _existing(self, ref: Reference) -> RepositoryRow:
        repository = await self._pullable(ref)
        if repository is None:
            raise NameUnknown(
                f"repository {ref.repository!r} is not known to this registry",
                {"name": ref.repository},
            )
        return repository

    # --- manifests -------------------------------------------------------------------------

    async def manifest_get(self, ref: Reference) -> Manifest:
        """The manifest `ref` names, exact bytes, digest checked; `ManifestUnknown` (or
        `NameUnknown` for a repository that does not exist) when there is none."""
        repository = await self._existing(ref)
        found = await self.registry.manifests.get(repository, ref.reference)
        expected = Digest.parse(found.digest)
        manifest = parse_manifest(found.content, found.media_type, expected.algorithm)
        if manifest.digest != expected or (ref.digest is not None and ref.digest != expected):
            raise DigestInvalid(
                f"manifest {ref} is stored as {expected} but its bytes have digest "
                f"{manifest.digest}"
            )
        return manifest

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        """The descriptor of the manifest `ref` names, None when there is none."""
        try:
            repository = await self._existing(ref)
            found = await self.registry.manifests.get(repository, ref.reference)
        except (ManifestUnknown, NameUnknown):
            return None
        return Descriptor(found.media_type, Digest.parse(found.digest), len(found.content))

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Descriptor:
        """Store `manifest`'s exact bytes under its digest and `ref`'s tag, as a PUT to
        /v2/<name>/manifests/<digest>?tag=<tag> does (so a sha512 manifest keeps its digest
        when tagged); its subject makes it a referrer."""
        if ref.digest is not None and ref.digest != manifest.digest:
            raise DigestInvalid(f"refusing to push manifest {manifest.digest} as {ref}")
        await self.registry.repositories.authorize(self.subject, ref.repository, Action.PUSH)
        pushed = await self.registry.manifests.put(
            ref.repository,
            str(manifest.digest),
            manifest.raw,
            manifest.media_type,
            pusher=self.subject.name or self.subject.org,
            tags=(ref.tag,) if ref.tag is not None else (),
        )
        if pushed.manifest.digest != manifest.digest:
            raise DigestInvalid(f"stored {ref} as {pushed.manifest.digest}, not {manifest.digest}")
        return manifest.descriptor()

    # --- tags ------------------------------------------------------------------------------

    async def tag_list(self, ref: Reference) -> list[str]:
        """Every tag of `ref`'s repository, in lexical order."""
        repository = await self._existing(ref)
        names, _ = await self.registry.manifests.tags(repository, None, None)
        return names

    # --- blobs -----------------------------------------------------------------------------

    async def blob_head(self, ref: Reference, desc: Descriptor) -> Descriptor | None:
        """`desc` with the stored size, if `ref`'s repository has the blob."""
        repository = await self._pullable(ref)
        try:
            info = await self.registry.blobs.stat(repository, desc.digest)
        except BlobUnknown:
            return None
        return Descriptor(
            desc.media_type,
            desc.digest,
            info.size,
            desc.artifact_type,
            desc.annotations,
            desc.platform,
        )

    async def blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        """The blob's bytes from the blob store, verified as they stream: `SizeInvalid` or
        `DigestInvalid` comes before the chunk that would complete a wrong blob."""
        repository = await self._pullable(ref)
        info = await self.registry.blobs.stat(repository, desc.digest)
        if info.size != desc.size:
            raise SizeInvalid(
                f"blob {desc.digest} has {info.size} bytes in {ref.repository!r}, the "
                f"descriptor says {desc.size}"
            )
        where = f"blob {desc.digest} in {ref.repository!r}"
        async for chunk in verified(self.registry.store.blobs.read(desc.digest), desc, where):
            yield chunk

    async def blob_put(self, ref: Reference, desc: Descriptor, body: BlobBody) -> Descriptor:
        """Upload a blob to `ref`'s repository through an upload session (streamed to the
        upload store, digest verified, then linked); a wrong body leaves nothing behind."""
        uploads = self.registry.uploads
        repository = await self.registry.repositories.ensure(self.subject, ref.repository)
        upload_id = await uploads.start(repository)
        where = f"blob {desc.digest} for {ref.repository!r}"
        try:
            await uploads.complete(
                repository,
                upload_id,
                desc.digest,
                limited(body_chunks(body), desc, where),
                desc.size,
            )
        except BaseException:
            with contextlib.suppress(BlobUploadUnknown):
                await uploads.cancel(repository, upload_id)  # gone already after DigestInvalid
            raise
        return desc

    async def blob_mount(self, ref: Reference, desc: Descriptor, from_repository: str) -> bool:
        """Link a blob of `from_repository` into `ref`'s repository; False when `subject` may
        not pull from there or it does not have the blob (the caller then copies it)."""
        repositories = self.registry.repositories
        target = await repositories.ensure(self.subject, ref.repository)
        try:
            source = await repositories.authorize(self.subject, from_repository, Action.PULL)
        except OciError:
            return False  # as over HTTP: an unmountable blob gets an ordinary upload
        return await self.registry.blobs.mount(source, target, desc.digest)

    # --- referrers -------------------------------------------------------------------------

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """The referrers of `digest` (default: the manifest `ref` names) in `ref`'s
        repository, as the referrers API lists them."""
        subject = digest or ref.digest
        if subject is None:
            found = await self.manifest_head(ref)
            if found is None:
                raise ManifestUnknown(f"manifest {ref} is not known to this registry")
            subject = found.digest
        repository = await self._pullable(ref)
        return await self.registry.referrers.list(repository, subject, artifact_type)

    async def close(self) -> None:
        """Nothing to release: the registry belongs to the application."""


def _is_a_target(target: StoreTarget) -> Target:
    """Type-checked proof that this registry's own store is a copy `Target`."""
    return target
