"""Referrers of a manifest: by the referrers API, else by the fallback tag `<alg>-<hex>` whose
index lists them (registries without the API, like distribution 2.8), and the upkeep of that
index when such a registry receives a manifest with a `subject`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any, Protocol

from yarl import URL

from dockyard.client.challenge import scope_for
from dockyard.client.links import next_link
from dockyard.client.responses import read_body
from dockyard.client.transport import Transport
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestInvalid, NameUnknown, OciError
from dockyard.oci.manifest import MAX_MANIFEST_SIZE, Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag, is_fallback_tag

FILTERS_APPLIED = "OCI-Filters-Applied"
MAX_PAGES = 1000
# Without the referrers API each subject costs a GET of its fallback tag, mostly answered 404
# (a sync asks for every image, platform and referrer). From the LIST_AFTER-th lookup in one
# repository on, one tag listing, reused for FALLBACK_TAGS_SECONDS, answers "no fallback tag"
# without a request; a few lookups in a large repository never pay for a listing.
LIST_AFTER = 8
FALLBACK_TAGS_SECONDS = 30.0


class Ask:
    """The type of `ASK`: read what is there rather than being told."""


ASK = Ask()


class ManifestStore(Protocol):
    """What referrers need of a registry client (`RegistryClient` is one): its transport per
    registry, tag listing and manifests. A protocol, so this module does not import the client
    that holds it."""

    def transport(self, ref: Reference | str) -> Transport: ...

    async def tag_list(self, ref: Reference, page_size: int | None = None) -> list[str]: ...

    async def manifest_get(self, ref: Reference, accept: Sequence[str] = ...) -> Manifest: ...

    async def manifest_put(
        self, ref: Reference, manifest: Manifest, *, update_referrers: bool = True
    ) -> Descriptor: ...


class Referrers:
    """Lists and maintains referrers for a registry client; remembers per repository whether
    the registry has the referrers API, and serializes fallback-index updates in process."""

    def __init__(self, registry: ManifestStore) -> None:
        self.registry = registry
        self.api: dict[tuple[str, str], bool] = {}
        self._locks: dict[tuple[str, str, Digest], asyncio.Lock] = {}
        self._lookups: dict[tuple[str, str], int] = {}
        # repository → (until when, its fallback tags; None when the tags cannot be listed)
        self._tags: dict[tuple[str, str], tuple[float, set[str] | None]] = {}
        self._listing: dict[tuple[str, str], asyncio.Lock] = {}
        self._probing: dict[tuple[str, str], asyncio.Lock] = {}

    async def lookup(
        self, ref: Reference, subject: Digest, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Descriptors of the manifests whose `subject` is `subject`, in `ref`'s repository:
        from the referrers API, or from the fallback tag when the registry answers 404."""
        key = (ref.registry, ref.repository)
        if key not in self.api:
            found = await self.probe(ref, subject, artifact_type)
            if found is not None:
                return found
        if self.api.get(key, True):
            found = await self._try_api(key, ref, subject, artifact_type)
            if found is not None:
                return found
        return _filtered(await self._by_tag(ref, subject), artifact_type)

    async def probe(
        self, ref: Reference, subject: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """Find out whether `ref`'s repository has the referrers API (noted in `api`) by
        asking it for `subject`'s referrers, once: lookups made meanwhile wait for the
        answer rather than each asking (and hearing 404). The referrers found, or None when
        there is no API or another lookup already found out."""
        key = (ref.registry, ref.repository)
        async with self._probing.setdefault(key, asyncio.Lock()):
            if key in self.api:
                return None
            return await self._try_api(key, ref, subject, artifact_type)

    async def _try_api(
        self, key: tuple[str, str], ref: Reference, subject: Digest, artifact_type: str | None
    ) -> list[Descriptor] | None:
        """The referrers by the API; None (and the API noted as missing) on a 404."""
        try:
            found = await self._by_api(ref, subject, artifact_type)
        except OciError as err:
            if err.status != 404:
                raise
            self.api[key] = False
            return None
        self.api[key] = True
        return found

    async def _by_api(
        self, ref: Reference, subject: Digest, artifact_type: str | None
    ) -> list[Descriptor]:
        transport = self.registry.transport(ref)
        url: URL | None = transport.url(f"/v2/{ref.repository}/referrers/{subject}")
        params = {"artifactType": artifact_type} if artifact_type else {}
        found: list[Descriptor] = []
        filtered = not artifact_type
        for _ in range(MAX_PAGES):
            if url is None:
                break
            async with transport.request(
                "GET",
                url,
                scopes=frozenset({scope_for(ref.repository, "pull")}),
                headers={"Accept": mt.OCI_INDEX},
                params=params,
            ) as response:
                body = await read_body(response, MAX_MANIFEST_SIZE)
                applied = response.headers.get(FILTERS_APPLIED, "")
                filtered = filtered or "artifactType" in applied.split(",")
                url = next_link(response.headers.getall("Link", []), response.url)
            found += _entries(body, f"referrers of {subject} in {ref.name}")
            params = {}  # the next link carries them
        return found if filtered else _filtered(found, artifact_type)

    async def _by_tag(self, ref: Reference, subject: Digest) -> list[Descriptor]:
        tags = await self._fallback_tags(ref)
        if tags is not None and fallback_tag(subject) not in tags:
            return []
        return await self.by_fallback_tag(ref, subject)

    async def by_fallback_tag(self, ref: Reference, subject: Digest) -> list[Descriptor]:
        """The referrers the fallback tag index of `subject` lists (none without one), read
        without asking first whether the tag exists: for a caller that listed the tags."""
        index = await self._fallback_index(ref, subject)
        return list(index.children) if index is not None else []

    async def _fallback_tags(self, ref: Reference) -> set[str] | None:
        """The repository's fallback tags as listed less than FALLBACK_TAGS_SECONDS ago; None
        (ask per subject) for its first lookups, or when its tags cannot be listed."""
        key = (ref.registry, ref.repository)
        self._lookups[key] = self._lookups.get(key, 0) + 1
        if self._lookups[key] < LIST_AFTER:
            return None
        async with self._listing.setdefault(key, asyncio.Lock()):  # one listing at a time
            until, tags = self._tags.get(key, (0.0, None))
            if until > time.monotonic():
                return tags
            try:
                tags = {t for t in await self.registry.tag_list(ref) if is_fallback_tag(t)}
            except OciError as err:
                tags = set() if isinstance(err, NameUnknown) else None
            self._tags[key] = (time.monotonic() + FALLBACK_TAGS_SECONDS, tags)
            return tags

    async def _fallback_index(self, ref: Reference, subject: Digest) -> Manifest | None:
        try:
            return await self.registry.manifest_get(
                ref.with_tag(fallback_tag(subject)), accept=(mt.OCI_INDEX,)
            )
        except OciError as err:
            if err.status == 404:
                return None
            raise

    async def put_fallback(
        self,
        ref: Reference,
        subject: Digest,
        *,
        add: Sequence[Descriptor] = (),
        remove: Sequence[Digest] = (),
    ) -> Descriptor | None:
        """Add descriptors to (and remove digests from) the fallback tag index of `subject` in
        `ref`'s repository and push it; the pushed index's descriptor, or None when nothing
        changed. Entries already there keep their exact JSON."""
        index = await self.update_fallback(ref, subject, add=add, remove=remove)
        return index.descriptor() if index is not None else None

    async def update_fallback(
        self,
        ref: Reference,
        subject: Digest,
        *,
        add: Sequence[Descriptor] = (),
        remove: Sequence[Digest] = (),
        current: Manifest | Ask | None = ASK,
    ) -> Manifest | None:
        """`put_fallback`, returning the index pushed (None: nothing changed). `current` is
        the index the tag holds now when the caller knows it (None: no such tag, e.g. in a
        repository it just created), so it is not read first."""
        lock = self._locks.setdefault((ref.registry, ref.repository, subject), asyncio.Lock())
        async with lock:
            if isinstance(current, Ask):
                current = await self._fallback_index(ref, subject)
            body = _index_body(current)
            entries: list[Any] = body["manifests"]
            dropped = {str(d) for d in remove}
            kept = [e for e in entries if not (isinstance(e, dict) and e.get("digest") in dropped)]
            present = {e.get("digest") for e in kept if isinstance(e, dict)}
            added = [d.to_json() for d in add if str(d.digest) not in present]
            if len(kept) == len(entries) and not added:
                return None
            body["manifests"] = kept + added
            raw = json.dumps(body, separators=(",", ":")).encode()
            index = parse_manifest(raw, mt.OCI_INDEX)
            await self.registry.manifest_put(
                ref.with_tag(fallback_tag(subject)), index, update_referrers=False
            )
            listed = self._tags.get((ref.registry, ref.repository), (0.0, None))[1]
            if listed is not None:
                listed.add(fallback_tag(subject))
            return index


def _index_body(current: Manifest | None) -> dict[str, Any]:
    if current is None:
        return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    body = json.loads(current.raw)
    if not isinstance(body, dict) or not isinstance(body.get("manifests"), list):
        raise ManifestInvalid("the fallback referrers tag does not hold an image index")
    return body


def _entries(body: bytes, where: str) -> list[Descriptor]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ManifestInvalid(f"{where}: the registry answered invalid JSON: {exc}") from None
    manifests = data.get("manifests") if isinstance(data, dict) else None
    if not isinstance(manifests, list):
        raise ManifestInvalid(f"{where}: the registry answered no index")
    return [Descriptor.from_json(entry, f"manifests[{i}]") for i, entry in enumerate(manifests)]


def _filtered(found: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    if artifact_type is None:
        return found
    return [d for d in found if d.artifact_type == artifact_type]
