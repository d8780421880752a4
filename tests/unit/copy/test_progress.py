"""Progress: totals from events, and the plain, JSON and Rich renderers."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from dockyard.copy import copy_image
from dockyard.copy.events import BlobBytes, BlobDone, CopyStarted, ManifestDone
from dockyard.copy.progress import (
    JsonRenderer,
    PlainRenderer,
    Progress,
    RichRenderer,
    Tracker,
    progress_for,
)
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference
from unit.copy.fakes import MemoryTarget
from unit.copy.scenes import DST, SRC, multi_platform

REF = Reference.parse("dst.test/repo:v1")
A, B = Digest.of(b"a"), Digest.of(b"b")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_tracker_sums_bytes_images_and_rate() -> None:
    clock = Clock()
    tracker = Tracker(clock)
    tracker.apply(CopyStarted(REF, REF, 3, 2, 300))
    clock.now = 1.0
    tracker.apply(BlobBytes(REF, A, 100, 200))
    clock.now = 2.0
    snap = tracker.apply(BlobBytes(REF, A, 200, 200))
    assert (snap.bytes_done, snap.bytes_total) == (200, 300)
    assert snap.rate == pytest.approx(100.0)
    snap = tracker.apply(BlobBytes(REF, A, 0, 200))  # sent again: bytes go back
    assert snap.bytes_done == 0
    tracker.apply(BlobDone(REF, A, 200, "copied"))
    snap = tracker.apply(BlobDone(REF, B, 100, "mounted"))
    assert (snap.bytes_done, snap.blobs_done) == (300, 2)
    snap = tracker.apply(BlobDone(REF, Digest.of(b"c"), 50, "skipped", counted=False))
    assert (snap.bytes_done, snap.blobs_done) == (300, 2)
    snap = tracker.apply(ManifestDone(REF, A, "root", "copied"))
    assert (snap.images_done, snap.images_total) == (1, 3)


def test_plain_lines_throttle_byte_counts() -> None:
    clock, out = Clock(), io.StringIO()
    with Progress(PlainRenderer(out, interval=2.0, clock=clock), clock) as progress:
        progress(CopyStarted(REF, REF, 1, 1, 1024))
        progress(BlobBytes(REF, A, 10, 1024))
        progress(BlobBytes(REF, A, 20, 1024))  # within the interval: no line
        clock.now = 3.0
        progress(BlobBytes(REF, A, 1024, 1024))
        progress(BlobDone(REF, A, 1024, "copied"))
        progress(ManifestDone(REF, B, "root", "copied"))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"copy {REF} -> {REF}: 1 manifests, 1 blobs (1.0 KiB)")
    assert len([line for line in lines if "%" in line]) == 2
    assert "100%" in lines[-3]
    assert lines[-2] == f"blob sha256:{A.encoded[:12]} copied (1.0 KiB)"
    assert lines[-1] == f"root sha256:{B.encoded[:12]} copied to {REF}"


def test_json_lines_name_the_event_and_carry_totals() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(JsonRenderer(out, clock=clock), clock)
    progress(CopyStarted(REF, REF, 1, 1, 10))
    progress(BlobBytes(REF, A, 5, 10))
    progress(BlobBytes(REF, A, 6, 10))  # throttled
    progress(BlobDone(REF, A, 10, "copied"))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["copy-started", "blob-bytes", "blob-done"]
    assert records[2]["digest"] == str(A)
    assert records[2]["target"] == str(REF)
    assert records[2]["progress"]["bytes_done"] == 10


async def test_a_whole_copy_renders_in_every_format() -> None:
    for output_format in ("plain", "json"):
        source, target, out = MemoryTarget(), MemoryTarget(), io.StringIO()
        multi_platform(source)
        with progress_for(output_format, out) as progress:
            await copy_image(source, SRC, target, DST, progress=progress)
        assert str(DST) in out.getvalue()
    source, target, out = MemoryTarget(), MemoryTarget(), io.StringIO()
    multi_platform(source)
    console = Console(file=out, force_terminal=True, width=100)
    with Progress(RichRenderer(console)) as progress:
        await copy_image(source, SRC, target, DST, progress=progress)
    assert f"copied {DST}: 5 manifests" in out.getvalue()


def test_auto_picks_plain_lines_off_a_terminal() -> None:
    progress = progress_for("auto", io.StringIO())
    assert isinstance(progress.renderer, PlainRenderer)
    with pytest.raises(ValueError, match="unknown progress format"):
        progress_for("fancy", io.StringIO())
