#!/usr/bin/env python3
"""Write a tiny OCI image layout to try Dockyard with, offline: one layer holding one text
file, tagged `1.0` (Python's standard library only; the same bytes every time).

    python3 examples/make-example-image.py hello-layout
    dockyard image copy ocidir://hello-layout:1.0 127.0.0.1:5000/admin/hello:1.0

The image has no program to run (`podman run` has nothing to start); it is for pushing,
pulling, copying, syncing and mirroring.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import platform
import sys
import tarfile
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def _layer(name: str, text: str) -> tuple[bytes, bytes]:
    """(the gzipped tar, the tar) of one file, with fixed times and owners."""
    data = text.encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    raw = tar_bytes.getvalue()
    return gzip.compress(raw, mtime=0), raw


def _write_blob(layout: Path, data: bytes, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _canonical(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def make_image(layout: Path, tag: str, text: str) -> str:
    """Write (or add `tag` to) the layout at `layout`; the manifest's digest."""
    architecture = ARCHITECTURES.get(platform.machine().lower(), "amd64")
    compressed, raw = _layer("hello.txt", text)
    layer = _write_blob(layout, compressed, LAYER)
    config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.title": "hello"}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": _write_blob(layout, _canonical(config), CONFIG),
        "layers": [layer],
    }
    described = _write_blob(layout, _canonical(manifest), MANIFEST)
    described["annotations"] = {"org.opencontainers.image.ref.name": tag}
    described["platform"] = {"architecture": architecture, "os": "linux"}
    index_path = layout / "index.json"
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    if index_path.exists():  # another tag is kept
        index = json.loads(index_path.read_text())
    others = [
        m
        for m in index.get("manifests", [])
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ]
    index["manifests"] = [*others, described]
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return str(described["digest"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", type=Path, help="the folder to write (created if missing)")
    parser.add_argument("--tag", default="1.0", help="the tag (default 1.0)")
    parser.add_argument("--text", default="Hello from Dockyard!\n", help="hello.txt's content")
    args = parser.parse_args(argv)
    digest = make_image(args.layout, args.tag, args.text)
    print(f"wrote ocidir://{args.layout}:{args.tag} ({digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
