"""The referrers index and the fallback tag schema (distribution-spec, "Listing Referrers")."""

from __future__ import annotations

import json
from collections.abc import Iterable

from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest


def fallback_tag(subject: Digest) -> str:
    """The tag `<alg>-<ref>` under which registries without the API keep a subject's referrers.

    The spec limits `<ref>` to 64 characters, so a sha512 subject's tag holds half its digest.
    """
    return f"{subject.algorithm}-{subject.encoded[:64]}"


def referrers_index(descriptors: Iterable[Descriptor]) -> bytes:
    """The image index listing `descriptors`, as the referrers API answers it."""
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_json() for d in descriptors],
    }
    return json.dumps(body, separators=(",", ":")).encode()
