"""Referrers of a manifest: by the referrers API, else by the fallback tag `<alg>-<hex>` whose
index lists them (registries without the API, like distribution 2.8), and the upkeep of that
index when such a registry receives a manifest with a `subject`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from yarl import URL

from dockyard.client.challenge import scope_for
from dockyard.client.links import next_link
from dockyard.client.responses import read_body
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestInvalid, OciError
from dockyard.oci.manifest import MAX_MANIFEST_SIZE, Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag

if TYPE_CHECKING:
    from dockyard.client.registry import RegistryClient

FILTERS_APPLIED = "OCI-Filters-Applied"
MAX_PAGES = 1000


class Referrers:
    """Lists and maintains referrers for a `RegistryClient`; remembers per repository whether
    the registry has the referrers API, and serializes fallback-index updates in process."""

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self.api: dict[tuple[str, str], bool] = {}
        self._locks: dict[tuple[str, str, Digest], asyncio.Lock] = {}

    async def lookup(
        self, ref: Reference, subject: Digest, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Descriptors of the manifests whose `subject` is `subject`, in `ref`'s repository:
        from the referrers API, or from the fallback tag when the registry answers 404."""
        key = (ref.registry, ref.repository)
        if self.api.get(key, True):
            try:
                found = await self._by_api(ref, subject, artifact_type)
            except OciError as err:
                if err.status != 404:
                    raise
                self.api[key] = False
            else:
                self.api[key] = True
                return found
        return _filtered(await self._by_tag(ref, subject), artifact_type)

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
        index = await self._fallback_index(ref, subject)
        return list(index.children) if index is not None else []

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
        lock = self._locks.setdefault((ref.registry, ref.repository, subject), asyncio.Lock())
        async with lock:
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
            return index.descriptor()


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
