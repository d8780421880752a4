"""Optional py-spy profiles of Dockyard's processes during a phase (`--profile DIR`).

py-spy is not a project dependency: `.venv/bin/pip install py-spy` first. Profiles are raw
collapsed stacks (one `frame;frame;... count` line per stack, flamegraph.pl input); `summarize`
prints where the worker's threads spent their samples.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


def available() -> str | None:
    found = PY_SPY if PY_SPY.exists() else shutil.which("py-spy")
    return str(found) if found else None


@contextlib.contextmanager
def recording(pid: int, output: Path, rate: int = 100) -> Iterator[None]:
    """py-spy record of `pid` and its subprocesses while the block runs (stopped by SIGINT)."""
    binary = available()
    if binary is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    argv = [binary, "record", "-p", str(pid), "--subprocesses", "--threads", "--nonblocking"]
    argv += ["-r", str(rate), "-f", "raw", "-o", str(output)]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# leaf frames of threads that wait for work: not where time is spent
IDLE = (
    "EpollSelector.select",
    "concurrent/futures/thread.py:81",  # executor thread waiting for an item
    "aiosqlite/core.py:59",  # aiosqlite connection thread waiting for a call
)


def summarize(path: Path, top: int = 20) -> str:
    """Busy samples (idle waits dropped): per thread, by leaf frame, and inclusive for the
    frames of dockyard, SQLAlchemy and aiosqlite."""
    if not path.exists():
        return f"{path}: no profile was written"
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(marker in frames[-1] for marker in IDLE):
            idle += count
            continue
        total += count
        # with --subprocesses, stacks start with the process chain, then the thread
        owner = [f for f in frames[:4] if f.startswith(("process ", "thread ("))]
        threads[" / ".join(f.split(":", 1)[0] for f in owner[-2:])] += count
        leaf[frames[-1]] += count
        for frame in set(frames[len(owner) :]):
            if "dockyard/" in frame or "aiosqlite" in frame or "sqlalchemy" in frame:
                inclusive[frame] += count
    if not total:
        return f"{path}: no busy samples"
    lines = [f"{path.name}: {total} busy samples ({idle} idle dropped)"]
    lines += ["  threads:"] + [f"    {n:6d} {name}" for name, n in threads.most_common(6)]
    lines += ["  self:"] + [
        f"    {100 * n / total:5.1f}% {frame}" for frame, n in leaf.most_common(top)
    ]
    lines += ["  inclusive (dockyard, sqlalchemy, aiosqlite):"] + [
        f"    {100 * n / total:5.1f}% {frame}" for frame, n in inclusive.most_common(top)
    ]
    return "\n".join(lines)
