"""Executing a copy plan: every blob streams (or is mounted) before the manifests that name
it, children before their index, a subject before its referrers and digest tags; what the
target has is skipped; manifests go as their exact source bytes, so every digest is kept."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

from dockyard.client.target import Target
from dockyard.copy.events import (
    BlobBytes,
    BlobDone,
    BlobHow,
    CopyFailed,
    CopyFinished,
    CopyStarted,
    Event,
    ManifestDone,
    ProgressSink,
)
from dockyard.copy.graph import BlobNode, CopyPlan, ManifestNode, Role
from dockyard.copy.limits import Limits
from dockyard.copy.result import CopyError, CopyResult, SparseIndexRefused, failing
from dockyard.oci.errors import ManifestBlobUnknown, ManifestInvalid, OciError


async def execute(
    plan: CopyPlan, progress: ProgressSink | None = None, *, limits: Limits | None = None
) -> CopyResult:
    """Carry out `plan`, reporting to `progress`; what it did, or `CopyError` naming each step
    that failed (the first failure stops the copy; nothing half-written becomes a tag, since
    a manifest is pushed only after everything it names).

    `limits` bound the blob transfers and manifest requests in flight; pass the same limits
    to several copies to bound them together and to never move a blob twice at once.
    """
    run = _Run(plan, progress, limits or Limits.of(plan.options))
    return await run.run()


class _Run:
    def __init__(self, plan: CopyPlan, progress: ProgressSink | None, limits: Limits) -> None:
        self.plan = plan
        self.progress = progress
        self.limits = limits
        self.counts: Counter[str] = Counter()

    def emit(self, event: Event) -> None:
        if self.progress is not None:
            self.progress(event)

    async def run(self) -> CopyResult:
        """One task per blob and per manifest; each manifest waits for what it names."""
        plan = self.plan
        self.emit(
            CopyStarted(
                plan.source,
                plan.target,
                len(plan.nodes),
                plan.blobs_to_copy,
                plan.bytes_to_transfer,
            )
        )
        started = time.monotonic()
        try:
            async with asyncio.TaskGroup() as group:
                blobs = [self._start_blob(group, blob) for blob in plan.blobs]
                manifests: list[asyncio.Task[None]] = []
                for index, node in enumerate(plan.nodes):
                    waits = [manifests[d] for d in node.dependencies if d < index]
                    waits += [task for b in node.blobs if (task := blobs[b]) is not None]
                    manifests.append(group.create_task(self._manifest(node, waits)))
        except BaseExceptionGroup as failures:
            error = CopyError.from_group(plan.source, plan.target, failures)
            self.emit(CopyFailed(plan.source, plan.target, str(error)))
            raise error from None
        result = self._result(time.monotonic() - started)
        self.emit(CopyFinished(result))
        return result

    def _result(self, seconds: float) -> CopyResult:
        counts = self.counts
        return CopyResult(
            self.plan.source,
            self.plan.target,
            self.plan.digest,
            self.plan.previous,
            manifests_copied=counts["manifests_copied"],
            manifests_skipped=counts["manifests_skipped"],
            referrers_copied=counts["referrers_copied"],
            blobs_copied=counts["blobs_copied"],
            blobs_mounted=counts["blobs_mounted"],
            blobs_skipped=counts["blobs_skipped"],
            bytes_copied=counts["bytes_copied"],
            seconds=seconds,
        )

    # --- manifests ---------------------------------------------------------------------------

    async def _manifest(self, node: ManifestNode, waits: list[asyncio.Task[None]]) -> None:
        """Push `node` once everything it depends on is on the target."""
        if waits:
            await asyncio.wait(waits)
            for task in waits:
                if task.cancelled():
                    raise asyncio.CancelledError
                if (error := task.exception()) is not None:
                    raise error  # the same failure, reported once
        if node.present or node.manifest is None:
            self.counts["manifests_skipped"] += 1
            self.emit(ManifestDone(node.target, node.digest, node.role.value, "skipped"))
            return
        place = self.plan.endpoints.get(node.writes)
        with failing(_push_step(node), node.target, node.descriptor):
            async with self.limits.requests:
                try:
                    await place.manifest_put(node.target, node.manifest)
                except (ManifestBlobUnknown, ManifestInvalid) as exc:
                    if not node.left_out:
                        raise
                    raise SparseIndexRefused(node.digest, node.target, node.left_out) from exc
        self.counts["manifests_copied"] += 1
        if node.role is Role.REFERRER:
            self.counts["referrers_copied"] += 1
        self.emit(ManifestDone(node.target, node.digest, node.role.value, "copied"))

    # --- blobs -------------------------------------------------------------------------------

    def _start_blob(self, group: asyncio.TaskGroup, blob: BlobNode) -> asyncio.Task[None] | None:
        if blob.present:
            self._blob_done(blob, "skipped")
            return None
        return group.create_task(self._blob(blob))

    def _blob_done(self, blob: BlobNode, how: BlobHow) -> None:
        self.counts[f"blobs_{how}"] += 1
        if how == "copied":
            self.counts["bytes_copied"] += blob.descriptor.size
        desc = blob.descriptor
        self.emit(BlobDone(blob.target, desc.digest, desc.size, how, counted=not blob.present))

    async def _blob(self, blob: BlobNode) -> None:
        """Put one blob on the target, unless a copy sharing these limits already did."""
        place = self.plan.endpoints.get(blob.writes)
        key = (id(place), blob.target.name, str(blob.descriptor.digest))
        earlier = self.limits.blobs.get(key)
        if key in self.limits.done or (earlier is not None and await asyncio.shield(earlier)):
            self._blob_done(blob, "skipped")
            return
        mine: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.limits.blobs[key] = mine
        done = False
        try:
            how = await self._transfer(blob, place)
            done = True
            self.limits.done.add(key)
        finally:
            mine.set_result(done)  # when False, whoever waits on this blob copies it itself
            if self.limits.blobs.get(key) is mine:
                del self.limits.blobs[key]  # copies with other limits ask the target
        self._blob_done(blob, how)

    async def _transfer(self, blob: BlobNode, place: Target) -> BlobHow:
        desc = blob.descriptor
        if blob.mountable:
            try:
                async with self.limits.requests:
                    if await place.blob_mount(blob.target, desc, blob.source.repository):
                        return "mounted"
            except OciError:
                pass  # e.g. no pull access to the other repository: send the bytes instead
        source = self.plan.endpoints.get(blob.reads)
        with failing(f"copy blob from {blob.source.name}", blob.target, desc):
            async with self.limits.transfers:
                await place.blob_put(blob.target, desc, lambda: self._stream(source, blob))
        return "copied"

    async def _stream(self, source: Target, blob: BlobNode) -> AsyncIterator[bytes]:
        """The blob's bytes from the source, counted for progress; opened afresh on every
        call, so an upload that failed half-way can send them again."""
        desc = blob.descriptor
        done = 0
        self.emit(BlobBytes(blob.target, desc.digest, done, desc.size))
        stream = source.blob_get(blob.source, desc)
        try:
            async for chunk in stream:
                done += len(chunk)
                self.emit(BlobBytes(blob.target, desc.digest, done, desc.size))
                yield chunk
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()


def _push_step(node: ManifestNode) -> str:
    kind = "index" if node.manifest is not None and node.manifest.is_index else "manifest"
    step = f"push {node.role.value} {kind} from {node.source.name}"
    if node.left_out:
        step += f" ({len(node.left_out)} entries left out by the platform filter)"
    return step
