"""The Debian base as an OCI layout, and the Debian-native daemonless path over it, for
bench/customize.py.

The base is tests/support/debian.py's minbase (mmdebstrap of this machine's suite from the
mirror its apt uses, cached for the day under ~/.cache/dockyard-tests) packed as a one-layer
gzip image, as images are: apt's lists and caches emptied, /dev, /proc and /sys left as empty
folders (a runtime mounts them). Its /etc/apt/sources.list is the one mmdebstrap wrote: the
machine's own sources, so both sides read the same mirror.

The anchor is what one does without a daemon: `umoci unpack` the base, `chroot ROOTFS apt-get
update` and `apt-get install -y --no-install-recommends PKGS`, `umoci repack`. As a runtime
would, /dev and /proc are mounted and the host's resolv.conf copied in (and taken out before
the repack). apt's lists (/var/lib/apt/lists) and its cache with the downloaded .debs
(/var/cache/apt) are bind-mounted from folders outside the image, as BuildKit's
`--mount=type=cache` keeps them: cold is empty folders, warm the folders a cold build filled
(`apt-get update` then only revalidates InRelease, and `install` takes the .debs it has).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.debian import DebianBase
from support.ocilayout import (
    MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_LAYER_GZIP,
    Blob,
    Layout,
    config_bytes,
    manifest_bytes,
)

BASE_TAG = "base"
ANCHOR_TAG = "anchor"
# emptied in the image (the folders kept): what images leave out and runtimes mount
EMPTIED = ("var/lib/apt/lists", "var/cache/apt", "dev", "proc", "sys")
TIMEOUT = 1800.0
READ = 1024 * 1024


def packed_base(base: DebianBase) -> Path:
    """The OCI layout of `base` (tag `base`), made once beside the cached rootfs."""
    layout = base.rootfs.with_name(base.rootfs.name + "-oci")
    if (layout / ".complete").exists():
        return layout
    partial = layout.with_name(layout.name + "-partial")
    shutil.rmtree(partial, ignore_errors=True)
    out = Layout(partial)
    tar_path = partial / "layer.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(base.rootfs.rglob("*")):
            name = str(path.relative_to(base.rootfs))
            if name == ".complete" or any(name.startswith(e + "/") for e in EMPTIED):
                continue
            tar.add(path, arcname=name, recursive=False)
    diff_id = _sha256(tar_path)
    gz_path = partial / "layer.tar.gz"
    with tar_path.open("rb") as plain, gzip.GzipFile(gz_path, "wb", mtime=0) as packed:
        shutil.copyfileobj(plain, packed, READ)
    tar_path.unlink()
    layer = out.put_file(gz_path, MEDIA_TYPE_LAYER_GZIP)
    config = out.put(
        Blob(config_bytes([diff_id], f"linux/{base.architecture}"), MEDIA_TYPE_IMAGE_CONFIG)
    )
    manifest = Blob(manifest_bytes(config, [layer]), MEDIA_TYPE_IMAGE_MANIFEST)
    out.put(manifest)
    out.tag(BASE_TAG, manifest.descriptor())
    (partial / ".complete").touch()
    shutil.rmtree(layout, ignore_errors=True)
    partial.rename(layout)
    return layout


def fresh_layout(base_layout: Path, folder: Path) -> Path:
    """A copy of the base's layout to build into: blobs hard-linked (both tools only add
    blobs, never rewrite one), index.json copied (both rewrite it)."""
    shutil.copytree(
        base_layout,
        folder,
        copy_function=os.link,
        ignore=shutil.ignore_patterns(".complete", "index.json"),
    )
    shutil.copy2(base_layout / "index.json", folder / "index.json")
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(READ):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


@dataclass
class Run:
    """One anchor build: seconds per stage and the largest peak RSS of its processes."""

    stages: dict[str, float] = field(default_factory=dict)
    peak_rss_kib: int = 0

    @property
    def seconds(self) -> float:
        return sum(self.stages.values())


def run(argv: Sequence[str], done: Run, stage: str, env: dict[str, str] | None = None) -> None:
    """Run `argv`, adding its wall time to `stage` and its peak RSS (wait4's) to `done`."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    done.stages[stage] = done.stages.get(stage, 0.0) + time.perf_counter() - started
    done.peak_rss_kib = max(done.peak_rss_kib, usage.ru_maxrss)
    if process.returncode != 0:
        text = output.decode("utf-8", "replace")[-4000:]
        raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}:\n{text}")


def anchor_build(layout: Path, bundle: Path, cache: Path, packages: Sequence[str]) -> Run:
    """unpack, apt-get update and install in a chroot with `cache` as apt's lists and cache,
    repack as the layout's tag `anchor`."""
    done = Run()
    run(["umoci", "unpack", "--image", f"{layout}:{BASE_TAG}", str(bundle)], done, "unpack")
    root = bundle / "rootfs"
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
    }
    apt = ["chroot", str(root), "apt-get", "-q"]
    with _mounted(root, cache):
        run([*apt, "update"], done, "apt-get update", env)
        run([*apt, "install", "-y", "--no-install-recommends", *packages], done, "install", env)
    run(["umoci", "repack", "--image", f"{layout}:{ANCHOR_TAG}", str(bundle)], done, "repack")
    return done


class _mounted:
    """What a runtime gives the chroot: /dev, /proc, resolv.conf; and the apt cache mounts."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.root = root
        self.binds = [
            (Path("/dev"), root / "dev"),
            (cache / "lists", root / "var/lib/apt/lists"),
            (cache / "apt", root / "var/cache/apt"),
        ]
        self.mounted: list[Path] = []
        self.resolv = root / "etc/resolv.conf"
        self.had_resolv = self.resolv.exists() or self.resolv.is_symlink()

    def __enter__(self) -> None:
        for folder in ("lists/partial", "apt/archives/partial"):
            (self.cache_root / folder).mkdir(parents=True, exist_ok=True)
        try:
            for source, target in self.binds:
                target.mkdir(parents=True, exist_ok=True)
                subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
                self.mounted.append(target)
            subprocess.run(["mount", "-t", "proc", "proc", str(self.root / "proc")], check=True)
            self.mounted.append(self.root / "proc")
            if not self.had_resolv:
                shutil.copy2("/etc/resolv.conf", self.resolv)
        except BaseException:
            self.__exit__()
            raise

    @property
    def cache_root(self) -> Path:
        return self.binds[1][0].parent

    def __exit__(self, *_: object) -> None:
        for target in reversed(self.mounted):
            if subprocess.run(["umount", str(target)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(target)], check=False)
        self.mounted.clear()
        if not self.had_resolv:
            self.resolv.unlink(missing_ok=True)
