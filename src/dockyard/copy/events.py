"""Progress events the copy engine emits; renderers (`copy.progress`) turn them into bars or
lines. The engine calls a `ProgressSink` and knows nothing about terminals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dockyard.copy.result import CopyResult
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference

BlobHow = Literal["copied", "mounted", "skipped"]
ManifestHow = Literal["copied", "skipped"]


@dataclass(frozen=True, slots=True)
class CopyStarted:
    """A copy begins: how many manifests (`images_total`), blobs and blob bytes it moves."""

    source: Reference
    target: Reference
    images_total: int
    blobs_total: int
    bytes_total: int


@dataclass(frozen=True, slots=True)
class BlobBytes:
    """`done` of `total` bytes of a blob have streamed to `target` (it restarts from 0 when a
    failed upload is sent again)."""

    target: Reference
    digest: Digest
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class BlobDone:
    """A blob is on the target: streamed (`copied`), `mounted`, or already there (`skipped`).
    `counted`: it was among the bytes `CopyStarted` announced (the target lacked it when the
    copy was planned)."""

    target: Reference
    digest: Digest
    size: int
    how: BlobHow
    counted: bool = True


@dataclass(frozen=True, slots=True)
class ManifestDone:
    """A manifest is on the target: pushed (`copied`) or already there (`skipped`)."""

    target: Reference
    digest: Digest
    role: str
    how: ManifestHow


@dataclass(frozen=True, slots=True)
class CopyFinished:
    """A copy ended well; `result` has its counts."""

    result: CopyResult


@dataclass(frozen=True, slots=True)
class CopyFailed:
    """A copy ended with `error` (a `CopyError` message)."""

    source: Reference
    target: Reference
    error: str


Event = CopyStarted | BlobBytes | BlobDone | ManifestDone | CopyFinished | CopyFailed
ProgressSink = Callable[[Event], None]
"""Receives every event, on the event loop's thread; it must not block."""
