"""What a sync run found and did: a `TagResult` per tag, a `RepositoryResult` per repository,
a `SyncReport` per run (each with its JSON form).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dockyard.copy.result import CopyResult
from dockyard.oci.digest import Digest
from dockyard.oci.errors import OciError
from dockyard.oci.reference import Reference


@dataclass(frozen=True, slots=True)
class TagResult:
    """What sync found (and did) for one tag.

    `change` is what the plan says: `add` (new on the target), `update` (the tag moves),
    `unchanged`, or `skipped` (`reason` says why); None when planning failed. `error` is set
    when planning or copying failed. `result` holds the counts of the copy when one ran
    (an unchanged tag gets one only when referrers or digest tags were missing).
    """

    entry: int
    source: Reference
    target: Reference
    change: str | None
    digest: Digest | None = None
    previous: Digest | None = None
    manifests_to_write: int = 0
    blobs_to_copy: int = 0
    bytes_to_transfer: int = 0
    referrers_to_copy: int = 0
    result: CopyResult | None = None
    error: str | None = None
    reason: str | None = None
    seconds: float = 0.0

    @property
    def tag(self) -> str:
        return self.target.tag or str(self.target.digest)

    @property
    def status(self) -> str:
        """`failed`, or the change."""
        return "failed" if self.error is not None else (self.change or "failed")

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_json(self) -> dict[str, Any]:
        copied = None
        if self.result is not None:
            r = self.result
            copied = {
                "manifests": r.manifests_copied,
                "referrers": r.referrers_copied,
                "blobs": r.blobs_copied,
                "blobs_mounted": r.blobs_mounted,
                "bytes": r.bytes_copied,
            }
        return {
            "tag": self.tag,
            "source": str(self.source),
            "target": str(self.target),
            "status": self.status,
            "digest": str(self.digest) if self.digest else None,
            "previous": str(self.previous) if self.previous else None,
            "manifests_to_write": self.manifests_to_write,
            "blobs_to_copy": self.blobs_to_copy,
            "bytes_to_transfer": self.bytes_to_transfer,
            "referrers_to_copy": self.referrers_to_copy,
            "copied": copied,
            "reason": self.reason,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class RepositoryResult:
    """The tags of one source repository synced to one target repository (`error`: the
    repository could not be listed, so no tag was looked at)."""

    entry: int
    source: str
    target: str
    tags: tuple[TagResult, ...] = ()
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or any(t.failed for t in self.tags)

    def count(self, status: str) -> int:
        return sum(1 for t in self.tags if t.status == status)

    def with_status(self, status: str) -> list[TagResult]:
        return [t for t in self.tags if t.status == status]

    @property
    def referrers_to_copy(self) -> int:
        return sum(t.referrers_to_copy for t in self.tags if not t.failed)

    @property
    def bytes_to_transfer(self) -> int:
        return sum(t.bytes_to_transfer for t in self.tags if not t.failed)

    @property
    def referrers_copied(self) -> int:
        return sum(t.result.referrers_copied for t in self.tags if t.result is not None)

    @property
    def bytes_copied(self) -> int:
        return sum(t.result.bytes_copied for t in self.tags if t.result is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "source": self.source,
            "target": self.target,
            "error": self.error,
            "tags": [t.to_json() for t in self.tags],
        }


STATUSES = ("add", "update", "unchanged", "skipped", "failed")


@dataclass(frozen=True, slots=True)
class SyncReport:
    """One run over some entries: a result per repository, in config order."""

    dry_run: bool
    repositories: tuple[RepositoryResult, ...]
    seconds: float = 0.0
    entries: tuple[int, ...] = ()

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.repositories)

    def totals(self) -> dict[str, int]:
        totals = {s: sum(r.count(s) for r in self.repositories) for s in STATUSES}
        totals["repositories_failed"] = sum(1 for r in self.repositories if r.error is not None)
        totals["referrers_to_copy"] = sum(r.referrers_to_copy for r in self.repositories)
        totals["bytes_to_transfer"] = sum(r.bytes_to_transfer for r in self.repositories)
        totals["referrers_copied"] = sum(r.referrers_copied for r in self.repositories)
        totals["bytes_copied"] = sum(r.bytes_copied for r in self.repositories)
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "totals": self.totals(),
            "repositories": [r.to_json() for r in self.repositories],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, OciError):
        return f"{exc.message} ({exc.code})" if exc.code != "UNKNOWN" else exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
