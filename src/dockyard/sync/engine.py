"""The sync engine: regsync's `check`, `once` and `server` over the copy engine.

`Syncer.run` expands each entry of a `SyncConfig` (an image; every selected tag of a
repository; every selected repository of a registry), plans every tag with `plan_copy` and,
unless it is a dry run, executes the plans that have something to do, `parallel` at a time,
all sharing one `Limits` (so a blob two tags share moves once). A tag whose digest is
unchanged costs a HEAD on each side; with `referrers`, the referrers of its manifests are
listed again at the source, so attestations added after publishing are picked up, and at
the target unless (with `fastCheck`) this syncer listed them there in the last 10 minutes
(`run.KnownReferrers`: a server's cycles). Each target repository's tags are listed once per
run until it has some (`run.RunPlace.survey`): a new mirror is then written without a HEAD.

Around it: `sync_expand` lists what an entry selects, `sync_run` holds what one run shares,
`sync_report` what it found; `sync_server.serve` runs entries on their `schedule`/`interval`
until told to stop, as `regsync server`; `sync_client.sync_client` makes the `Client` a config
asks for: its `creds` over the user's settings.

Deviation from regsync, on purpose: when `referrers` is on, a repository's fallback referrer
tags (`sha256-<hex>`) are not synced as images (the referrer copy maintains them on a target
without the referrers API); when `digestTags` is on, digest tags (`sha256-<hex>.sig`, ...) are
copied with their subject rather than as images.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace

from dockyard.client.challenge import scope_for
from dockyard.client.registry import MANIFEST_ACCEPT, RegistryClient
from dockyard.client.target import Target
from dockyard.copy.events import BlobDone, Event, ManifestDone, ProgressSink
from dockyard.copy.execute import execute
from dockyard.copy.limits import Limits
from dockyard.copy.options import DEFAULT_CONCURRENCY
from dockyard.copy.plan import plan_copy
from dockyard.copy.platforms import select
from dockyard.copy.result import CopyError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Platform
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestUnknown
from dockyard.oci.reference import Reference
from dockyard.sync.expand import list_repositories, natural_key, repository_pairs, tags_to_sync
from dockyard.sync.model import SyncConfig, SyncEntry
from dockyard.sync.report import RepositoryResult, SyncReport, TagResult, describe_error
from dockyard.sync.run import KnownReferrers, ManifestCache, Run, RunPlace, TrustingPlace

Log = Callable[[str], None]
DEFAULT_SYNC_REQUESTS = 16


class Syncer:
    """Runs the entries of `config` between the places `place` reaches (a `RegistryClient`
    reaches every registry; tests pass an in-memory target).

    `progress` receives the copy engine's events of every copy; `log` gets one line for each
    thing worth telling (failures, waits for rate limits). `transfers` bounds blob transfers
    and `requests` manifest-level requests across the whole run (default: enough for
    `parallel` copies).
    """

    def __init__(
        self,
        config: SyncConfig,
        place: Target,
        *,
        progress: ProgressSink | None = None,
        log: Log | None = None,
        transfers: int | None = None,
        requests: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.place = place
        self.progress = progress
        self.log = log or (lambda _: None)
        parallel = config.parallel
        self.transfers = transfers or max(DEFAULT_CONCURRENCY, 2 * parallel)
        self.requests = requests or max(DEFAULT_SYNC_REQUESTS, 4 * parallel)
        self._sleep = sleep
        self._platforms: dict[tuple[str, str, str], Digest] = {}
        self._limits: Limits | None = None
        self._copies: asyncio.Semaphore | None = None
        # target repositories that had tags when surveyed: later runs of this syncer (server
        # mode) only HEAD their tags, as there is nothing left for a survey to spare
        self._settled: set[str] = set()
        self._manifests = ManifestCache()
        self._referrers = KnownReferrers()

    async def check(self, entries: Collection[int] | None = None) -> SyncReport:
        """Plan every tag; write nothing (`regsync check`)."""
        return await self.run(dry_run=True, entries=entries)

    async def run(
        self,
        *,
        dry_run: bool = False,
        missing_only: bool = False,
        entries: Collection[int] | None = None,
    ) -> SyncReport:
        """Sync the entries (all, or those whose index is in `entries`); `missing_only`
        copies only tags the target lacks (`regsync once --missing`)."""
        started = time.monotonic()
        if self._limits is None or self._copies is None:
            # shared by every run of this syncer, so concurrent server runs stay in bounds
            self._limits = Limits(
                asyncio.Semaphore(self.transfers), asyncio.Semaphore(self.requests)
            )
            self._copies = asyncio.Semaphore(self.config.parallel)
        place = RunPlace(self.place, self._manifests)
        ctx = Run(
            dry_run,
            missing_only,
            place,
            TrustingPlace(place, self._referrers),
            Limits(self._limits.transfers, self._limits.requests, self._limits.blobs),
            asyncio.Semaphore(self.requests),
            self._copies,
        )
        chosen = [e for e in self.config.sync if entries is None or e.index in entries]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._entry(entry, ctx)) for entry in chosen]
        repositories = tuple(r for task in tasks for r in task.result())
        return SyncReport(
            dry_run, repositories, time.monotonic() - started, tuple(e.index for e in chosen)
        )

    # --- entries -----------------------------------------------------------------------------

    async def _entry(self, entry: SyncEntry, ctx: Run) -> list[RepositoryResult]:
        if entry.type == "image":
            assert entry.source_ref is not None
            assert entry.target_ref is not None
            src, dst = entry.source_ref, entry.target_ref
            result = await self._image(entry, src, dst, ctx)
            return [RepositoryResult(entry.index, src.name, dst.name, (result,))]
        if entry.type == "repository":
            assert entry.source_ref is not None
            assert entry.target_ref is not None
            return [await self._repository(entry, entry.source_ref, entry.target_ref, ctx)]
        return await self._registry(entry, ctx)

    async def _registry(self, entry: SyncEntry, ctx: Run) -> list[RepositoryResult]:
        source = entry.source.strip().strip("/")
        target = entry.target.strip().rstrip("/")
        try:
            async with ctx.limits.requests:
                names = await list_repositories(self.place, source)
        except Exception as exc:
            message = f"cannot list the repositories of {source}: {describe_error(exc)}"
            self.log(f"{entry.name}: {message}")
            return [RepositoryResult(entry.index, source, target, error=message)]
        pairs = repository_pairs(entry, source, target, names, self.log)
        return list(await asyncio.gather(*(self._repository(entry, s, t, ctx) for s, t in pairs)))

    async def _repository(
        self, entry: SyncEntry, src: Reference, dst: Reference, ctx: Run
    ) -> RepositoryResult:
        survey = None
        if dst.name not in self._settled or ctx.missing_only:
            survey = asyncio.ensure_future(self._survey(dst, ctx))
        try:
            async with ctx.limits.requests:
                tags = await ctx.place.tag_list(src)
        except Exception as exc:
            if survey is not None:
                survey.cancel()
            message = f"cannot list the tags of {src.name}: {describe_error(exc)}"
            self.log(f"{entry.name}: {message}")
            return RepositoryResult(entry.index, src.name, dst.name, error=message)
        existing = await survey if survey is not None else set()
        if existing and not isinstance(existing, Exception):
            self._settled.add(dst.name)
        chosen = tags_to_sync(entry, tags)
        if not chosen:
            self.log(f"{entry.name}: no tag of {src.name} matches the filters")
        results: list[TagResult] = []
        if ctx.missing_only:
            if isinstance(existing, Exception):
                message = f"cannot list the tags of {dst.name}: {describe_error(existing)}"
                self.log(f"{entry.name}: {message}")
                return RepositoryResult(entry.index, src.name, dst.name, error=message)
            for tag in [t for t in chosen if t in existing]:
                skipped = TagResult(entry.index, src.with_tag(tag), dst.with_tag(tag), "skipped")
                results.append(replace(skipped, reason="on the target already (missing only)"))
            chosen = [t for t in chosen if t not in existing]
        results += await asyncio.gather(
            *(self._image(entry, src.with_tag(t), dst.with_tag(t), ctx) for t in chosen)
        )
        results.sort(key=lambda r: natural_key(r.tag))
        if not ctx.dry_run and any(r.digest is not None and not r.error for r in results):
            self._settled.add(dst.name)
        return RepositoryResult(entry.index, src.name, dst.name, tuple(results))

    async def _survey(self, dst: Reference, ctx: Run) -> set[str] | Exception:
        """The target repository's tags (none when it does not exist yet), listed once: the
        run then knows without asking which tags are new, and in a new repository that
        nothing is there yet. A failure leaves the run asking the target as usual."""
        try:
            async with ctx.limits.requests:
                return set(await ctx.place.survey(dst))
        except Exception as exc:
            return exc

    # --- one tag -----------------------------------------------------------------------------

    async def _image(self, entry: SyncEntry, src: Reference, dst: Reference, ctx: Run) -> TagResult:
        started = time.monotonic()
        base = TagResult(entry.index, src, dst, None)
        try:
            async with ctx.plans:
                if ctx.missing_only and entry.type == "image":
                    async with ctx.limits.requests:
                        if await ctx.place.manifest_head(dst) is not None:
                            return replace(base, change="skipped", reason="on the target already")
                source = await self._platform_source(entry, src, ctx) if entry.platform else src
                target = ctx.trusting if entry.fast_check else ctx.place
                plan = await plan_copy(
                    ctx.place,
                    source,
                    target,
                    dst,
                    entry.copy_options(self.transfers, self.requests),
                    referrers_source=_side(ctx.place, entry.referrer_source),
                    referrers_target=_side(target, entry.referrer_target),
                    limits=ctx.limits,
                )
        except Exception as exc:
            return self._failed(entry, base, exc, started)
        root = plan.nodes[plan.root]
        # a blob several tags need counts once, for the first tag planned
        needed = {(b.target.name, str(b.descriptor.digest)): b for b in plan.blobs if not b.present}
        fresh = [blob for key, blob in needed.items() if key not in ctx.claimed]
        ctx.claimed.update(needed)
        planned = replace(
            base,
            change=plan.status,
            digest=plan.digest,
            previous=plan.previous,
            manifests_to_write=plan.manifests_to_write,
            blobs_to_copy=len(fresh),
            bytes_to_transfer=sum(b.descriptor.size for b in fresh),
            referrers_to_copy=plan.referrers_to_copy,
        )
        if root.descriptor.media_type not in entry.media_types:
            return replace(
                planned,
                change="skipped",
                reason=f"media type {root.descriptor.media_type} is not in mediaTypes",
                seconds=time.monotonic() - started,
            )
        if ctx.dry_run or not plan.has_work:
            return replace(planned, seconds=time.monotonic() - started)
        try:
            await self._wait_for_rate_limit(entry, src)
            async with ctx.copies:
                result = await execute(ctx.patch(plan), self._sink(ctx), limits=ctx.limits)
        except Exception as exc:
            return self._failed(entry, planned, exc, started)
        return replace(planned, result=result, seconds=time.monotonic() - started)

    def _failed(
        self, entry: SyncEntry, base: TagResult, exc: Exception, started: float
    ) -> TagResult:
        message = str(exc) if isinstance(exc, CopyError) else describe_error(exc)
        self.log(f"{entry.name}: {base.source} -> {base.target}: {message}")
        return replace(base, error=message, seconds=time.monotonic() - started)

    def _sink(self, ctx: Run) -> ProgressSink:
        progress = self.progress

        def sink(event: Event) -> None:
            if isinstance(event, BlobDone):
                ctx.done_blobs.add((event.target.name, str(event.digest)))
            elif isinstance(event, ManifestDone):
                ctx.done_manifests.add((event.target.name, str(event.digest)))
            if progress is not None:
                progress(event)

        return sink

    async def _platform_source(self, entry: SyncEntry, src: Reference, ctx: Run) -> Reference:
        """The source manifest for `entry.platform` (regsync's `platform`): the index's entry
        for it, found once per index digest, or the manifest itself when it is no index."""
        assert entry.platform is not None
        async with ctx.limits.requests:
            found = await ctx.place.manifest_head(src)
        if found is None:
            raise ManifestUnknown(f"manifest {src} is not in the source")
        if not mt.is_index(found.media_type):
            return src.with_digest(found.digest)
        key = (src.name, str(found.digest), entry.platform)
        digest = self._platforms.get(key)
        if digest is None:
            async with ctx.limits.requests:
                index = await ctx.place.manifest_get(src.with_digest(found.digest))
            digest = select(index, Platform.parse(entry.platform)).digest
            self._platforms[key] = digest
        return src.with_digest(digest)

    async def _wait_for_rate_limit(self, entry: SyncEntry, src: Reference) -> None:
        """regsync's `ratelimit`: wait while the source has fewer pulls left than `min`."""
        limit = entry.ratelimit
        if limit.min <= 0 or not isinstance(self.place, RegistryClient):
            return
        while True:
            remaining = await rate_limit_remaining(self.place, src)
            if remaining is None or remaining >= limit.min:
                return
            self.log(
                f"{entry.name}: {src.registry} has {remaining} pulls left, fewer than "
                f"ratelimit.min {limit.min}; checking again in {limit.retry:g}s"
            )
            await self._sleep(limit.retry)

    async def close(self) -> None:
        await self.place.close()


def _side(place: Target, ref: Reference | None) -> tuple[Target, Reference] | None:
    return (place, ref) if ref is not None else None


async def rate_limit_remaining(client: RegistryClient, ref: Reference) -> int | None:
    """The pulls left at the source (Docker Hub's `RateLimit-Remaining: 100;w=21600`), by a
    HEAD of the manifest; None when the registry does not say."""
    path = f"/v2/{ref.repository}/manifests/{ref.reference}"
    async with client.transport(ref).request(
        "HEAD",
        path,
        scopes=frozenset({scope_for(ref.repository, "pull")}),
        headers={"Accept": ", ".join(MANIFEST_ACCEPT)},
    ) as response:
        header = response.headers.get("RateLimit-Remaining")
    if not header:
        return None
    try:
        return int(header.split(";", 1)[0].strip())
    except ValueError:
        return None
