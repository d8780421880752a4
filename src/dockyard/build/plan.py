"""The review step: what a build of a customization would do, resolved to digests, written
nowhere (the API's prepare, the CLI's `customization prepare -f`, the UI's Review page).

For each target and platform: the base image's digest; the package closure (each package's
version, sizes, why it is needed, whether it upgrades one of the base's, which maintainer
scripts will not run), what the base already has; the files each artifact contributes and
every base file it would overwrite; the accounts added and the user the image runs as; the
files placed, and the tag the result gets. Warnings are allowed (a build goes on), but said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dockyard.build.accounts import Accounts, Group, User, account_files
from dockyard.build.apk.install import ApkPackages
from dockyard.build.apt.deb import Deb
from dockyard.build.artifacts import Spool, artifact_files, sources_of
from dockyard.build.basecache import read_base
from dockyard.build.builder import base_config
from dockyard.build.entries import clean_path
from dockyard.build.errors import Invalid
from dockyard.build.model import Customization, Target
from dockyard.build.packages import PackageLayers
from dockyard.build.rootfs import RootFS, image_for_platform
from dockyard.client.target import Target as Place
from dockyard.oci.descriptor import Platform
from dockyard.oci.reference import Reference

SCRIPTS_NOTE = (
    "maintainer scripts do not run in a daemonless build: what they would set up at "
    "install time (services, alternatives, generated files) is not there unless the image "
    "does it at start; the CA bundle is made natively"
)


async def plan(
    place: Place,
    custom: Customization,
    registry: str,
    packages: PackageLayers | None,
    workdir: Path | None,
) -> list[dict[str, Any]]:
    """The plan of every target of `custom` (read through `place`, nothing written)."""
    return [
        await _target(place, custom, which, registry, packages, workdir) for which in custom.targets
    ]


async def _target(
    place: Place,
    custom: Customization,
    which: Target,
    registry: str,
    packages: PackageLayers | None,
    workdir: Path | None,
) -> dict[str, Any]:
    base_ref = Reference(registry, which.destination, which.base_tag)
    top = await place.manifest_get(base_ref)
    platforms = []
    for name in custom.platforms:
        platform = Platform.parse(name)
        what = f"the base {which.destination}:{which.base_tag}"
        base = await image_for_platform(place, base_ref, platform, field="platforms", what=what)
        ref = base_ref.with_digest(base.digest)
        config = await base_config(place, ref, base)
        rootfs = await read_base(workdir, place, ref, base)
        entry: dict[str, Any] = {"platform": name, "base": str(base.digest), "warnings": []}
        if custom.contents.packages:
            entry["packages"] = await _packages(custom, rootfs, platform, packages, entry)
        if custom.contents.artifacts:
            entry["artifacts"] = await _artifacts(
                place, custom, ref, rootfs, platform, workdir, entry
            )
        entry["accounts"] = await _accounts(custom, rootfs, config)
        entry["paths"] = [
            {"path": p.path, "bytes": len(p.contents.encode()), "mode": p.mode,
             "overwrites": rootfs.entry(clean_path(p.path)) is not None}
            for p in custom.paths
        ]  # fmt: skip
        for p in entry["paths"]:
            if p["overwrites"]:
                entry["warnings"].append(f"{p['path']} replaces the base's file")
        platforms.append(entry)
    return {
        "destination": which.destination,
        "base": {"tag": which.base_tag, "digest": str(top.digest)},
        "result_tag": custom.result_tag(which),
        "platforms": platforms,
    }


async def _packages(
    custom: Customization,
    rootfs: RootFS,
    platform: Platform,
    packages: PackageLayers | None,
    entry: dict[str, Any],
) -> dict[str, Any]:
    if packages is None:
        raise Invalid("contents.packages", "this site has no package sources configured")
    layer = packages.for_base(rootfs)
    if isinstance(layer, ApkPackages):
        return await _apk_packages(custom, rootfs, platform, layer, entry)
    planned = await layer.plan(rootfs, platform, custom.contents.packages)
    paths = await layer.fetch(planned)
    chosen = []
    scripted = []
    for choice, path in zip(planned.resolution.choices, paths, strict=True):
        scripts = _scripts(path)
        if scripts:
            scripted.append(choice.package.name)
        chosen.append(
            {
                "name": choice.package.name,
                "version": choice.package.version,
                "action": choice.action,
                "replaces": choice.installed.version if choice.installed else None,
                "download_bytes": choice.package.size,
                "installed_kib": choice.package.installed_size,
                "why": str(choice.reason),
                "scripts_not_run": list(scripts),
            }
        )
    if scripted:
        entry["warnings"].append(f"{', '.join(scripted)}: {SCRIPTS_NOTE}")
    return {
        "distribution": f"{planned.distribution.id} {planned.distribution.codename}",
        "architecture": planned.architecture,
        "install": chosen,
        "base_has": [f"{p.name} {p.version}" for p in planned.resolution.satisfied_by_base],
    }


async def _apk_packages(
    custom: Customization,
    rootfs: RootFS,
    platform: Platform,
    packages: ApkPackages,
    entry: dict[str, Any],
) -> dict[str, Any]:
    planned = await packages.plan(rootfs, platform, custom.contents.packages)
    fetched = await packages.fetch(planned)
    chosen = []
    scripted = []
    for choice, (_, _, control) in zip(planned.resolution.choices, fetched, strict=True):
        if control.scripts:
            scripted.append(choice.package.name)
        chosen.append(
            {
                "name": choice.package.name,
                "version": choice.package.version,
                "action": choice.action,
                "replaces": choice.installed.version if choice.installed else None,
                "download_bytes": choice.package.size,
                "installed_kib": (choice.package.installed_size + 1023) // 1024,
                "why": choice.reason,
                "scripts_not_run": [name.lstrip(".") for name in control.scripts],
            }
        )
    if scripted:
        entry["warnings"].append(f"{', '.join(scripted)}: {SCRIPTS_NOTE}")
    return {
        "distribution": f"{planned.release.id} {planned.release.version_id}",
        "architecture": planned.architecture,
        "install": chosen,
        "base_has": [f"{p.name} {p.version}" for p in planned.resolution.satisfied_by_base],
    }


def _scripts(path: Any) -> Sequence[str]:
    with Deb(path) as deb:
        return deb.control.scripts


async def _artifacts(
    place: Place,
    custom: Customization,
    base_ref: Reference,
    rootfs: RootFS,
    platform: Platform,
    workdir: Path | None,
    entry: dict[str, Any],
) -> list[dict[str, Any]]:
    sources = sources_of(custom.contents.artifacts, base_ref.registry)
    if workdir is not None:
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    with Spool(workdir) as spool:
        found = await artifact_files(place, sources, platform, rootfs, spool)
    out = []
    for artifact, files in zip(custom.contents.artifacts, found, strict=True):
        out.append(
            {
                "name": artifact.name,
                "digest": str(files.digest),
                "files": files.files,
                "bytes": files.bytes,
                "overwrites": ["/" + p for p in files.overwrites],
            }
        )
        if files.overwrites:
            entry["warnings"].append(
                f"{artifact.name} overwrites {len(files.overwrites)} of the base's files "
                f"(first: /{files.overwrites[0]}): allowed, but the image may break"
            )
    return out


async def _accounts(
    custom: Customization, rootfs: RootFS, config: dict[str, Any]
) -> dict[str, Any]:
    user = (config.get("config") or {}).get("User") or None
    if custom.accounts is None:
        return {"runs_as": user, "added": []}
    accounts = Accounts(
        tuple(User(u.name, u.uid, u.gid) for u in custom.accounts.users),
        tuple(Group(g.name, g.gid, tuple(g.members)) for g in custom.accounts.groups),
        custom.accounts.runs_as,
        custom.accounts.root,
    )
    found = await account_files(accounts, rootfs)
    return {
        "runs_as": found.user or user,
        "added": [u.name for u in custom.accounts.users] + [g.name for g in custom.accounts.groups],
    }
