"""Dockyard's customization builder against the Debian-native daemonless path, side by side.

Both add the same packages to the same Debian base from the same Debian mirror (this machine's
apt sources, read from /etc/apt) and write an OCI layout:

- the anchor: `umoci unpack`, `chroot ROOTFS apt-get update` + `apt-get install -y
  --no-install-recommends PKGS`, `umoci repack` (bench/customize_anchor.py says how the chroot
  is set up and what its cold and warm caches are);
- Dockyard: `Builder` with `AptPackages` through a `LayoutTarget`, one build per process
  (bench/customize_build.py), its time taken around `Builder.build` (the interpreter's start-up
  is reported apart: the hub builds in a long-lived worker).

Per package set and round, in alternating order: cold (nothing cached: the anchor's lists and
.debs, Dockyard's package cache), warm (a new build into a fresh copy of the base's layout with
those caches kept). Dockyard also: no-op (a rebuild with the warm build's outputs as `previous`,
nothing changed: the same digest, the package layer reused) and incremental (the same, one file
added in `paths`: the package layer must be reused). Medians; ratios against the anchor (cold,
warm) and against Dockyard's warm full build (incremental); the peak RSS of each Dockyard build.

`.venv/bin/python bench/customize.py [--rounds 3] [--sets curl "git python3"] [--keep]`.
Needs root (chroot, mount, umoci unpack), umoci and mmdebstrap (`scripts/test-deps.sh`), and
the mirror; not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support.debian builds the base

from customize_anchor import anchor_build, fresh_layout, packed_base  # noqa: E402

from support.debian import (  # noqa: E402
    base_sources,
    cache_root,
    machine_sources,
    native_architecture,
    prepared_base,
)

GOALS = {"cold": 0.5, "warm": 0.2, "incremental": 0.3}
NOOP_GOAL = 1.0
DEFAULT_SETS = ("curl", "git python3")
PHASES = ("cold", "warm", "no-op", "incremental")
BUILD_TIMEOUT = 1800.0


@dataclass
class Figures:
    """Every run's seconds (and Dockyard's peak RSS and notes) of one package set."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, list[int]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, seconds: float, rss_kib: int = 0) -> None:
        self.seconds.setdefault(key, []).append(seconds)
        if rss_kib:
            self.rss.setdefault(key, []).append(rss_kib)

    def median(self, key: str) -> float | None:
        runs = self.seconds.get(key)
        return statistics.median(runs) if runs else None


class Bench:
    """The rounds of one package set in `work`."""

    def __init__(self, work: Path, base_layout: Path, platform: str, packages: list[str]) -> None:
        self.work = work
        self.base_layout = base_layout
        self.platform = platform
        self.packages = packages
        self.figures = Figures()
        self.count = 0

    def folder(self, name: str) -> Path:
        self.count += 1
        return self.work / f"{name}-{self.count}"

    def anchor(self) -> None:
        cache = self.folder("anchor-cache")
        for phase in ("cold", "warm"):
            layout = fresh_layout(self.base_layout, self.folder("anchor-layout"))
            bundle = self.folder("anchor-bundle")
            run = anchor_build(layout, bundle, cache, self.packages)
            self.figures.add(f"anchor {phase}", run.seconds, run.peak_rss_kib)
            stages = ", ".join(f"{k} {v:.2f}" for k, v in run.stages.items())
            self.figures.notes[f"anchor {phase}"] = stages
            print(f"  anchor {phase}: {run.seconds:.2f} s ({stages})", flush=True)
            shutil.rmtree(bundle)
            shutil.rmtree(layout)
        shutil.rmtree(cache)

    def dockyard(self) -> None:
        cache = self.folder("dockyard-cache")
        layout = fresh_layout(self.base_layout, self.folder("dockyard-layout"))
        self._build("cold", layout, cache)
        shutil.rmtree(layout)
        layout = fresh_layout(self.base_layout, self.folder("dockyard-layout"))
        warm = self._build("warm", layout, cache)
        noop = self._build("no-op", layout, cache, previous=warm)
        if noop["index"] != warm["index"]:
            raise RuntimeError(f"the no-op rebuild changed the image: {warm} -> {noop}")
        extra = [("/etc/bench-incremental", f"{self.count}\n")]
        incremental = self._build("incremental", layout, cache, previous=warm, paths=extra)
        reused = [layer["kind"] for layer in incremental["layers"] if layer["reused"]]
        if "packages" not in reused:
            raise RuntimeError(f"the incremental rebuild made the package layer again: {reused}")
        shutil.rmtree(layout)
        shutil.rmtree(cache)

    def _build(
        self,
        phase: str,
        layout: Path,
        cache: Path,
        previous: dict[str, Any] | None = None,
        paths: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        outputs = self.folder("outputs").with_suffix(".json")
        spec = {
            "layout": str(layout),
            "base_tag": "base",
            "workdir": str(self.work / "builder"),
            "cache": str(cache),
            "packages": self.packages,
            "paths": list(paths),
            "platform": self.platform,
            "previous": previous["outputs"] if previous else None,
            "outputs": str(outputs),
        }
        spec_path = outputs.with_suffix(".spec.json")
        spec_path.write_text(json.dumps(spec))
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(HERE / "customize_build.py"), str(spec_path)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        process = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"the Dockyard {phase} build failed:\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        result["outputs"] = str(outputs)
        self.figures.add(f"dockyard {phase}", result["seconds"], result["peak_rss_kib"])
        self.figures.add(f"dockyard {phase} process", process)
        where = _phases(result["log"])
        self.figures.notes[f"dockyard {phase}"] = where
        print(
            f"  dockyard {phase}: {result['seconds']:.2f} s (process {process:.2f} s, "
            f"peak RSS {result['peak_rss_kib'] / 1024:.0f} MiB, {result['packages']} packages; "
            f"{where})",
            flush=True,
        )
        return result


STEPS = (
    (" is sha256:", "base tag"),
    (": base image ", "manifests"),
    ("read the base's", "base scan"),
    (" packages to add for ", "package plan"),
    (" as the last build had them", "InRelease check"),
    (": pushed sha256:", "unpack, layers, push"),
    ("pushed ", "index"),
)


def _phases(log: list[tuple[float, str]]) -> str:
    """Where a build's time went, from its log's times: each step (the base scan, the package
    plan: InRelease, Packages and resolution, or only the InRelease check when the previous
    plan holds; the packages' fetch and unpack with the layers' writing) is the time up to
    the line that ends it."""
    steps, last = [], 0.0
    for seconds, line in log:
        if line.startswith(" "):
            continue
        name = next((name for mark, name in STEPS if mark in line), line[:20])
        steps.append(f"{name} {seconds - last:.2f}")
        last = seconds
    return ", ".join(steps)


# --- the run -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per package set")
    parser.add_argument(
        "--sets",
        nargs="+",
        default=list(DEFAULT_SETS),
        help='package sets, each one argument: curl "git python3"',
    )
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/customize.py needs root: chroot, mount and umoci unpack", file=sys.stderr)
        return 2
    for tool in ("umoci", "mmdebstrap", "chroot", "mount"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: run scripts/test-deps.sh", file=sys.stderr)
            return 2
    started = time.perf_counter()
    sources = base_sources(machine_sources())
    folder = cache_root() or Path(tempfile.gettempdir()) / "dockyard-bench-debian"
    base = prepared_base(folder, sources, native_architecture())
    base_layout = packed_base(base)
    print(
        f"base: {base.suite} minbase ({base.architecture}) from "
        f"{', '.join(sorted({s.uri for s in sources}))}, packed as {base_layout} "
        f"(ready in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="dockyard-customize-", dir=args.tmpdir))
    results: dict[str, Figures] = {}
    try:
        # hard links: the cache is the day's, and a test run the next day removes it
        base_layout = fresh_layout(base_layout, work / "base")
        for packages in args.sets:
            bench = Bench(work, base_layout, f"linux/{base.architecture}", packages.split())
            for number in range(args.rounds):
                print(f"{packages}, round {number + 1}", flush=True)
                sides = (bench.dockyard, bench.anchor)
                for side in sides if number % 2 == 0 else reversed(sides):
                    side()
            results[packages] = bench.figures
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(args, results)
    return 0


def report(args: argparse.Namespace, results: dict[str, Figures]) -> None:
    header = ("packages", "phase", "dockyard", "(process)", "anchor", "ratio", "goal", "peak RSS")
    rows = [header]
    for packages, figures in results.items():
        warm = figures.median("dockyard warm")
        for phase in PHASES:
            mine = figures.median(f"dockyard {phase}")
            process = figures.median(f"dockyard {phase} process")
            theirs = figures.median(f"anchor {phase}")
            assert mine is not None
            assert process is not None
            goal, ratio = "", ""
            if phase in ("cold", "warm") and theirs:
                ratio = f"{mine / theirs:.2f}x"
                met = mine / theirs <= GOALS[phase]
                goal = f"<= {GOALS[phase]}x anchor {'met' if met else 'MISSED'}"
            elif phase == "incremental" and warm:
                ratio = f"{mine / warm:.2f}x warm"
                met = mine / warm <= GOALS[phase]
                goal = f"<= {GOALS[phase]}x full {'met' if met else 'MISSED'}"
            elif phase == "no-op":
                goal = f"< {NOOP_GOAL:.0f} s {'met' if mine < NOOP_GOAL else 'MISSED'}"
            rss = max(figures.rss.get(f"dockyard {phase}", [0]))
            rows.append(
                (
                    packages,
                    phase,
                    f"{mine:.2f} s",
                    f"{process:.2f} s",
                    f"{theirs:.2f} s" if theirs else "-",
                    ratio,
                    goal,
                    f"{rss / 1024:.0f} MiB",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print()
    print(
        f"median of {args.rounds} rounds; dockyard = Builder.build alone, (process) with start-up"
    )
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    print()
    print(memory_line(results))
    for packages, figures in results.items():
        for key, note in figures.notes.items():
            print(f"{packages} {key} (last round): {note}")
        anchor_rss = max(figures.rss.get("anchor cold", [0]) + figures.rss.get("anchor warm", [0]))
        print(f"{packages} anchor peak RSS (largest process): {anchor_rss / 1024:.0f} MiB")
        print(
            f"{packages} runs: "
            + "; ".join(
                f"{key} {' '.join(f'{s:.2f}' for s in runs)}"
                for key, runs in figures.seconds.items()
                if not key.endswith("process")
            )
        )


def memory_line(results: dict[str, Figures]) -> str:
    """Dockyard's peak RSS per package set and whether it stays flat: the largest set's at
    most 10 % + 16 MiB above the smallest's (the package indexes are the same for every set;
    only the .debs, streamed, differ)."""
    peaks = {
        p: max(max(f.rss.get(f"dockyard {k}", [0])) for k in PHASES) for p, f in results.items()
    }
    said = ", ".join(f"{p} {kib / 1024:.0f} MiB" for p, kib in peaks.items())
    if len(peaks) < 2:
        return f"Dockyard peak RSS: {said}"
    low, high = min(peaks.values()), max(peaks.values())
    flat = high <= low * 1.1 + 16 * 1024
    return f"Dockyard peak RSS by package set: {said} ({'flat' if flat else 'NOT flat'})"


if __name__ == "__main__":
    sys.exit(main())
