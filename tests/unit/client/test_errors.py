"""Error answers become the same OciError classes the server raises, keeping the status."""

from __future__ import annotations

import json

import pytest

from dockyard.client.errors import error_from_body
from dockyard.oci.errors import (
    BlobUnknown,
    Denied,
    ManifestUnknown,
    NameUnknown,
    OciError,
    RangeInvalid,
    TooManyRequests,
    Unauthorized,
)

WHERE = "GET http://r.test/v2/a/manifests/v1"


def _body(*entries: dict[str, object]) -> bytes:
    return json.dumps({"errors": list(entries)}).encode()


def test_the_spec_envelope_gives_the_class_message_and_detail() -> None:
    body = _body({"code": "MANIFEST_UNKNOWN", "message": "no v1", "detail": {"tag": "v1"}})
    err = error_from_body(404, body, WHERE)
    assert isinstance(err, ManifestUnknown)
    assert err.status == 404
    assert err.message == f"no v1 ({WHERE}: HTTP 404)"
    assert err.detail == {"tag": "v1"}


def test_further_entries_become_notes() -> None:
    body = _body({"code": "NAME_UNKNOWN", "message": "a"}, {"code": "DENIED", "message": "b"})
    err = error_from_body(404, body, WHERE)
    assert isinstance(err, NameUnknown)
    assert err.__notes__ == ["also: DENIED: b"]


def test_the_status_answered_is_kept() -> None:
    err = error_from_body(500, _body({"code": "BLOB_UNKNOWN", "message": "odd"}), WHERE)
    assert isinstance(err, BlobUnknown)
    assert err.status == 500
    unknown = error_from_body(503, _body({"code": "UNAVAILABLE", "message": "down"}), WHERE)
    assert (type(unknown), unknown.code, unknown.status) == (OciError, "UNAVAILABLE", 503)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, Unauthorized), (403, Denied), (416, RangeInvalid), (429, TooManyRequests)],
)
def test_bodies_without_the_envelope_map_by_status(status: int, cls: type[OciError]) -> None:
    err = error_from_body(status, b"<html>nope</html>", WHERE, {"Retry-After": "5", "X": "y"})
    assert type(err) is cls
    assert err.headers == {"Retry-After": "5"}
    assert "<html>nope</html>" in err.message


def test_a_bare_status_keeps_it() -> None:
    err = error_from_body(502, b"", WHERE)
    assert (type(err), err.status, err.message) == (OciError, 502, f"{WHERE}: HTTP 502")
