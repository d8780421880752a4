from __future__ import annotations

from dockyard.oci.digest import Digest
from dockyard.storage import paths

DIGEST = Digest.of(b"x")


def test_blob_keys_round_trip() -> None:
    key = paths.blob_key(DIGEST)
    assert key == f"blobs/sha256/{DIGEST.encoded[:2]}/{DIGEST.encoded}/data"
    assert paths.digest_from_blob_key(key) == DIGEST


def test_foreign_keys_are_not_blobs() -> None:
    assert paths.digest_from_blob_key("blobs/sha256/zz/nothex/data") is None
    assert paths.digest_from_blob_key("uploads/x/data") is None


def test_upload_keys_round_trip() -> None:
    upload = paths.UploadRef(42, "abc")
    assert paths.upload_key(upload) == "uploads/42/abc/data"
    assert paths.upload_from_key(paths.upload_key(upload)) == upload
    assert paths.upload_from_key("blobs/x/data") is None
    assert paths.upload_from_key("uploads/abc/data") is None  # no repository
    assert paths.upload_from_key("uploads/x/abc/data") is None
