"""A customized image's config, manifest and index, from its base's and the layers added.

Pure functions of their inputs (no clock, no I/O), so that the same inputs give the same
bytes: the config's `created` and every history entry's is the base image's own `created`
(its SOURCE_DATE_EPOCH), JSON is written with sorted keys and no spaces. The base's layers
are named exactly as the base names them, so a pull reuses them; a Docker schema 2 base
becomes an OCI manifest (the same layer bytes under the OCI media types, as BuildKit does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from dockyard.build.model import Customization
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.digest import Digest

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
_OCI_LAYER = {
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": mt.OCI_LAYER_TAR,
}


@dataclass(frozen=True)
class AddedLayer:
    """A layer the build made: its blob's descriptor, its uncompressed digest (the config's
    diff_id) and what it holds, for the history."""

    descriptor: Descriptor
    diff_id: Digest
    created_by: str


def config(
    base: dict[str, Any], custom: Customization, layers: Sequence[AddedLayer], user: str | None
) -> bytes:
    """The new image config: the base's with the customization's settings and `layers`.

    Environment and labels are merged (the customization wins), `entrypoint` and `cmd` are
    appended to the base's (Docker's rule for customizations), `user` is the `runs-as`
    account as the image resolves it.
    """
    out = dict(base)
    settings = dict(base.get("config") or {})
    settings["Env"] = _merged_env(settings.get("Env") or [], custom.environment)
    if custom.labels:
        settings["Labels"] = {**(settings.get("Labels") or {}), **custom.labels}
    if custom.entrypoint:
        settings["Entrypoint"] = [*(settings.get("Entrypoint") or []), *custom.entrypoint]
    if custom.cmd:
        settings["Cmd"] = [*(settings.get("Cmd") or []), *custom.cmd]
    if user is not None:
        settings["User"] = user
    if custom.workdir is not None:
        settings["WorkingDir"] = custom.workdir
    if custom.stop_signal is not None:
        settings["StopSignal"] = custom.stop_signal
    out["config"] = settings
    rootfs = dict(base.get("rootfs") or {"type": "layers"})
    rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), *(str(x.diff_id) for x in layers)]
    out["rootfs"] = rootfs
    created = base.get("created")
    history = list(base.get("history") or [])
    for layer in layers:
        entry = {"created_by": layer.created_by, "comment": f"dockyard customization {custom.name}"}
        history.append({**entry, "created": created} if created else entry)
    out["history"] = history
    return _json(out)


def manifest(
    base: dict[str, Any],
    config_descriptor: Descriptor,
    layers: Sequence[AddedLayer],
    annotations: dict[str, str],
) -> bytes:
    """The image manifest: the base's layers as it names them, then `layers`."""
    kept = []
    for entry in base.get("layers") or []:
        entry = dict(entry)
        entry["mediaType"] = _OCI_LAYER.get(entry["mediaType"], entry["mediaType"])
        kept.append(entry)
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config_descriptor.to_json(),
        "layers": [*kept, *(layer.descriptor.to_json() for layer in layers)],
    }
    if annotations:
        body["annotations"] = annotations
    return _json(body)


def index(entries: Sequence[tuple[Descriptor, Platform]], annotations: dict[str, str]) -> bytes:
    """The image index of the built platforms, in the order given."""
    manifests = []
    for descriptor, platform in entries:
        entry = Descriptor(
            descriptor.media_type, descriptor.digest, descriptor.size, platform=platform
        )
        manifests.append(entry.to_json())
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": manifests,
    }
    if annotations:
        body["annotations"] = annotations
    return _json(body)


def base_annotations(repository: str, tag: str, digest: Digest) -> dict[str, str]:
    """The image-spec's annotations that name the base an image was built on."""
    return {BASE_NAME: f"{repository}:{tag}", BASE_DIGEST: str(digest)}


def _merged_env(base: list[str], added: dict[str, str]) -> list[str]:
    """`base` (`NAME=value` entries) with `added` set: a variable keeps its place, new ones
    follow in the order given."""
    out = []
    for entry in base:
        name = entry.partition("=")[0]
        out.append(f"{name}={added[name]}" if name in added else entry)
    present = {entry.partition("=")[0] for entry in base}
    out += [f"{name}={value}" for name, value in added.items() if name not in present]
    return out


def _json(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
