"""Bounds on the work a copy does at once, shareable by several copies (a sync run)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dockyard.copy.options import CopyOptions


@dataclass
class Limits:
    """`transfers` bounds blob transfers in flight, `requests` manifest-level requests (reads,
    HEADs, referrer listings, pushes). `blobs` holds the blob copies in flight by (target,
    repository, digest), so that copies sharing these limits never move a blob twice at once;
    `done` those finished, so that they never move it twice at all (a sync run makes fresh
    limits over its syncer's semaphores and in-flight map: a later run asks the target)."""

    transfers: asyncio.Semaphore
    requests: asyncio.Semaphore
    blobs: dict[tuple[int, str, str], asyncio.Future[bool]] = field(default_factory=dict)
    done: set[tuple[int, str, str]] = field(default_factory=set)

    @classmethod
    def of(cls, options: CopyOptions) -> Limits:
        """Fresh limits with the concurrency `options` asks for."""
        return cls(
            asyncio.Semaphore(options.concurrency), asyncio.Semaphore(options.image_concurrency)
        )
