"""Every error code of the OCI distribution spec, one class each.

An error carries its spec `code`, the HTTP `status` it is answered with, a `message` a person can
act on and an optional machine-readable `detail`. The server raises these where the problem is
known and `api/errors.py` turns them into the spec's JSON envelope; the client parses the same
envelope back into the same classes.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OciError(Exception):
    """A failure the distribution spec names, answered with `status` and `code`."""

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "unknown error"

    def __init__(
        self,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.detail = detail
        self.headers = headers or {}
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        """The error's entry in the spec's `{"errors": [...]}` list."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return entry


class BlobUnknown(OciError):
    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(OciError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(OciError):
    code, status, default_message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(OciError):
    code, status, default_message = "DIGEST_INVALID", 400, "provided digest did not match content"


class ManifestBlobUnknown(OciError):
    code, status, default_message = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a blob or manifest unknown to this repository",
    )


class ManifestInvalid(OciError):
    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(OciError):
    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(OciError):
    code, status, default_message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(OciError):
    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(OciError):
    code, status, default_message = "SIZE_INVALID", 400, "provided length did not match content"


class TagInvalid(OciError):
    # distribution answers a bad tag with MANIFEST_INVALID; the spec has no TAG_INVALID code
    code, status, default_message = "MANIFEST_INVALID", 400, "invalid tag"


class Unauthorized(OciError):
    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class Denied(OciError):
    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(OciError):
    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class TooManyRequests(OciError):
    code, status, default_message = "TOOMANYREQUESTS", 429, "too many requests"


class RangeInvalid(OciError):
    """A `Range` or `Content-Range` that cannot be satisfied (answered 416)."""

    code, status, default_message = "BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable"


class PayloadTooLarge(OciError):
    code, status, default_message = "SIZE_INVALID", 413, "payload too large"


class PaginationNumberInvalid(OciError):
    """An `n` that is not a count (distribution's own code; not in the OCI spec)."""

    code, status, default_message = (
        "PAGINATION_NUMBER_INVALID",
        400,
        "invalid number of results requested",
    )


class UpstreamUnavailable(OciError):
    """A pull-through cache could not reach its upstream and has nothing cached to serve.

    The code is distribution's own `UNAVAILABLE` (not in the OCI spec, so a client parses it
    back as a plain `OciError` with status 503), answered 503 so that clients retry later and a
    Docker daemon falls back from its mirror to the registry itself.
    """

    code, status, default_message = (
        "UNAVAILABLE",
        503,
        "the upstream registry is unavailable and nothing is cached",
    )


ERRORS_BY_CODE: dict[str, type[OciError]] = {
    cls.code: cls
    for cls in (
        BlobUnknown,
        BlobUploadInvalid,
        BlobUploadUnknown,
        DigestInvalid,
        ManifestBlobUnknown,
        ManifestInvalid,
        ManifestUnknown,
        NameInvalid,
        NameUnknown,
        SizeInvalid,
        Unauthorized,
        Denied,
        Unsupported,
        TooManyRequests,
    )
}


def error_from_json(entry: dict[str, Any], status: int | None = None) -> OciError:
    """The `OciError` for one entry of a spec error body (unknown codes give a plain OciError)."""
    cls = ERRORS_BY_CODE.get(str(entry.get("code", "")), OciError)
    err = cls(str(entry.get("message") or cls.default_message), entry.get("detail"))
    if cls is OciError and status is not None:
        err.status = status  # type: ignore[misc]
    return err
