"""Unpacking a .deb in process (build/apt/deb.py, every file's MD5 taken as dpkgdb needs it)
against `dpkg-deb -x`, with the peak memory of each.

    python bench/apt_deb.py PACKAGE.deb [...]
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from dockyard.build.apt.deb import Deb
from dockyard.build.apt.dpkgdb import Recorder


def read_all(path: Path) -> int:
    """Read every entry as a layer writer would, with the MD5s dpkgdb needs; bytes read."""
    total = 0
    with Deb(path) as deb:
        recorder = Recorder(deb.control)
        for entry in deb.entries():
            tracked = recorder.track(entry)
            if tracked.stream is not None:
                while block := tracked.stream.read(1024 * 1024):
                    total += len(block)
        recorder.finish()
    return total


def in_process(path: Path) -> tuple[float, int, int]:
    """Seconds, bytes of file data read, peak Python allocations (a second pass: tracemalloc
    slows every allocation, so it is not on while timing)."""
    start = time.perf_counter()
    total = read_all(path)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    read_all(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, total, peak


def dpkg_deb(path: Path) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of `dpkg-deb -x` into a temporary folder."""
    target = Path(tempfile.mkdtemp(prefix="dpkg-deb-x-"))
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(["dpkg-deb", "-x", str(path), str(target)], check=True)
        elapsed = time.perf_counter() - start
        return elapsed, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    finally:
        shutil.rmtree(target)


def main() -> None:
    for name in sys.argv[1:]:
        path = Path(name)
        seconds, total, peak = in_process(path)
        theirs, rss = dpkg_deb(path)
        print(
            f"{path.name}: {total / 1e6:.0f} MB of files; in process {seconds:.2f} s "
            f"({total / seconds / 1e6:.0f} MB/s, peak Python allocations {peak / 1e6:.1f} MB, "
            f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)"
            f"; dpkg-deb -x {theirs:.2f} s ({total / theirs / 1e6:.0f} MB/s, max RSS "
            f"{rss / 1024:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
