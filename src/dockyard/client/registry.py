"""`RegistryClient`: the distribution API of remote registries, one operation per method, each
taking a `Reference` (and a `Descriptor` for blobs) as regclient's scheme does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

import aiohttp
from yarl import URL

from dockyard.client import blobs, uploads
from dockyard.client.challenge import scope_for
from dockyard.client.hosts import Client
from dockyard.client.links import next_link
from dockyard.client.referrers import MAX_PAGES, Referrers
from dockyard.client.responses import read_body
from dockyard.client.target import Target
from dockyard.client.transport import Body, Transport
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import (
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    OciError,
    PayloadTooLarge,
    Unsupported,
)
from dockyard.oci.manifest import MAX_MANIFEST_SIZE, Manifest, parse_manifest
from dockyard.oci.reference import Reference

MANIFEST_ACCEPT: tuple[str, ...] = (
    mt.OCI_INDEX,
    mt.OCI_MANIFEST,
    mt.DOCKER_MANIFEST_LIST,
    mt.DOCKER_MANIFEST,
)
MAX_TAG_PAGE = 16 * 1024 * 1024


def _pull(ref: Reference) -> frozenset[str]:
    return frozenset({scope_for(ref.repository, "pull")})


def _push(ref: Reference) -> frozenset[str]:
    return frozenset({scope_for(ref.repository, "pull", "push")})


def _delete(ref: Reference) -> frozenset[str]:
    return frozenset({scope_for(ref.repository, "delete")})


class RegistryClient:
    """Operations on remote registries over a `Client`'s transports (one per host).

    `async with RegistryClient(Client(...)) as registry:` closes the client's sessions at the
    end; a RegistryClient made over a shared client can be dropped without closing anything.
    """

    def __init__(self, client: Client | None = None) -> None:
        self.client = client or Client()
        self.referrers_store = Referrers(self)

    def transport(self, ref: Reference | str) -> Transport:
        """The transport for `ref`'s registry; `NameInvalid` for a layout (`ocidir://`)
        reference, which names a folder, not a host to resolve."""
        if isinstance(ref, Reference):
            ref.require_registry()
            return self.client.transport(ref.registry)
        return self.client.transport(ref)

    async def ping(self, registry: str) -> None:
        """Check that `registry` speaks the distribution API and accepts our credentials
        (GET /v2/); raises `Unauthorized` or another `OciError` if not."""
        async with self.transport(registry).request("GET", "/v2/"):
            pass

    # --- manifests -------------------------------------------------------------------------

    async def manifest_get(
        self, ref: Reference, accept: Sequence[str] = MANIFEST_ACCEPT
    ) -> Manifest:
        """The manifest `ref` names, with its exact bytes; raises `DigestInvalid` when they do
        not match the digest in `ref` or the registry's `Docker-Content-Digest`, and
        `ManifestUnknown` (or `NameUnknown`) when there is none."""
        path = f"/v2/{ref.repository}/manifests/{ref.reference}"
        request = self.transport(ref).request(
            "GET", path, scopes=_pull(ref), headers={"Accept": ", ".join(accept)}
        )
        async with _not_found(ManifestUnknown, f"manifest {ref}"), request as response:
            raw = await _read_limited(response, MAX_MANIFEST_SIZE, f"manifest {ref}")
            content_type = response.headers.get("Content-Type")
            header = response.headers.get("Docker-Content-Digest")
        expected = ref.digest or _header_digest(header, ref)
        manifest = parse_manifest(raw, content_type, expected.algorithm if expected else "sha256")
        if expected is not None and manifest.digest != expected:
            raise DigestInvalid(f"manifest {ref} has digest {manifest.digest}, expected {expected}")
        return manifest

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        """The descriptor of the manifest `ref` names, or None if the registry has none.

        Falls back to GET when the registry's HEAD answer lacks the digest or the size."""
        path = f"/v2/{ref.repository}/manifests/{ref.reference}"
        try:
            async with self.transport(ref).request(
                "HEAD", path, scopes=_pull(ref), headers={"Accept": ", ".join(MANIFEST_ACCEPT)}
            ) as response:
                header = response.headers.get("Docker-Content-Digest")
                size = response.content_length
                media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        except OciError as err:
            if err.status == 404:
                return None
            raise
        digest = _header_digest(header, ref) or ref.digest
        if digest is None or size is None or media_type not in mt.MANIFESTS:
            try:
                return (await self.manifest_get(ref)).descriptor()
            except OciError as err:
                if err.status == 404:
                    return None
                raise
        if ref.digest is not None and digest != ref.digest:
            raise DigestInvalid(f"registry answered digest {digest} for {ref}")
        return Descriptor(media_type, digest, size)

    async def manifest_put(
        self, ref: Reference, manifest: Manifest, *, update_referrers: bool = True
    ) -> Descriptor:
        """Push `manifest`'s exact bytes to `ref`'s tag (or digest); its descriptor.

        A manifest with a `subject` pushed to a registry that does not confirm it with
        `OCI-Subject` (no referrers API) is also added to the subject's fallback tag index,
        unless `update_referrers` is false."""
        if ref.digest is not None and ref.digest != manifest.digest:
            raise DigestInvalid(f"refusing to push manifest {manifest.digest} as {ref}")
        target = ref.tag if ref.tag is not None else str(manifest.digest)
        # a registry digests what is pushed by tag with sha256, so any other digest goes by
        # digest with the tag as a parameter (OCI-Tag confirms it, as regclient does)
        params: list[tuple[str, str]] = []
        if ref.tag is not None and manifest.digest.algorithm != "sha256":
            target, params = str(manifest.digest), [("tag", ref.tag)]
        async with self.transport(ref).request(
            "PUT",
            f"/v2/{ref.repository}/manifests/{target}",
            scopes=_push(ref),
            headers={"Content-Type": manifest.media_type},
            params=params,
            body=manifest.raw,
        ) as response:
            stored = response.headers.get("Docker-Content-Digest")
            subject_header = response.headers.get("OCI-Subject")
            applied = {
                t.strip() for v in response.headers.getall("OCI-Tag", []) for t in v.split(",")
            }
        if params and ref.tag not in applied:
            raise Unsupported(
                f"{ref.registry} stored {manifest.digest} but did not confirm tag {ref.tag!r} "
                "(no OCI-Tag): a manifest with a non-sha256 digest can only be tagged where the "
                "registry supports tag parameters on a push by digest"
            )
        if stored and stored != str(manifest.digest):
            raise DigestInvalid(f"registry stored {ref} as {stored}, expected {manifest.digest}")
        subject = manifest.subject
        if subject is not None:
            confirmed = subject_header == str(subject.digest)
            if confirmed:
                self.referrers_store.api[(ref.registry, ref.repository)] = True
            elif update_referrers:
                await self.referrers_store.put_fallback(
                    ref, subject.digest, add=[manifest.descriptor()]
                )
        return manifest.descriptor()

    async def manifest_delete(self, ref: Reference) -> None:
        """Delete the manifest `ref` names (by digest; by tag where the registry allows)."""
        path = f"/v2/{ref.repository}/manifests/{ref.reference}"
        request = self.transport(ref).request("DELETE", path, scopes=_delete(ref))
        async with _not_found(ManifestUnknown, f"manifest {ref}"), request:
            pass

    # --- tags ------------------------------------------------------------------------------

    async def tag_list(self, ref: Reference, page_size: int | None = None) -> list[str]:
        """Every tag of `ref`'s repository, following `Link` pages (`page_size` per page);
        `NameUnknown` when the registry has no such repository."""
        transport = self.transport(ref)
        url = transport.url(f"/v2/{ref.repository}/tags/list")
        params = {"n": str(page_size)} if page_size else {}
        tags: list[str] = []
        seen = set()
        for _ in range(MAX_PAGES * 100):
            request = transport.request("GET", url, scopes=_pull(ref), params=params)
            async with _not_found(NameUnknown, f"repository {ref.name}"), request as response:
                body = await _read_limited(response, MAX_TAG_PAGE, f"tags of {ref.name}")
                following = next_link(response.headers.getall("Link", []), response.url)
            tags += _tag_page(body, ref)
            if following is None or following in seen:
                break
            seen.add(following)
            url, params = following, {}
        return tags

    # --- blobs -----------------------------------------------------------------------------

    async def blob_head(self, ref: Reference, desc: Descriptor) -> Descriptor | None:
        """`desc` with the size the registry reports, if `ref`'s repository has the blob."""
        path = f"/v2/{ref.repository}/blobs/{desc.digest}"
        try:
            async with self.transport(ref).request("HEAD", path, scopes=_pull(ref)) as response:
                size = response.content_length
        except OciError as err:
            if err.status == 404:
                return None
            raise
        return Descriptor(
            desc.media_type,
            desc.digest,
            desc.size if size is None else size,
            desc.artifact_type,
            desc.annotations,
            desc.platform,
        )

    def blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        """The blob's bytes as they arrive, verified: `SizeInvalid` or `DigestInvalid` is
        raised before the chunk that would complete a wrong blob. Close the iterator (e.g.
        `contextlib.aclosing`) if you stop early."""
        path = f"/v2/{ref.repository}/blobs/{desc.digest}"
        return blobs.download(self.transport(ref), path, desc, _pull(ref))

    async def blob_put(
        self, ref: Reference, desc: Descriptor, body: Body, *, chunk_size: int | None = None
    ) -> Descriptor:
        """Upload a blob to `ref`'s repository: one streaming PUT, or PATCHes of `chunk_size`
        bytes (default: the registry's `blob_chunk` setting; 0 means one PUT).

        `body` is bytes, a callable that opens the byte stream afresh (so a failed upload can be
        retried) or a stream (sent once)."""
        transport = self.transport(ref)
        size = transport.settings.blob_chunk if chunk_size is None else chunk_size
        if size > 0:
            await uploads.put_chunked(transport, ref.repository, desc, body, size, _push(ref))
        else:
            await uploads.put_monolithic(transport, ref.repository, desc, body, _push(ref))
        return desc

    async def blob_mount(self, ref: Reference, desc: Descriptor, from_repository: str) -> bool:
        """Ask the registry to link blob `desc` from `from_repository` into `ref`'s repository
        without sending it; whether it did (if not, upload it)."""
        transport = self.transport(ref)
        scopes = _push(ref) | {scope_for(from_repository, "pull")}
        params = {"mount": str(desc.digest), "from": from_repository}
        path = f"/v2/{ref.repository}/blobs/uploads/"
        async with transport.request("POST", path, scopes=scopes, params=params) as response:
            if response.status == 201:
                return True
            location = response.headers.get("Location")
            session = response.url.join(URL(location)) if location else None
        if session is not None:
            await uploads.cancel(transport, session, scopes)
        return False

    async def blob_delete(self, ref: Reference, desc: Descriptor) -> None:
        """Delete blob `desc` from `ref`'s repository."""
        path = f"/v2/{ref.repository}/blobs/{desc.digest}"
        async with self.transport(ref).request("DELETE", path, scopes=_delete(ref)):
            pass

    # --- referrers -------------------------------------------------------------------------

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """The referrers of `digest` (default: the digest `ref` names or resolves to) in
        `ref`'s repository: by the referrers API, or by the fallback tag index."""
        subject = digest or ref.digest
        if subject is None:
            found = await self.manifest_head(ref)
            if found is None:
                raise ManifestUnknown(f"manifest {ref} is not known to the registry")
            subject = found.digest
        return await self.referrers_store.lookup(ref, subject, artifact_type)

    async def referrers_put_fallback(
        self,
        ref: Reference,
        subject: Digest,
        *,
        add: Sequence[Descriptor] = (),
        remove: Sequence[Digest] = (),
    ) -> Descriptor | None:
        """Update the fallback tag index of `subject` in `ref`'s repository (add descriptors,
        remove digests) and push it; its descriptor, or None when nothing changed."""
        return await self.referrers_store.put_fallback(ref, subject, add=add, remove=remove)

    # --- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _not_found:
    """Turn a bare 404 (no spec error body) into `cls`, naming `what`."""

    def __init__(self, cls: type[OciError], what: str) -> None:
        self.cls, self.what = cls, what

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, OciError) and exc.status == 404 and exc.code == "UNKNOWN":
            raise self.cls(f"{self.what} is not known to the registry ({exc.message})") from exc


def _header_digest(header: str | None, ref: Reference) -> Digest | None:
    if not header:
        return None
    try:
        return Digest.parse(header.strip())
    except DigestInvalid:
        raise DigestInvalid(
            f"registry answered an invalid Docker-Content-Digest {header!r} for {ref}"
        ) from None


async def _read_limited(response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    length = response.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"{what} is {length} bytes; at most {limit} are read")
    body = await read_body(response, limit)
    if len(body) > limit:
        raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
    return body


def _tag_page(body: bytes, ref: Reference) -> list[str]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ManifestInvalid(f"tags of {ref.name}: the registry answered invalid JSON") from exc
    tags = data.get("tags") if isinstance(data, dict) else None
    if tags is None:
        return []  # distribution answers `"tags": null` for a repository without tags
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ManifestInvalid(f"tags of {ref.name}: `tags` is not a list of strings")
    return tags


def _is_a_target(client: RegistryClient) -> Target:
    """Type-checked proof that a remote registry is a copy `Target`."""
    return client
