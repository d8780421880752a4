"""The referrers of a subject: pushed with `subject`, or listed under the fallback tag."""

from __future__ import annotations

import json

from dockyard.metadata import manifests as rows
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestInvalid, OciError
from dockyard.oci.referrers import fallback_tag
from dockyard.registry.context import Store


class Referrers:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def list(
        self, repository: RepositoryRow | None, subject: Digest, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Descriptors of every manifest that refers to `subject`, filtered by artifact type.

        Referrers pushed to a registry before it had this API live in an index under the
        fallback tag `<alg>-<hex>`; their entries are listed too.
        """
        if repository is None:
            return []
        async with self.store.db.read() as conn:
            found = await rows.referrers(conn, repository.id, str(subject))
            fallback = await rows.by_tag(conn, repository.id, fallback_tag(subject))
        descriptors = [
            Descriptor(r.media_type, Digest.parse(r.digest), r.size, r.artifact_type, r.annotations)
            for r in found
        ]
        if fallback is not None:
            seen = {d.digest for d in descriptors}
            descriptors += [d for d in _index_entries(fallback.content) if d.digest not in seen]
        if artifact_type is not None:
            descriptors = [d for d in descriptors if d.artifact_type == artifact_type]
        return descriptors


def _index_entries(raw: bytes) -> list[Descriptor]:
    try:
        entries = json.loads(raw).get("manifests", [])
        return [Descriptor.from_json(entry) for entry in entries]
    except (ValueError, AttributeError, ManifestInvalid, OciError):
        return []  # a fallback tag that does not hold an index lists nothing
