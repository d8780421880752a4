"""One Dockyard customization build in a process of its own, for bench/customize.py.

    python bench/customize_build.py SPEC.json

SPEC names the OCI layout holding the base (under `base_tag`), the build's work folder, the
package cache, the packages, the files to place (`paths`), and optionally the outputs of a
previous build to reuse. The build runs as the hub runs it: `Builder` with `AptPackages` over
this machine's apt sources, writing through a `LayoutTarget`. Prints one JSON object: the
build's seconds (the interpreter's start-up and imports apart), the process's peak RSS
(VmHWM), the index digest, each added layer and whether it is the previous build's, and every
log line with the second it was written at (where the time went).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from dockyard.build.apt.install import AptPackages  # noqa: E402
from dockyard.build.apt.sources import machine_package_sources  # noqa: E402
from dockyard.build.builder import Builder  # noqa: E402
from dockyard.build.model import parse_customization  # noqa: E402
from dockyard.client.layout import LayoutTarget  # noqa: E402

REGISTRY = "localhost"
REPOSITORY = "bench/debian"
SUFFIX = "custom"


def customization(spec: dict[str, Any]) -> str:
    """The customization document (JSON is YAML) for `spec`."""
    return json.dumps(
        {
            "name": "bench",
            "targets": [{"destination": REPOSITORY, "tag": spec["base_tag"]}],
            "tag_suffix": SUFFIX,
            "contents": {"packages": spec["packages"]},
            "paths": [{"path": p, "contents": c, "mode": "0644"} for p, c in spec["paths"]],
            "platforms": [spec["platform"]],
        }
    )


def peak_rss_kib() -> int:
    """VmHWM: the most resident memory this process has had."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def build(spec: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Run the build `spec` describes, reusing `previous` outputs; what it did, with its
    outputs under `outputs`."""
    custom = parse_customization(customization(spec))
    packages = AptPackages(machine_package_sources(), Path(spec["cache"]))
    builder = Builder(LayoutTarget(spec["layout"]), Path(spec["workdir"]), packages=packages)
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    result = await builder.build(
        custom,
        custom.targets[0],
        REGISTRY,
        previous,
        log=lambda line: lines.append((time.perf_counter() - started, line)),
    )
    seconds = time.perf_counter() - started
    outputs = result.outputs()
    reused = {
        layer["descriptor"]["digest"]
        for platform in (previous or {}).values()
        for layer in platform.get("layers", [])
    }
    return {
        "seconds": seconds,
        "startup": started - STARTED,
        "peak_rss_kib": peak_rss_kib(),
        "index": str(result.index.digest),
        "layers": [
            {
                "kind": layer["kind"],
                "digest": layer["descriptor"]["digest"],
                "size": layer["descriptor"]["size"],
                "reused": layer["descriptor"]["digest"] in reused,
            }
            for platform in outputs.values()
            for layer in platform["layers"]
        ],
        "packages": len(result.lock["platforms"][spec["platform"]]["packages"]["packages"]),
        "log": lines,
        "outputs": outputs,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    previous = json.loads(Path(spec["previous"]).read_text()) if spec.get("previous") else None
    done = asyncio.run(build(spec, previous))
    Path(spec["outputs"]).write_text(json.dumps(done.pop("outputs")))
    print(json.dumps(done))


if __name__ == "__main__":
    main()
