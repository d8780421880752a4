"""The only module that knows where things live inside a storage driver."""

from __future__ import annotations

from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid

BLOBS = "blobs"
UPLOADS = "uploads"


def blob_key(digest: Digest) -> str:
    """Where a blob's bytes live: `blobs/<alg>/<first two hex>/<hex>/data` (as distribution)."""
    return f"{BLOBS}/{digest.algorithm}/{digest.encoded[:2]}/{digest.encoded}/data"


def digest_from_blob_key(key: str) -> Digest | None:
    """The digest a blob key belongs to, None for anything else under `blobs/`."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != BLOBS or parts[4] != "data":
        return None
    try:
        return Digest.parse(f"{parts[1]}:{parts[3]}")
    except DigestInvalid:
        return None


def upload_key(upload_id: str) -> str:
    """Where an upload session's bytes gather until the upload completes."""
    return f"{UPLOADS}/{upload_id}/data"


def upload_folder(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"


def upload_id_from_key(key: str) -> str | None:
    parts = key.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == UPLOADS else None
