"""What a run measured, and the tables it prints: the comparison, per-phase details, notes."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from load import MiB

TARGETS = {"push": 1.0, "push-post": 1.0, "pull": 1.0, "manifest": 2.0}


@dataclass
class Result:
    """One measured phase on one server."""

    metric: str  # push | push-post | pull | manifest GET (wrk) | ...
    server: str
    value: float  # MB/s (decimal) for blobs, requests/s for manifests
    unit: str
    seconds: float
    server_cpu: float
    client_cpu: float
    peak_rss: int
    other_cpu: float  # CPU the rest of the machine used meanwhile (other processes)
    size: int | None = None
    clients: int | None = None
    errors: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    start_rss: int = 0  # RSS when the phase began


@dataclass
class Outcome:
    fsyncs_per_push: dict[str, int | None]
    single_post: dict[str, bool]
    idle_rss: dict[str, int]
    idle_pss: dict[str, int]
    results: list[Result]


@dataclass
class Options:
    sizes: list[int]
    clients: list[int]
    phase_bytes: int
    wrk_seconds: float
    connections: int
    workers: int | None
    profile: Path | None
    tmpdir: Path | None
    quiet_wait: float
    dockyard_env: dict[str, str]
    pull_rounds: int = 3
    blob_sender: bool = True


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def table(outcome: Outcome, ceilings: dict[str, float]) -> list[list[str]]:
    """Rows of metric, Dockyard, distribution, ratio, target, met."""
    results = outcome.results
    by_key = {(r.metric, r.size, r.clients, r.server): r for r in results}
    rows: list[list[str]] = []
    seen: list[tuple[str, int | None, int | None]] = []
    for r in results:
        key = (r.metric, r.size, r.clients)
        if key not in seen:
            seen.append(key)
    for metric, size, clients in seen:
        ours = by_key.get((metric, size, clients, "dockyard"))
        theirs = by_key.get((metric, size, clients, "distribution"))
        either = ours or theirs
        unit = either.unit if either else ""
        label = (
            f"{metric} {size // MiB} MiB x{clients} ({unit})"
            if size is not None
            else f"{metric} c={clients} ({unit})"
        )
        target = TARGETS.get("manifest" if metric.startswith("manifest") else metric)
        goal = f">= {target:.1f}x" if target else "diagnostic"
        cells = [label, _cell(ours), _cell(theirs)]
        if ours and theirs and theirs.value and not (ours.errors or theirs.errors):
            ratio = ours.value / theirs.value
            met = "" if target is None else "yes" if ratio >= target else "NO"
            cells += [f"{ratio:.2f}x", goal, met]
        else:
            cells += ["n/a", goal, "n/a" if theirs is None else "INVALID"]
        rows.append(cells)
    for label, sizes in (("RSS", outcome.idle_rss), ("PSS", outcome.idle_pss)):
        ours_mib, theirs_mib = (sizes.get(name, 0) / MiB for name in ("dockyard", "distribution"))
        idle_ratio = f"{ours_mib / theirs_mib:.2f}x" if theirs_mib else "n/a"
        metric = f"{label} at rest after start, MiB"
        rows.append([metric, f"{ours_mib:.0f}", f"{theirs_mib:.0f}", idle_ratio, "", ""])
    rows += _memory_rows(results)
    rows.append(["sha256, one core (MB/s)", _fmt(ceilings["sha256"]), "", "", "push ceiling", ""])
    rows.append(
        ["disk write + fsync (MB/s)", _fmt(ceilings["fsync_write"]), "", "", "push ceiling", ""]
    )
    return rows


def _cell(result: Result | None) -> str:
    if result is None:
        return "unsupported"
    text = _fmt(result.value)
    return f"{text} ({result.errors} errors)" if result.errors else text


def _memory_rows(results: list[Result]) -> list[list[str]]:
    """Peak RSS of each server tree per blob size, smallest first, and in brackets how far it
    rose above the RSS the phase started with.

    "Flat" judges that rise, not the peak itself: phases run one after another, and memory a
    server keeps after an 8-client phase (idle upload buffers, freed heap) is still there when
    the next phase starts, at whatever blob size comes next. Blobs smaller than the 4 MiB
    upload buffer never fill it, so "flat" compares the two largest sizes: past the buffer,
    the rise must not grow with the blob (by more than 10 % + 16 MiB of noise).
    """
    rows = []
    for metric in ("push", "pull"):
        for clients in sorted({r.clients for r in results if r.metric == metric and r.clients}):
            cells = [f"peak RSS {metric} x{clients}, MiB per blob size"]
            flat = None
            for name in ("dockyard", "distribution"):
                mine = sorted(
                    (
                        r
                        for r in results
                        if (r.metric, r.clients, r.server) == (metric, clients, name)
                    ),
                    key=lambda r: r.size or 0,
                )
                rises = [max(0, r.peak_rss - r.start_rss) / MiB for r in mine]
                cells.append(
                    " / ".join(
                        f"{r.peak_rss / MiB:.0f} (+{rise:.0f})"
                        for r, rise in zip(mine, rises, strict=True)
                    )
                )
                if name == "dockyard" and len(rises) >= 2:
                    flat = rises[-1] <= rises[-2] * 1.1 + 16
            verdict = "n/a" if flat is None else "yes" if flat else "NO"
            rows.append([*cells, "", "flat", verdict])
    return rows


def render(rows: list[list[str]]) -> str:
    header = ["metric", "Dockyard", "distribution", "ratio D/d", "target", "met"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for index, row in enumerate([header, *rows]):
        lines.append(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def details(results: list[Result]) -> str:
    """Per phase: wall time; CPU seconds of the server tree, of the client (this process and
    wrk/ab) and of every other process on the machine; peak RSS; latency percentiles (wrk)."""
    lines = [
        f"{'phase':34s} {'server':12s} {'value':>9s} {'wall s':>7s} {'srv CPU s':>9s} "
        f"{'cli CPU s':>9s} {'other CPU':>9s} {'peak MiB':>8s} {'p50 ms':>7s} {'p99 ms':>7s}"
    ]
    for r in results:
        phase = f"{r.metric} {r.size // MiB} MiB x{r.clients}" if r.size else r.metric
        p50 = f"{r.latency_p50_ms:.1f}" if r.latency_p50_ms is not None else ""
        p99 = f"{r.latency_p99_ms:.1f}" if r.latency_p99_ms is not None else ""
        lines.append(
            f"{phase:34s} {r.server:12s} {_fmt(r.value):>9s} {r.seconds:7.2f} "
            f"{r.server_cpu:9.2f} {r.client_cpu:9.2f} {r.other_cpu:9.2f} "
            f"{r.peak_rss / MiB:8.0f} {p50:>7s} {p99:>7s}"
        )
    return "\n".join(lines)


def source_version() -> str:
    """The commit the measured code is at, and whether src/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"{commit}{' + uncommitted changes in src/' if dirty else ''}"


def notes(outcome: Outcome, options: Options) -> str:
    fsyncs, single = outcome.fsyncs_per_push, outcome.single_post
    lines = [
        f"dockyard source: {source_version()}",
        f"durability: fsync/fdatasync calls during one 1 MiB POST+PUT push (strace): "
        f"Dockyard {fsyncs.get('dockyard')}, distribution {fsyncs.get('distribution')}. "
        "Both fsync the blob's data before it becomes visible; distribution 2.8.2 also fsyncs "
        "its hash state and link files but never a directory, Dockyard fsyncs the blob folder.",
        "push = POST then PUT <Location>?digest= with the streamed body, the same for both; "
        "push-post = one POST ?digest= with the body "
        + (
            "(distribution answers 202 and ignores the body: unsupported)"
            if not single.get("distribution")
            else "(both support it)"
        ),
        "pull = GET of the blobs just pushed (served from the page cache) by one curl process "
        "per client into /dev/null, in whole passes for at least 2 s; "
        f"{options.pull_rounds} rounds per server, the order alternating, median reported.",
        f"manifest: by tag, {options.connections} keep-alive connections, "
        f"{options.wrk_seconds:g} s each; HEAD runs under ab because wrk 4.1 waits for a body "
        "after a HEAD response. Dockyard gets an Authorization: Basic header on every request, "
        "distribution runs without auth.",
        (
            "Dockyard runs with blob_listen set: GETs of blobs of 8 MiB and more are redirected "
            "(307, a signed link) to its sendfile listener, as distribution's redirect "
            "middleware sends clients to storage; curl follows. distribution serves with sendfile "
            "itself."
            if options.blob_sender
            else "Dockyard runs without blob_listen (--no-blob-sender): granian sends every blob."
        ),
        f"dockyard serve --workers {options.workers or 'default (one per core, at most 4)'}"
        + (f", environment {options.dockyard_env}; " if options.dockyard_env else "; ")
        + f"machine: {os.cpu_count()} cores shared by both servers, the aiohttp client "
        "(pushes), curl (pulls) and wrk/ab; "
        "MB = 10^6 bytes; peak RSS sums the server's whole process tree, sampled every 50 ms; "
        "(+N) is how far it rose above the RSS the phase started with.",
    ]
    capacity = sum(r.seconds for r in outcome.results) * (os.cpu_count() or 1)
    other = sum(r.other_cpu for r in outcome.results)
    if capacity and other / capacity > 0.05:
        lines.append(
            f"WARNING: other processes used {100 * other / capacity:.0f}% of the machine's CPU "
            "while phases ran (column 'other CPU'): the numbers are noisy, run again when idle."
        )
    return "\n".join(f"- {line}" for line in lines)
