"""Rebuilds that start by themselves: when a base tag or an artifact tag moves (read from the
event outbox), and when a scheduled check finds a newer version of an installed package.

Both duties run as hub ticks on every node; each keeps its place in a site setting moved under
one lock, so several nodes queue each build (or check) once.
"""

from __future__ import annotations

import time

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.build.check import package_updates
from dockyard.build.model import split_reference
from dockyard.hub.customizations import LOCAL_REGISTRY, Customizations, builder_subject
from dockyard.hub.jobs import Job, JobContext
from dockyard.metadata import customizations as rows
from dockyard.metadata import events as event_rows
from dockyard.metadata import settings as site_settings
from dockyard.metadata.events import EventRow
from dockyard.registry.target import StoreTarget

CHECK_JOB = "customization.check"
_CURSOR = "customizations.event_cursor"  # the last event rebuilds were queued for
_CHECK_AT = "customizations.package_check_at"  # when the next package check is due


class Rebuilds:
    """Queues the builds of `customizations` that moved inputs call for; `check_interval`
    seconds between package checks (0: none)."""

    def __init__(self, customizations: Customizations, check_interval: float = 0.0) -> None:
        self.customizations = customizations
        self.db = customizations.db
        self.check_interval = check_interval

    async def schedule_package_checks(self) -> int:
        """Every `check_interval` seconds, queue a check of each built target with packages
        (`customization.check`: is there a newer version of one it installed?); how many.
        The next time is a site setting moved under one lock, so nodes check once."""
        if self.check_interval <= 0:
            return 0
        now = time.time()
        async with self.db.read() as conn:
            due = float(await site_settings.get(conn, _CHECK_AT) or 0)
        if now < due:
            return 0
        queued = 0
        async with self.db.write() as conn:
            await self.db.lock(conn, _CHECK_AT)
            if now < float(await site_settings.get(conn, _CHECK_AT) or 0):
                return 0
            await site_settings.put(self.db, conn, _CHECK_AT, str(now + self.check_interval))
            after = 0
            while batch := await rows.find_customizations(conn, after_id=after, limit=100):
                for row in batch:
                    if not Customizations.document(row).contents.packages:
                        continue
                    for t in row.targets:
                        payload = {"customization_id": row.id, "repository_id": t.repository_id,
                                   "base_tag": t.base_tag}  # fmt: skip
                        key = f"check:{row.id}:{t.repository_id}:{t.base_tag}"
                        await self.customizations.queue.enqueue(
                            CHECK_JOB, payload, dedupe_key=key, conn=conn
                        )
                        queued += 1
                after = batch[-1].id
        if queued:
            self.customizations.wake()
        return queued

    async def check_packages(self, job: Job, ctx: JobContext) -> None:
        """The `customization.check` job: queue a rebuild when the archive has a newer version
        of a package the target's last good build installed (the detail says which)."""
        customization_id = int(job.payload["customization_id"])
        repository_id = int(job.payload["repository_id"])
        base_tag = str(job.payload["base_tag"])
        layers = self.customizations.packages()
        packages = layers.apt if layers is not None else None  # Debian-family bases, for now
        async with self.db.read() as conn:
            row = await rows.get_customization_by_id(conn, customization_id)
            last = await rows.last_good_build(conn, customization_id, repository_id, base_tag)
        if row is None or last is None or not last.lock or packages is None:
            return
        custom = Customizations.document(row)
        which = next(
            (t for t in custom.targets
             if (t.destination, t.base_tag) == (last.repository, base_tag)), None
        )  # fmt: skip
        if which is None:
            return
        place = StoreTarget(self.customizations.registry, builder_subject(row.namespace))
        changes = await package_updates(
            place, packages, custom, which, LOCAL_REGISTRY, orjson.loads(last.lock)
        )
        if not changes:
            return
        async with self.db.write() as conn:
            if await rows.has_queued_build(conn, row.id, repository_id, base_tag):
                return
            detail = "; ".join(changes)
            await self.customizations.queue_build(
                conn, row.id, repository_id, base_tag, "packages", detail
            )
        self.customizations.wake()

    async def rebuild_on_pushes(self, limit: int = 200) -> int:
        """Queue the builds that tags pushed or moved since the last call call for: a target's
        base tag (a mirror sync moved it) or an artifact's tag; how many builds.

        The place in the event outbox is a site setting, read and moved under one lock, so
        several nodes ticking at once queue each build once.
        """
        async with self.db.read() as conn:
            seen = int(await site_settings.get(conn, _CURSOR) or -1)
            newest = await event_rows.last_id(conn)
        if seen == newest:
            return 0
        queued = 0
        async with self.db.write() as conn:
            await self.db.lock(conn, _CURSOR)
            seen = int(await site_settings.get(conn, _CURSOR) or -1)
            if seen < 0:  # the first tick of a site: earlier pushes built nothing
                await site_settings.put(self.db, conn, _CURSOR, str(newest))
                return 0
            pushed = await event_rows.after(conn, seen, limit)
            for event in pushed:
                queued += await self._rebuild_for(conn, event)
            if pushed:
                await site_settings.put(self.db, conn, _CURSOR, str(pushed[-1].id))
        if queued:
            self.customizations.wake()
        return queued

    async def _rebuild_for(self, conn: AsyncConnection, event: EventRow) -> int:
        queued = 0
        moved = f"{event.repository}:{event.tag} moved to {event.new_digest}"
        for row in await rows.in_namespace_of(conn, event.repository_id):
            if event.created_at <= row.updated_at:
                continue  # the build its creation (or last edit) queued saw this already
            custom = Customizations.document(row)
            artifact = any(
                split_reference(a.name)[:2] == (event.repository, event.tag)
                for a in custom.contents.artifacts
            )
            for target in row.targets:
                base = (target.repository_id, target.base_tag) == (event.repository_id, event.tag)
                if not (base or artifact):
                    continue
                if await rows.has_queued_build(conn, row.id, target.repository_id, target.base_tag):
                    continue
                trigger = "base" if base else "artifact"
                await self.customizations.queue_build(
                    conn, row.id, target.repository_id, target.base_tag, trigger, moved
                )
                queued += 1
        return queued
