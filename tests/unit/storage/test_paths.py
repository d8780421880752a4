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
    assert paths.upload_id_from_key(paths.upload_key("abc")) == "abc"
    assert paths.upload_id_from_key("blobs/x/data") is None
