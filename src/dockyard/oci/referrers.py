"""The referrers index and the fallback tag schema (distribution-spec, "Listing Referrers")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest


def fallback_tag(subject: Digest) -> str:
    """The tag `<alg>-<ref>` under which registries without the API keep a subject's referrers.

    The spec limits `<ref>` to 64 characters, so a sha512 subject's tag holds half its digest.
    """
    return f"{subject.algorithm}-{subject.encoded[:64]}"


# `<alg>-<ref>`, as `fallback_tag` makes it; with a suffix (`.sig`, `.att`, `.sbom`), a cosign
# digest tag of the same subject
_FALLBACK_TAG = re.compile(r"(sha256|sha512)-[0-9a-f]{64}")
_DIGEST_TAG = re.compile(r"(sha256|sha512)-[0-9a-f]{64}\..+")


def is_fallback_tag(tag: str) -> bool:
    """Whether `tag` is a fallback referrers tag (`sha256-<hex>`), not an image's tag."""
    return _FALLBACK_TAG.fullmatch(tag) is not None


def is_digest_tag(tag: str) -> bool:
    """Whether `tag` is a cosign-style digest tag (`sha256-<hex>.sig`, `.att`, `.sbom`)."""
    return _DIGEST_TAG.fullmatch(tag) is not None


def referrers_index(descriptors: Iterable[Descriptor]) -> bytes:
    """The image index listing `descriptors`, as the referrers API answers it."""
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_json() for d in descriptors],
    }
    return json.dumps(body, separators=(",", ":")).encode()
