"""The only module that knows where things live inside a storage driver."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid

BLOBS = "blobs"
UPLOADS = "uploads"
QUARANTINE = "quarantine"
UPLOAD_OWNERS = "upload-owners"


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


def quarantine_key(digest: Digest, stamp: str) -> str:
    """Where a blob file whose bytes are not the blob is kept aside (one per `stamp`)."""
    return f"{QUARANTINE}/{digest.algorithm}/{digest.encoded}/{stamp}"


class UploadRef(NamedTuple):
    """An upload session: its id and the repository it was started in.

    The session is its folder, `uploads/<repository id>/<upload id>/`, and nothing else: no
    database row. It exists while its data file does, belongs to the repository named in its
    path, and is as old as that file's modification time.
    """

    repository_id: int
    upload_id: str


def upload_key(upload: UploadRef) -> str:
    """Where an upload session's bytes gather until the upload completes."""
    return f"{upload_folder(upload)}/data"


def upload_folder(upload: UploadRef) -> str:
    return f"{UPLOADS}/{upload.repository_id}/{upload.upload_id}"


def upload_from_key(key: str) -> UploadRef | None:
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != UPLOADS or parts[3] != "data" or not parts[1].isdigit():
        return None
    return UploadRef(int(parts[1]), parts[2])


def upload_repository_folder(repository_id: int) -> str:
    """Where every upload session of one repository lives."""
    return f"{UPLOADS}/{repository_id}"


def upload_owner_key(upload: UploadRef) -> str:
    """The name of the account that started a session (absent for internal sessions)."""
    return f"{upload_folder(upload)}/owner"


def owner_markers(owner: str) -> str:
    """Where the markers of one account's sessions live (one empty object each)."""
    return f"{UPLOAD_OWNERS}/{hashlib.sha256(owner.encode()).hexdigest()[:32]}"


def owner_marker_key(owner: str, upload: UploadRef) -> str:
    return f"{owner_markers(owner)}/{upload.repository_id}.{upload.upload_id}"


def upload_from_marker_key(key: str) -> UploadRef | None:
    repository_id, _, upload_id = key.rsplit("/", 1)[-1].partition(".")
    return UploadRef(int(repository_id), upload_id) if repository_id.isdigit() else None
