"""Mirrors: a catalog entry copied into an organization's private `dhi-<name>` repository,
then kept in sync by jobs (`mirror_sync.py`).

Rules from the seeds: only an owner of the organization may mirror or stop mirroring; the
repository stays private (made public, its syncs pause with a status that says why and resume
when it is private again); stopping keeps the repository and its images; turning off
end-of-life support stops only the end-of-life tags.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.auth.policy import Action, Subject, may_manage
from dockyard.hub.catalog import Catalog
from dockyard.hub.errors import Conflict, Invalid, NotFound
from dockyard.hub.jobs import JobQueue
from dockyard.metadata import accounts as account_rows
from dockyard.metadata import catalog as entry_rows
from dockyard.metadata import mirrors as rows
from dockyard.metadata import repositories as repository_rows
from dockyard.metadata.catalog import EntryRow
from dockyard.metadata.mirrors import MirrorRow, RunRow
from dockyard.oci.errors import Denied, NameInvalid, OciError, Unauthorized
from dockyard.oci.names import validate_name
from dockyard.registry.repositories import create_in
from dockyard.registry.service import Registry

SYNC_JOB = "mirror.sync"
PUBLIC_REASON = (
    "paused: the repository is public, and a mirrored repository must stay private; make it "
    "private again to resume syncing"
)
_SYNC_ATTEMPTS = 3


def dedupe_key(mirror_id: int) -> str:
    return f"mirror:{mirror_id}"


class Mirrors:
    """Creating, listing, stopping and scheduling mirrors (`wake`: poke the local worker
    after something was queued)."""

    def __init__(
        self,
        registry: Registry,
        catalog: Catalog,
        queue: JobQueue,
        *,
        default_interval: float,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.db = registry.store.db
        self.catalog = catalog
        self.queue = queue
        self.default_interval = default_interval
        self.wake = wake

    async def create(
        self,
        subject: Subject,
        entry_name: str,
        org: str,
        *,
        repository: str | None = None,
        include_eol: bool = False,
        interval_seconds: float | None = None,
    ) -> MirrorRow:
        """Mirror `entry_name` into `org` (as `ORG/dhi-<name>` unless `repository` is given);
        the first sync is queued in the same transaction."""
        entry = await self.catalog.get(entry_name)
        name = repository or f"{org}/dhi-{entry.name}"
        _check_repository_name(name, org)
        if interval_seconds is not None and interval_seconds < 60:
            raise Invalid("interval_seconds must be at least 60")
        async with self.db.write() as conn:
            await _require_owner(conn, subject, org)
            if await repository_rows.by_name(conn, name) is not None:
                raise Conflict(f"repository {name!r} already exists: mirror into a new repository")
            created = await create_in(self.db, conn, name)
            # a mirror may copy a subset of an index's platforms and keep its digest
            await repository_rows.update_settings(conn, created.id, sparse_indexes="on")
            mirror = await rows.insert_mirror(
                conn,
                entry_id=entry.id,
                repository_id=created.id,
                include_eol=include_eol,
                created_by=subject.name or subject.org or "",
                interval_seconds=interval_seconds,
                next_sync_at=time.time() + (interval_seconds or self.default_interval),
            )
            await self._enqueue(conn, mirror.id, "create")
        self.wake()
        return mirror

    async def get(self, subject: Subject, mirror_id: int) -> MirrorRow:
        """A mirror whose repository `subject` may pull from."""
        async with self.db.read() as conn:
            mirror = await rows.by_id(conn, mirror_id)
        if mirror is None or not await self._may(subject, mirror.repository, Action.PULL):
            raise NotFound(f"no mirror {mirror_id} that you can see", {"id": mirror_id})
        return mirror

    async def find(
        self,
        subject: Subject,
        *,
        org: str | None = None,
        entry: str | None = None,
        after_id: int | None = None,
        limit: int = 50,
    ) -> list[MirrorRow]:
        """Mirrors whose repositories `subject` may pull from, in id order after `after_id`."""
        entry_id = (await self.catalog.get(entry)).id if entry is not None else None
        seen: list[MirrorRow] = []
        while len(seen) < limit:
            async with self.db.read() as conn:
                batch = await rows.find(
                    conn, entry_id=entry_id, namespace=org, after_id=after_id, limit=limit
                )
            for mirror in batch:
                if await self._may(subject, mirror.repository, Action.PULL):
                    seen.append(mirror)
            if len(batch) < limit:
                break
            after_id = batch[-1].id
        return seen[:limit]

    async def mirrored_to(self, subject: Subject, entry: EntryRow) -> list[MirrorRow]:
        """The mirrors of `entry` that `subject` can see ("View in repository")."""
        return await self.find(subject, entry=entry.name, limit=1000)

    async def stop(self, subject: Subject, mirror_id: int) -> MirrorRow:
        """Stop mirroring: the repository and its images stay, nothing more arrives."""
        mirror = await self.get(subject, mirror_id)
        async with self.db.write() as conn:
            await _require_owner(conn, subject, _org_of(mirror.repository), "stop mirroring")
            await rows.update_mirror(
                conn,
                mirror.id,
                status="stopped",
                status_reason=f"stopped by {subject.name or subject.org}",
            )
            stopped = await rows.by_id(conn, mirror.id)
        assert stopped is not None
        return stopped

    async def set_include_eol(self, subject: Subject, mirror_id: int, on: bool) -> MirrorRow:
        """Turn end-of-life tags on or off; off stops only those tags' updates."""
        mirror = await self.get(subject, mirror_id)
        async with self.db.write() as conn:
            await _require_owner(conn, subject, _org_of(mirror.repository), "change mirrors")
            await rows.update_mirror(conn, mirror.id, include_eol=on)
            if on and mirror.status == "active":
                await self._enqueue(conn, mirror.id, "manual")
            changed = await rows.by_id(conn, mirror.id)
        self.wake()
        assert changed is not None
        return changed

    async def els_of(self, repository_ids: list[int]) -> dict[int, bool]:
        """The ELS option of each mirrored repository among `repository_ids`."""
        async with self.db.read() as conn:
            return await rows.include_eol_of(conn, repository_ids)

    async def set_repository_els(self, subject: Subject, repository_id: int, on: bool) -> None:
        """The repository setting: turn end-of-life tags on or off for every mirror into it."""
        async with self.db.read() as conn:
            found = await rows.find(conn, repository_id=repository_id, limit=1000)
        active = [m for m in found if m.status != "stopped"]
        if not active:
            raise Conflict("the repository is not mirrored: ELS applies to mirrored repositories")
        for mirror in active:
            await self.set_include_eol(subject, mirror.id, on)

    async def sync_now(self, subject: Subject, mirror_id: int) -> int:
        """Queue a sync at once (owners); the job's id. A mirror whose repository is public
        is refused (and paused, as its sync would): a queued job would copy nothing."""
        mirror = await self.get(subject, mirror_id)
        if mirror.status == "stopped":
            raise Conflict(f"mirror {mirror_id} is stopped: nothing more is synced into it")
        async with self.db.write() as conn:
            await _require_owner(conn, subject, _org_of(mirror.repository), "sync mirrors")
            job: int | None = None
            if mirror.visibility == "public":
                await rows.update_mirror(
                    conn, mirror.id, status="paused", status_reason=PUBLIC_REASON
                )
            else:
                job = await self._enqueue(conn, mirror.id, "manual")
        if job is None:
            raise Conflict(
                f"mirror {mirror_id} of {mirror.repository} is {PUBLIC_REASON} (e.g. "
                f"dockyard admin repo set {mirror.repository} --visibility private)"
            )
        self.wake()
        return job

    async def runs(
        self, subject: Subject, mirror_id: int, before_id: int | None = None, limit: int = 50
    ) -> list[RunRow]:
        await self.get(subject, mirror_id)
        async with self.db.read() as conn:
            return await rows.runs(conn, mirror_id, before_id=before_id, limit=limit)

    async def notify(self, entry: EntryRow) -> list[int]:
        """Upstream says `entry` changed: queue a sync of every mirror of it not stopped."""
        jobs = []
        async with self.db.write() as conn:
            for mirror in await rows.find(conn, entry_id=entry.id, limit=10_000):
                if mirror.status != "stopped":
                    jobs.append(await self._enqueue(conn, mirror.id, "webhook"))
        if jobs:
            self.wake()
        return jobs

    async def schedule_due(self, now: float | None = None) -> int:
        """Queue a sync of every mirror whose interval has passed, and resume paused mirrors
        whose repository is private again; how many were queued."""
        now = time.time() if now is None else now
        queued = 0
        async with self.db.read() as conn:
            due = await rows.due(conn, now)
            resumed = await rows.find_status(conn, "paused")
        wanted = {m.id: m for m in due}
        wanted.update({m.id: m for m in resumed if m.visibility != "public"})
        if not wanted:
            return 0
        async with self.db.write() as conn:
            for mirror in wanted.values():
                interval = mirror.interval_seconds or self.default_interval
                await rows.update_mirror(conn, mirror.id, next_sync_at=now + interval)
                await self._enqueue(conn, mirror.id, "schedule")
                queued += 1
        self.wake()
        return queued

    async def _enqueue(self, conn: AsyncConnection, mirror_id: int, trigger: str) -> int:
        return await self.queue.enqueue(
            SYNC_JOB,
            {"mirror_id": mirror_id, "trigger": trigger},
            dedupe_key=dedupe_key(mirror_id),
            max_attempts=_SYNC_ATTEMPTS,
            conn=conn,
        )

    async def _may(self, subject: Subject, repository: str, action: Action) -> bool:
        try:
            await self.registry.repositories.authorize(subject, repository, action)
        except (Denied, Unauthorized):
            return False
        return True


async def entry_of(conn: AsyncConnection, mirror: MirrorRow) -> EntryRow:
    entry = await entry_rows.by_id(conn, mirror.entry_id)
    assert entry is not None  # entries with mirrors cannot be removed
    return entry


def _org_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def _check_repository_name(name: str, org: str) -> None:
    try:
        validate_name(name)
    except (NameInvalid, OciError) as exc:
        raise Invalid(f"repository name {name!r}: {exc}") from exc
    if _org_of(name) != org or "/" not in name:
        raise Invalid(f"repository {name!r} must be inside organization {org!r} ({org}/...)")


async def _require_owner(
    conn: AsyncConnection, subject: Subject, org: str, doing: str = "mirror repositories"
) -> None:
    namespace = await account_rows.namespace_by_name(conn, org)
    if namespace is None or namespace.kind != "org":
        raise NotFound(f"there is no organization named {org!r}", {"org": org})
    if not may_manage(subject, org):
        raise Denied(f"only owners of organization {org!r} can {doing}")
