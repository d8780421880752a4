"""The scheduled check of a built customization's packages: has the archive a newer version
of one it installed (a security update)? Cheap when nothing moved: each suite's `InRelease`
is fetched and compared with the build's lock; only when one changed is the closure resolved
again against the base (read once), without fetching any package."""

from __future__ import annotations

from typing import Any

from dockyard.build.apt.install import AptPackages
from dockyard.build.model import Customization, Target
from dockyard.build.rootfs import RootFS, image_for_platform
from dockyard.client.target import Target as Place
from dockyard.oci.descriptor import Platform
from dockyard.oci.reference import Reference


async def package_updates(
    place: Place,
    packages: AptPackages,
    custom: Customization,
    which: Target,
    registry: str,
    lock: dict[str, Any],
) -> list[str]:
    """What a rebuild would change in the packages (`curl 7.88.1-10+deb12u7 → …u8`), per
    platform of the last good build's `lock`; empty when nothing moved."""
    changes: list[str] = []
    base_ref = Reference(registry, which.destination, which.base_tag)
    for name, platform_lock in (lock.get("platforms") or {}).items():
        packaged = platform_lock.get("packages")
        if not packaged or not await packages.releases_moved(packaged):
            continue
        platform = Platform.parse(name)
        base = await image_for_platform(
            place, base_ref, platform, field="platforms", what=f"the base {which.destination}"
        )
        rootfs = await RootFS.scan(place, base_ref.with_digest(base.digest), base)
        planned = await packages.plan(rootfs, platform, custom.contents.packages)
        then = {p["name"]: p["version"] for p in packaged.get("packages", [])}
        now = planned.resolution.versions()
        for package in sorted(then.keys() | now.keys()):
            if then.get(package) != now.get(package):
                was, will = then.get(package, "(none)"), now.get(package, "(none)")
                changes.append(f"{name}: {package} {was} → {will}")
    return changes
