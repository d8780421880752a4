"""Checking the blob store: every stored file against its digest and its recorded size.

A blob whose bytes are not its digest (a disk fault, a file changed behind the registry's back,
or one poisoned before uploads were locked) is moved to quarantine and forgotten: its row and
its links go, so a client that pushes it again (as any client does once HEAD answers 404)
repairs every manifest that names it. A row whose file is missing is forgotten the same way.
Safe while the server runs: each repair re-checks the file under the digest's lock, which a
completing upload holds while it places the same blob.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.metadata import content
from dockyard.oci.digest import Digest
from dockyard.registry.context import Store


@dataclass(frozen=True)
class Damaged:
    digest: Digest
    problem: str  # what is wrong, in words
    quarantined: str | None = None  # where its file went (None: missing, or a dry run)
    repositories: tuple[str, ...] = ()  # the repositories it was linked in (when repaired)


@dataclass
class Checked:
    blobs: int = 0
    bytes: int = 0
    damaged: list[Damaged] = field(default_factory=list)


async def check(store: Store, repair: bool = True) -> Checked:
    """Hash every blob file; quarantine and forget the damaged ones unless `repair` is off."""
    async with store.db.read() as conn:
        recorded = await content.all_blobs(conn)
    result = Checked()
    async for digest, _ in store.blobs.keys():
        size = recorded.pop(str(digest), None)
        stored = await store.blobs.size(digest)
        if stored is None:  # collected since the walk
            continue
        result.blobs += 1
        result.bytes += stored
        problem = await _problem(store, digest, size, stored)
        if problem is not None:
            result.damaged.append(
                await _repair(store, digest, problem) if repair else Damaged(digest, problem)
            )
    for text, size in recorded.items():  # rows whose file the walk did not meet
        digest = Digest.parse(text)
        if await store.blobs.size(digest) is None:
            problem = f"recorded ({size} bytes) but its file is missing"
            result.damaged.append(
                await _repair(store, digest, problem) if repair else Damaged(digest, problem)
            )
    if repair and result.damaged:
        store.generation.bump()  # the servers of this host drop cached links at once
    return result


async def _problem(store: Store, digest: Digest, recorded: int | None, stored: int) -> str | None:
    if recorded is not None and stored != recorded:
        return f"its file has {stored} bytes but the blob has {recorded}"
    actual = await store.blobs.digest_of(digest)
    if actual != digest:
        return f"its bytes have digest {actual}"
    return None


async def _repair(store: Store, digest: Digest, problem: str) -> Damaged:
    """Quarantine the file and forget the blob, if it is still damaged under the lock."""
    db = store.db
    async with db.write() as conn:
        recorded = await content.lock_blob(db, conn, str(digest))
        stored = await store.blobs.size(digest)
        if stored is not None and await _problem(store, digest, recorded, stored) is None:
            return Damaged(digest, f"{problem} (repaired meanwhile by a push)")
        moved = await store.blobs.quarantine(digest) if stored is not None else None
        names = await content.forget_blob(conn, str(digest))
    return Damaged(digest, problem, moved, tuple(names))
