"""Content digests (`algorithm:encoded`) as the image spec defines them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dockyard.oci.errors import DigestInvalid

# Registered algorithms and the exact form of their encoded part (image-spec descriptor.md).
_ENCODED = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}
# The grammar every digest must match, registered algorithm or not.
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated digest of a registered algorithm (sha256 or sha512)."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse `algorithm:encoded`, raising `DigestInvalid` with what is wrong."""
        if not _GRAMMAR.fullmatch(text):
            raise DigestInvalid(
                f"invalid digest {text!r}: expected algorithm:hex, e.g. sha256:<64 hex>"
            )
        algorithm, encoded = text.split(":", 1)
        pattern = _ENCODED.get(algorithm)
        if pattern is None:
            raise DigestInvalid(
                f"unsupported digest algorithm {algorithm!r} in {text!r}: use sha256 or sha512"
            )
        if not pattern.fullmatch(encoded):
            raise DigestInvalid(
                f"invalid {algorithm} digest {text!r}: expected {len(_example(algorithm))} "
                "lowercase hex characters"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of `data`."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def _example(algorithm: str) -> str:
    return hashlib.new(algorithm).hexdigest()


def is_digest(text: str) -> bool:
    """Whether `text` has the general digest grammar (a reference is a digest, not a tag)."""
    return ":" in text and _GRAMMAR.fullmatch(text) is not None
