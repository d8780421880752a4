"""One sync of a mirror: the job that copies an entry's tags, with their attestations, from
upstream into the mirrored repository, in process (the store is a copy `Target`).

Every run reads the upstream tags afresh (refreshing the catalog), copies tags that are new
or moved, and re-checks the referrers of unchanged ones (attestations are added after an
image is published). Copies skip what the repository has, so a run that a killed worker left
half done is resumed by the next attempt without copying anything twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from dockyard.auth.policy import Subject
from dockyard.client.hosts import SessionFactory
from dockyard.copy.events import BlobDone, Event
from dockyard.copy.execute import execute
from dockyard.copy.limits import Limits
from dockyard.copy.options import CopyOptions
from dockyard.copy.plan import plan_copy
from dockyard.hub.catalog import Catalog
from dockyard.hub.jobs import Job, JobContext, Retry
from dockyard.hub.mirrors import PUBLIC_REASON, entry_of
from dockyard.hub.upstream import Upstream, upstream_client, upstream_of
from dockyard.metadata import mirrors as rows
from dockyard.metadata.catalog import EntryRow
from dockyard.metadata.mirrors import MirrorRow
from dockyard.oci.reference import Reference
from dockyard.registry.service import Registry
from dockyard.registry.target import StoreTarget
from dockyard.sync.report import describe_error
from dockyard.sync.run import ManifestCache, RunPlace

log = logging.getLogger(__name__)
LOCAL_REGISTRY = "dockyard.local"  # a reference's registry part means nothing to the store
# the mirror pushes as itself, whoever created it; webhooks name it as the pusher
MIRROR_SUBJECT = Subject(name="dockyard-mirror", is_admin=True)


@dataclass
class Tally:
    """What one run did."""

    total: int = 0
    done: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    referrers: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)


class MirrorSync:
    """The handler of `mirror.sync` jobs; copies `parallel` tags at a time."""

    def __init__(
        self,
        registry: Registry,
        catalog: Catalog,
        *,
        session_factory: SessionFactory | None = None,
        parallel: int = 4,
    ) -> None:
        self.registry = registry
        self.db = registry.store.db
        self.catalog = catalog
        self.session_factory = session_factory
        self.parallel = parallel
        self.manifests = ManifestCache()  # by digest: the next runs do not read them again

    async def __call__(self, job: Job, ctx: JobContext) -> None:
        mirror_id = int(job.payload["mirror_id"])
        trigger = str(job.payload.get("trigger", "schedule"))
        async with self.db.write() as conn:
            mirror = await rows.by_id(conn, mirror_id)
            if mirror is None or mirror.status == "stopped":
                return
            run_id = await rows.start_run(conn, mirror.id, trigger)
            if mirror.visibility == "public":
                await rows.update_mirror(
                    conn, mirror.id, status="paused", status_reason=PUBLIC_REASON
                )
                await rows.finish_run(conn, run_id, "skipped", error=PUBLIC_REASON)
                return
            if mirror.status == "paused":
                await rows.update_mirror(conn, mirror.id, status="active", status_reason=None)
            entry = await entry_of(conn, mirror)
        tally = Tally()
        try:
            await self._sync(mirror, entry, tally, ctx)
        except Exception as exc:
            tally.errors.append(describe_error(exc))
        await self._finish(mirror, run_id, tally)
        if tally.errors:
            raise Retry(f"{len(tally.errors)} problem(s): {tally.errors[0]}")

    async def _sync(
        self, mirror: MirrorRow, entry: EntryRow, tally: Tally, ctx: JobContext
    ) -> None:
        client = upstream_client(entry, self.session_factory)
        try:
            tags = await self.catalog.refresh(entry, client)
            wanted = sorted(t.tag for t in tags if mirror.include_eol or not t.eol)
            tally.total = len(wanted)
            await self._progress(mirror, tally, ctx)
            upstream = upstream_of(entry)
            # as a sync run sees it: each repository's tags listed once (every tag's digest
            # tags), one referrers API probe, fallback tags listed once, manifests kept
            source = RunPlace(client, self.manifests)
            store = StoreTarget(self.registry, MIRROR_SUBJECT)
            limits = Limits(asyncio.Semaphore(8), asyncio.Semaphore(16))
            gate = asyncio.Semaphore(self.parallel)

            async def one(tag: str) -> None:
                async with gate:
                    if not await self._still_wanted(mirror):
                        return
                    try:
                        await self._copy_tag(source, upstream, store, mirror, tag, limits, tally)
                    except Exception as exc:
                        tally.errors.append(f"{tag}: {describe_error(exc)}")
                    tally.done += 1
                    await self._progress(mirror, tally, ctx)

            await asyncio.gather(*(one(tag) for tag in wanted))
        finally:
            await client.close()

    async def _copy_tag(
        self,
        source: RunPlace,
        upstream: Upstream,
        store: StoreTarget,
        mirror: MirrorRow,
        tag: str,
        limits: Limits,
        tally: Tally,
    ) -> None:
        destination = Reference(LOCAL_REGISTRY, mirror.repository, tag)
        attestations = (source, upstream.attestations) if upstream.attestations else None
        plan = await plan_copy(
            source,
            upstream.images.with_tag(tag),
            store,
            destination,
            CopyOptions(referrers=True, digest_tags=True),
            referrers_source=attestations,
            limits=limits,
        )
        status = plan.status
        if plan.has_work:

            def count(event: Event) -> None:
                if isinstance(event, BlobDone) and event.how == "copied":
                    tally.bytes += event.size

            result = await execute(plan, count, limits=limits)
            tally.referrers += result.referrers_copied
        if status == "add":
            tally.added += 1
        elif status == "update":
            tally.updated += 1
        else:
            tally.unchanged += 1

    async def _still_wanted(self, mirror: MirrorRow) -> bool:
        """Whether the mirror is still active and private (checked before each tag)."""
        async with self.db.read() as conn:
            now = await rows.by_id(conn, mirror.id)
        return now is not None and now.status == "active" and now.visibility != "public"

    async def _progress(self, mirror: MirrorRow, tally: Tally, ctx: JobContext) -> None:
        async with self.db.write() as conn:
            await rows.update_mirror(
                conn,
                mirror.id,
                tags_total=tally.total,
                tags_done=tally.done,
                bytes_done=tally.bytes,
            )
        await ctx.report({"tags_total": tally.total, "tags_done": tally.done, "bytes": tally.bytes})

    async def _finish(self, mirror: MirrorRow, run_id: int, tally: Tally) -> None:
        outcome = "failed" if tally.errors else "succeeded"
        async with self.db.write() as conn:
            await rows.finish_run(
                conn,
                run_id,
                outcome,
                tags_added=tally.added,
                tags_updated=tally.updated,
                tags_unchanged=tally.unchanged,
                referrers_copied=tally.referrers,
                bytes=tally.bytes,
                error="\n".join(tally.errors[:20]) or None,
            )
            await rows.update_mirror(conn, mirror.id, last_synced_at=time.time())
        log.info(
            "mirror %s (%s): %s, %d added, %d updated, %d unchanged, %d referrers, %d bytes",
            mirror.id,
            mirror.repository,
            outcome,
            tally.added,
            tally.updated,
            tally.unchanged,
            tally.referrers,
            tally.bytes,
        )
