"""The sync engine: regsync's `check`, `once` and `server` over the copy engine.

`Syncer.run` expands each entry of a `SyncConfig` (an image; every selected tag of a
repository; every selected repository of a registry), plans every tag with `plan_copy` and,
unless it is a dry run, executes the plans that have something to do, `parallel` at a time,
all sharing one `Limits` (so a blob two tags share moves once). A tag whose digest is
unchanged costs a HEAD on each side; with `referrers`, the referrers of its manifests are
listed again on both sides, so attestations added after publishing are picked up.

`serve` runs entries on their `schedule`/`interval` until told to stop, as `regsync server`.
`sync_client` makes the `Client` a config asks for: its `creds` over the user's settings.

Deviation from regsync, on purpose: when `referrers` is on, a repository's fallback referrer
tags (`sha256-<hex>`) are not synced as images (the referrer copy maintains them on a target
without the referrers API); when `digestTags` is on, digest tags (`sha256-<hex>.sig`, ...) are
copied with their subject rather than as images.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from dockyard.client.challenge import scope_for
from dockyard.client.hosts import Client, SessionFactory, default_session
from dockyard.client.links import next_link
from dockyard.client.registry import MANIFEST_ACCEPT, RegistryClient
from dockyard.client.responses import read_body
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import (
    ClientConfig,
    Credential,
    RegistrySettings,
    docker_credentials,
)
from dockyard.client.target import BlobBody, Target
from dockyard.copy.events import BlobDone, Event, ManifestDone, ProgressSink
from dockyard.copy.execute import execute
from dockyard.copy.graph import CopyPlan, Role
from dockyard.copy.limits import Limits
from dockyard.copy.options import DEFAULT_CONCURRENCY
from dockyard.copy.plan import plan_copy
from dockyard.copy.platforms import select
from dockyard.copy.result import CopyError, CopyResult
from dockyard.copy.sync_config import SyncConfig, SyncConfigError, SyncEntry, select_tags
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestInvalid, ManifestUnknown, OciError
from dockyard.oci.manifest import Manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag

Log = Callable[[str], None]
DEFAULT_SYNC_REQUESTS = 16
MAX_CATALOG_PAGE = 16 * 1024 * 1024
MAX_CATALOG_PAGES = 10_000
_FALLBACK_TAG = re.compile(r"(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{64})")
_DIGEST_TAG = re.compile(r"(sha256|sha512)-[0-9a-f]{64}\..+")


@runtime_checkable
class Catalog(Protocol):
    """A place that can list its repositories (for `type: registry` entries)."""

    async def catalog(self, registry: str) -> list[str]: ...


# --- results -------------------------------------------------------------------------------------


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


# --- the engine ----------------------------------------------------------------------------------


@dataclass
class _Run:
    """State shared by the tags of one run."""

    dry_run: bool
    missing_only: bool
    place: Target
    limits: Limits
    plans: asyncio.Semaphore
    copies: asyncio.Semaphore
    claimed: set[tuple[str, str]] = field(default_factory=set)
    done_blobs: set[tuple[str, str]] = field(default_factory=set)
    done_manifests: set[tuple[str, str]] = field(default_factory=set)

    def patch(self, plan: CopyPlan) -> CopyPlan:
        """`plan` with what other copies of this run have put on the target since it was
        made marked present, so shared blobs and manifests move once."""
        blobs = tuple(
            replace(b, present=True)
            if not b.present and (b.target.name, str(b.descriptor.digest)) in self.done_blobs
            else b
            for b in plan.blobs
        )
        nodes = tuple(
            replace(n, present=True)
            if not n.present
            and n.role in (Role.CHILD, Role.REFERRER)
            and (n.target.name, str(n.digest)) in self.done_manifests
            else n
            for n in plan.nodes
        )
        if blobs == plan.blobs and nodes == plan.nodes:
            return plan
        return replace(plan, blobs=blobs, nodes=nodes)


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
        ctx = _Run(
            dry_run,
            missing_only,
            _RunPlace(self.place),
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

    async def _entry(self, entry: SyncEntry, ctx: _Run) -> list[RepositoryResult]:
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

    async def _registry(self, entry: SyncEntry, ctx: _Run) -> list[RepositoryResult]:
        source = entry.source.strip().strip("/")
        target = entry.target.strip().rstrip("/")
        try:
            async with ctx.limits.requests:
                names = await list_repositories(self.place, source)
        except Exception as exc:
            message = f"cannot list the repositories of {source}: {_describe(exc)}"
            self.log(f"{entry.name}: {message}")
            return [RepositoryResult(entry.index, source, target, error=message)]
        chosen = entry.repos.select(sorted(set(names)))
        pairs = []
        for name in chosen:
            try:
                pairs.append(
                    (Reference.parse(f"{source}/{name}"), Reference.parse(f"{target}/{name}"))
                )
            except OciError as exc:
                self.log(f"{entry.name}: skipping repository {name!r}: {exc.message}")
        return list(await asyncio.gather(*(self._repository(entry, s, t, ctx) for s, t in pairs)))

    async def _repository(
        self, entry: SyncEntry, src: Reference, dst: Reference, ctx: _Run
    ) -> RepositoryResult:
        try:
            async with ctx.limits.requests:
                tags = await self.place.tag_list(src)
        except Exception as exc:
            message = f"cannot list the tags of {src.name}: {_describe(exc)}"
            self.log(f"{entry.name}: {message}")
            return RepositoryResult(entry.index, src.name, dst.name, error=message)
        if entry.referrers:
            tags = [t for t in tags if not _FALLBACK_TAG.fullmatch(t)]
        if entry.digest_tags:
            tags = [t for t in tags if not _DIGEST_TAG.fullmatch(t)]
        chosen = select_tags(entry.tags, tags)
        if not chosen:
            self.log(f"{entry.name}: no tag of {src.name} matches the filters")
        results: list[TagResult] = []
        if ctx.missing_only:
            try:
                existing = set(await self._existing_tags(dst, ctx))
            except Exception as exc:
                message = f"cannot list the tags of {dst.name}: {_describe(exc)}"
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
        return RepositoryResult(entry.index, src.name, dst.name, tuple(results))

    async def _existing_tags(self, dst: Reference, ctx: _Run) -> list[str]:
        try:
            async with ctx.limits.requests:
                return await self.place.tag_list(dst)
        except OciError as exc:
            if exc.status == 404:
                return []
            raise

    # --- one tag -----------------------------------------------------------------------------

    async def _image(
        self, entry: SyncEntry, src: Reference, dst: Reference, ctx: _Run
    ) -> TagResult:
        started = time.monotonic()
        base = TagResult(entry.index, src, dst, None)
        try:
            async with ctx.plans:
                if ctx.missing_only and entry.type == "image":
                    async with ctx.limits.requests:
                        if await ctx.place.manifest_head(dst) is not None:
                            return replace(base, change="skipped", reason="on the target already")
                source = await self._platform_source(entry, src, ctx) if entry.platform else src
                plan = await plan_copy(
                    ctx.place,
                    source,
                    ctx.place,
                    dst,
                    entry.copy_options(self.transfers, self.requests),
                    referrers_source=_side(ctx.place, entry.referrer_source),
                    referrers_target=_side(ctx.place, entry.referrer_target),
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
        if ctx.dry_run or not _has_work(plan):
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
        message = str(exc) if isinstance(exc, CopyError) else _describe(exc)
        self.log(f"{entry.name}: {base.source} -> {base.target}: {message}")
        return replace(base, error=message, seconds=time.monotonic() - started)

    def _sink(self, ctx: _Run) -> ProgressSink:
        progress = self.progress

        def sink(event: Event) -> None:
            if isinstance(event, BlobDone):
                ctx.done_blobs.add((event.target.name, str(event.digest)))
            elif isinstance(event, ManifestDone):
                ctx.done_manifests.add((event.target.name, str(event.digest)))
            if progress is not None:
                progress(event)

        return sink

    async def _platform_source(self, entry: SyncEntry, src: Reference, ctx: _Run) -> Reference:
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


class _RunPlace:
    """The place as one run sees it: `place` itself, except that in repositories of a
    `RegistryClient` known to have no referrers API (distribution 2.8), the fallback tags are
    listed once per run, so a manifest without referrers costs no request to find that out
    (a referrer tag made later in the run is found by the next run)."""

    def __init__(self, place: Target) -> None:
        self.place = place
        self.client = place if isinstance(place, RegistryClient) else None
        self._fallback: dict[str, frozenset[str] | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def manifest_get(self, ref: Reference) -> Manifest:
        return await self.place.manifest_get(ref)

    async def manifest_head(self, ref: Reference) -> Descriptor | None:
        return await self.place.manifest_head(ref)

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Descriptor:
        return await self.place.manifest_put(ref, manifest)

    async def tag_list(self, ref: Reference) -> list[str]:
        return await self.place.tag_list(ref)

    async def blob_head(self, ref: Reference, desc: Descriptor) -> Descriptor | None:
        return await self.place.blob_head(ref, desc)

    def blob_get(self, ref: Reference, desc: Descriptor) -> AsyncIterator[bytes]:
        return self.place.blob_get(ref, desc)

    async def blob_put(self, ref: Reference, desc: Descriptor, body: BlobBody) -> Descriptor:
        return await self.place.blob_put(ref, desc, body)

    async def blob_mount(self, ref: Reference, desc: Descriptor, from_repository: str) -> bool:
        return await self.place.blob_mount(ref, desc, from_repository)

    async def referrers(
        self, ref: Reference, digest: Digest | None = None, artifact_type: str | None = None
    ) -> list[Descriptor]:
        subject = digest or ref.digest
        client = self.client
        if (
            client is not None
            and subject is not None
            and client.referrers_store.api.get((ref.registry, ref.repository)) is False
        ):
            tags = await self._fallback_tags(ref)
            if tags is not None and fallback_tag(subject) not in tags:
                return []
        return await self.place.referrers(ref, digest, artifact_type)

    async def _fallback_tags(self, ref: Reference) -> frozenset[str] | None:
        name = ref.name
        if name not in self._fallback:
            async with self._locks.setdefault(name, asyncio.Lock()):
                if name not in self._fallback:
                    self._fallback[name] = await self._list_fallback_tags(ref)
        return self._fallback[name]

    async def _list_fallback_tags(self, ref: Reference) -> frozenset[str] | None:
        try:
            tags = await self.place.tag_list(ref)
        except OciError as err:
            return frozenset() if err.status == 404 else None
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            return None  # each lookup asks for its fallback tag instead
        return frozenset(t for t in tags if _FALLBACK_TAG.fullmatch(t))

    async def close(self) -> None:
        await self.place.close()


def _is_a_target(place: _RunPlace) -> Target:
    return place


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts `1.9` before `1.10`: runs of digits compare as numbers."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    )


def _side(place: Target, ref: Reference | None) -> tuple[Target, Reference] | None:
    return (place, ref) if ref is not None else None


def _has_work(plan: CopyPlan) -> bool:
    return any(not n.present for n in plan.nodes) or any(not b.present for b in plan.blobs)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OciError):
        return f"{exc.message} ({exc.code})" if exc.code != "UNKNOWN" else exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- registries ----------------------------------------------------------------------------------


async def list_repositories(place: Target, registry: str) -> list[str]:
    """The repositories of `registry` (the `_catalog` API of a remote registry)."""
    if isinstance(place, Catalog):
        return await place.catalog(registry)
    if isinstance(place, RegistryClient):
        return await registry_catalog(place, registry)
    raise ValueError(f"{type(place).__name__} cannot list the repositories of {registry}")


async def registry_catalog(client: RegistryClient, registry: str) -> list[str]:
    """`GET /v2/_catalog`, following `Link` pages."""
    transport = client.transport(registry)
    url = transport.url("/v2/_catalog")
    names: list[str] = []
    seen = set()
    for _ in range(MAX_CATALOG_PAGES):
        async with transport.request(
            "GET", url, scopes=frozenset({"registry:catalog:*"})
        ) as response:
            body = await read_body(response, MAX_CATALOG_PAGE)
            following = next_link(response.headers.getall("Link", []), response.url)
        try:
            data = json.loads(body)
        except ValueError:
            raise ManifestInvalid(f"the catalog of {registry} is not JSON") from None
        page = data.get("repositories") if isinstance(data, dict) else None
        if page is None:
            page = []
        if not isinstance(page, list) or not all(isinstance(n, str) for n in page):
            raise ManifestInvalid(f"the catalog of {registry} lists no repository names")
        names += page
        if following is None or following in seen:
            break
        seen.add(following)
        url = following
    return names


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


# --- the client a config asks for ------------------------------------------------------------


def sync_client_config(config: SyncConfig, base: ClientConfig | None = None) -> ClientConfig:
    """The user's registry settings (`base`, default: `registries.json` under
    `$DOCKYARD_CONFIG`) with the config's `creds` laid over them."""
    settings = (base if base is not None else ClientConfig.load()).model_copy(deep=True)
    for creds in config.creds:
        changes: dict[str, Any] = {}
        if creds.tls is not None:
            changes["tls"] = creds.tls
        if creds.regcert:
            changes["ca_pem"] = creds.regcert
        if creds.req_per_sec is not None:
            changes["req_per_sec"] = creds.req_per_sec
        if creds.req_concurrent is not None:
            changes["req_concurrent"] = creds.req_concurrent
        if creds.blob_chunk is not None:
            changes["blob_chunk"] = creds.blob_chunk
        if creds.user is not None or creds.password is not None:
            changes["credential"] = Credential(
                username=creds.user or "", password=creds.password or ""
            )
        settings.update(creds.registry, **changes)
    return settings


def sync_client(
    config: SyncConfig,
    base: ClientConfig | None = None,
    *,
    docker: Mapping[str, Credential] | None = None,
    retry: RetryPolicy | None = None,
) -> Client:
    """A `Client` with the settings `sync_client_config` gives, Docker's credentials as a
    fallback (unless `skipDockerConfig`), connections to each `creds` `hostname`, and the
    config's `userAgent`."""
    if docker is None:
        docker = {} if config.defaults.skip_docker_config else docker_credentials()
    routes = {c.registry: c.hostname for c in config.creds if c.hostname}
    agent = config.defaults.user_agent
    factory: SessionFactory | None = None
    if routes or agent:

        def make(settings: RegistrySettings) -> aiohttp.ClientSession:
            return _session(settings, routes.get(settings.name), agent)

        factory = make
    return Client(
        sync_client_config(config, base), docker=docker, session_factory=factory, retry=retry
    )


def _session(
    settings: RegistrySettings, hostname: str | None, agent: str | None
) -> aiohttp.ClientSession:
    """`hosts.default_session`, connecting to `hostname` for the registry's host when given."""
    resolver = _Redirect(settings.api_host, hostname) if hostname is not None else None
    return default_session(settings, resolver=resolver, agent=agent)


def _split_host(text: str) -> tuple[str, int | None]:
    """`host[:port]` (or `[v6]:port`) as host and port (None when not given)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return text, None


class _Redirect(AbstractResolver):
    """Resolves the registry's host (`name`) to `hostname` (regsync's `creds.hostname`), and
    every other host (token services) as usual."""

    def __init__(self, name: str, hostname: str) -> None:
        self.host, self.port = _split_host(name.lower())
        self.to_host, self.to_port = _split_host(hostname)
        self.inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.lower() == self.host and (self.port is None or port == self.port):
            found = await self.inner.resolve(self.to_host, self.to_port or port, family)
            for entry in found:
                entry["hostname"] = host
            return found
        return await self.inner.resolve(host, port, family)

    async def close(self) -> None:
        await self.inner.close()


# --- the server ----------------------------------------------------------------------------------


async def serve(
    syncer: Syncer,
    stop: asyncio.Event,
    *,
    on_report: Callable[[SyncReport], None] | None = None,
    log: Log | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """`regsync server`: copy what the targets lack, then run each entry on its schedule
    (an entry still running when it is due again is not started twice), until `stop` is set;
    then cancel what runs (a copy is safe to interrupt: a manifest is only pushed after all
    it names) and return. Entries without a schedule or interval are ignored, as regsync
    ignores them; SyncConfigError when none has one."""
    say = log or (lambda _: None)
    scheduled = [e for e in syncer.config.sync if e.schedule is not None]
    for entry in syncer.config.sync:
        if entry.schedule is None:
            say(f"{entry.describe()}: no schedule or interval, so the server never runs it")
    if not scheduled:
        raise SyncConfigError(
            f"{syncer.config.path}: no sync entry has a schedule or an interval, so the server "
            "has nothing to do (use `dockyard sync once` for a single run)"
        )
    busy: set[int] = set()
    running: set[asyncio.Task[None]] = set()

    async def one_run(indexes: Sequence[int], missing_only: bool) -> None:
        try:
            report = await syncer.run(missing_only=missing_only, entries=indexes)
        except Exception as exc:
            say(f"sync run of entries {list(indexes)} failed: {_describe(exc)}")
            return
        if on_report is not None:
            on_report(report)

    def start(indexes: list[int], missing_only: bool) -> None:
        busy.update(indexes)
        task = asyncio.create_task(one_run(indexes, missing_only))
        running.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            running.discard(done)
            busy.difference_update(indexes)

        task.add_done_callback(finished)

    now = clock()
    due = {e.index: e.schedule.next_after(now) for e in scheduled if e.schedule is not None}
    schedules = {e.index: e.schedule for e in scheduled if e.schedule is not None}
    start([e.index for e in scheduled], missing_only=True)
    try:
        while not stop.is_set():
            now = clock()
            ready = sorted(i for i, at in due.items() if at is not None and at <= now)
            for index in ready:
                due[index] = schedules[index].next_after(now)
                if index in busy:
                    say(f"sync[{index}] is still running; this turn is skipped")
            startable = [i for i in ready if i not in busy]
            if startable:
                start(startable, missing_only=False)
            upcoming = [at for at in due.values() if at is not None]
            timeout = max(0.0, min(upcoming) - clock()) if upcoming else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout)
    finally:
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
