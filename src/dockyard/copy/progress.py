"""Progress of copies for people and programs: `Progress` sums the engine's events into totals
(bytes done of total, rate, images done of total) and hands them to a renderer: Rich bars on
a terminal, plain lines, or JSON lines (`--format json`). One `Progress` may follow several
copies (a sync run); the totals grow as each starts."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from types import TracebackType
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress

from dockyard.copy.events import (
    BlobBytes,
    BlobDone,
    CopyFinished,
    CopyStarted,
    Event,
    ManifestDone,
)
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference

Clock = Callable[[], float]
Shown = Callable[[str], str]
"""Rewrites a text before it is shown (the identity by default)."""
RATE_WINDOW = 5.0
RATE_SAMPLE = 0.1


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Totals so far: blob bytes done of total (mounted blobs count as done), the recent
    transfer rate in bytes per second, manifests ("images") and blobs done of total."""

    bytes_done: int
    bytes_total: int
    rate: float
    images_done: int
    images_total: int
    blobs_done: int
    blobs_total: int
    elapsed: float

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Tracker:
    """Sums events into a `Snapshot`; a blob that restarts moves its bytes back."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.started: float | None = None
        self.bytes_done = self.bytes_total = 0
        self.images_done = self.images_total = 0
        self.blobs_done = self.blobs_total = 0
        self.blob_bytes: dict[tuple[str, str], int] = {}
        self.streamed = 0
        self.samples: deque[tuple[float, int]] = deque()

    def apply(self, event: Event) -> Snapshot:
        """Take `event` into the totals; the totals after it."""
        now = self.clock()
        if self.started is None:
            self.started = now
        if isinstance(event, CopyStarted):
            self.images_total += event.images_total
            self.blobs_total += event.blobs_total
            self.bytes_total += event.bytes_total
        elif isinstance(event, BlobBytes):
            self._blob_at(event.target, event.digest, event.done, streamed=True)
        elif isinstance(event, BlobDone) and event.counted:
            self._blob_at(event.target, event.digest, event.size, streamed=False)
            self.blobs_done += 1
        elif isinstance(event, ManifestDone):
            self.images_done += 1
        return self._snapshot(now)

    def _blob_at(self, target: Reference, digest: Digest, done: int, *, streamed: bool) -> None:
        key = (target.name, str(digest))
        delta = done - self.blob_bytes.get(key, 0)
        self.blob_bytes[key] = done
        self.bytes_done += delta
        if streamed and delta > 0:
            self.streamed += delta

    def _snapshot(self, now: float) -> Snapshot:
        if not self.samples or now - self.samples[-1][0] >= RATE_SAMPLE:
            self.samples.append((now, self.streamed))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW:
            self.samples.popleft()
        first_time, first_bytes = self.samples[0]
        span = now - first_time
        rate = (self.streamed - first_bytes) / span if span > 0 else 0.0
        return Snapshot(
            self.bytes_done,
            self.bytes_total,
            rate,
            self.images_done,
            self.images_total,
            self.blobs_done,
            self.blobs_total,
            now - (self.started or now),
        )


class Renderer(Protocol):
    """Shows progress; `update` is called for every event with the totals after it."""

    def update(self, event: Event, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


class Progress:
    """A `ProgressSink` for the engine: tracks totals, renders them; close it when done
    (or use it as a context manager)."""

    def __init__(self, renderer: Renderer, clock: Clock = time.monotonic) -> None:
        self.renderer = renderer
        self.tracker = Tracker(clock)

    def __call__(self, event: Event) -> None:
        self.renderer.update(event, self.tracker.apply(event))

    def close(self) -> None:
        self.renderer.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def progress_for(
    output_format: str, stream: TextIO, clock: Clock = time.monotonic, shown: Shown = str
) -> Progress:
    """Progress shown on `stream` as `rich` bars, `plain` lines or `json` lines; `auto` picks
    bars on a terminal, plain lines otherwise. `shown` rewrites each text shown (the CLI
    names OCI layouts by their path there)."""
    if output_format == "auto":
        output_format = "rich" if stream.isatty() else "plain"
    renderer: Renderer
    if output_format == "rich":
        renderer = RichRenderer(Console(file=stream), shown)
    elif output_format == "plain":
        renderer = PlainRenderer(stream, clock=clock, shown=shown)
    elif output_format == "json":
        renderer = JsonRenderer(stream, clock=clock, shown=shown)
    else:
        raise ValueError(f"unknown progress format {output_format!r}: use auto, rich, plain, json")
    return Progress(renderer, clock)


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _short(digest: Digest) -> str:
    return f"{digest.algorithm}:{digest.encoded[:12]}"


class PlainRenderer:
    """One line per thing done, and a totals line at most every `interval` seconds while
    bytes stream: for logs and pipes. A failed copy is left to the caller, which reports its
    error once (`CopyError`)."""

    def __init__(
        self,
        stream: TextIO,
        interval: float = 2.0,
        clock: Clock = time.monotonic,
        shown: Shown = str,
    ):
        self.stream, self.interval, self.clock, self.shown = stream, interval, clock, shown
        self.last = float("-inf")

    def update(self, event: Event, snapshot: Snapshot) -> None:
        line = self._line(event, snapshot)
        if line is not None:
            print(self.shown(line), file=self.stream, flush=True)

    def _line(self, event: Event, snap: Snapshot) -> str | None:
        if isinstance(event, CopyStarted):
            return (
                f"copy {event.source} -> {event.target}: {event.images_total} manifests, "
                f"{event.blobs_total} blobs ({_size(event.bytes_total)}) to transfer"
            )
        if isinstance(event, BlobDone) and event.how != "skipped":
            return f"blob {_short(event.digest)} {event.how} ({_size(event.size)})"
        if isinstance(event, ManifestDone) and event.how == "copied":
            return f"{event.role} {_short(event.digest)} copied to {event.target}"
        if isinstance(event, CopyFinished):
            r = event.result
            return (
                f"done {r.target} ({r.digest}): manifests {r.manifests_copied} copied, "
                f"{r.manifests_skipped} skipped; blobs {r.blobs_copied} copied, "
                f"{r.blobs_mounted} mounted, {r.blobs_skipped} skipped; "
                f"{_size(r.bytes_copied)} in {r.seconds:.1f}s"
            )
        now = self.clock()
        if isinstance(event, BlobBytes) and now - self.last >= self.interval:
            self.last = now
            percent = 100 * snap.bytes_done / snap.bytes_total if snap.bytes_total else 100.0
            return (
                f"  {_size(snap.bytes_done)} / {_size(snap.bytes_total)} ({percent:.0f}%), "
                f"{_size(snap.rate)}/s, images {snap.images_done}/{snap.images_total}"
            )
        return None

    def close(self) -> None:
        self.stream.flush()


class JsonRenderer:
    """One JSON object per line: the event's fields, its `event` name and the totals
    (`progress`). Byte counts of a blob are sent at most every `interval` seconds."""

    def __init__(
        self,
        stream: TextIO,
        interval: float = 1.0,
        clock: Clock = time.monotonic,
        shown: Shown = str,
    ):
        self.stream, self.interval, self.clock, self.shown = stream, interval, clock, shown
        self.last = float("-inf")

    def update(self, event: Event, snapshot: Snapshot) -> None:
        if isinstance(event, BlobBytes) and event.done not in (0, event.total):
            now = self.clock()
            if now - self.last < self.interval:
                return
            self.last = now
        record = {"event": _event_name(event), **_jsonable(event, self.shown)}
        record["progress"] = snapshot.to_json()
        print(json.dumps(record, separators=(",", ":")), file=self.stream, flush=True)

    def close(self) -> None:
        self.stream.flush()


def _event_name(event: Event) -> str:
    name = type(event).__name__
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def _jsonable(value: Any, shown: Shown = str) -> Any:
    if isinstance(value, Reference | Digest | str):
        return shown(str(value))
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name), shown) for f in fields(value)}
    return value


class RichRenderer:
    """Rich progress bars on a terminal: the total bytes with rate and time left, images
    done, and one bar per blob in flight (a failed copy is left to the caller)."""

    def __init__(self, console: Console, shown: Shown = str) -> None:
        self.shown = shown
        self.bars = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.total: TaskID | None = None
        self.blobs: dict[tuple[str, str], TaskID] = {}

    def update(self, event: Event, snapshot: Snapshot) -> None:
        if self.total is None:
            self.bars.start()
            self.total = self.bars.add_task("", total=0)
        description = f"images {snapshot.images_done}/{snapshot.images_total}"
        self.bars.update(
            self.total,
            description=description,
            completed=snapshot.bytes_done,
            total=max(snapshot.bytes_total, 1),
        )
        if isinstance(event, BlobBytes):
            key = (event.target.name, str(event.digest))
            if key not in self.blobs:
                self.blobs[key] = self.bars.add_task(f"  {_short(event.digest)}", total=event.total)
            self.bars.update(self.blobs[key], completed=event.done)
        elif isinstance(event, BlobDone):
            task = self.blobs.pop((event.target.name, str(event.digest)), None)
            if task is not None:
                self.bars.remove_task(task)
        elif isinstance(event, CopyFinished):
            r = event.result
            self.bars.console.print(
                f"copied {self.shown(str(r.target))}: {r.manifests_copied} manifests, "
                f"{r.blobs_copied} blobs "
                f"({_size(r.bytes_copied)}), {r.blobs_mounted} mounted, "
                f"{r.blobs_skipped + r.manifests_skipped} already there",
                markup=False,
                highlight=False,
            )

    def close(self) -> None:
        if self.total is not None:
            self.bars.stop()
