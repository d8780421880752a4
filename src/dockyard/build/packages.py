"""The package layer of builds for any base: Debian and Ubuntu bases get `AptPackages`,
Alpine (apk) bases `ApkPackages`, chosen by what the base is (its os-release `ID`, and the
package database it carries)."""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from dockyard.build.apk.install import ApkPackages, os_release
from dockyard.build.apk.installed import INSTALLED
from dockyard.build.apt.install import AptPackages
from dockyard.build.errors import Invalid
from dockyard.build.layers import LayerBuilder
from dockyard.build.rootfs import RootFS
from dockyard.oci.descriptor import Platform
from dockyard.oci.digest import Digest

FIELD = "contents.packages"


class PackageLayers:
    """`builder.PackageLayer` over both package systems; either may be missing (no sources)."""

    def __init__(self, apt: AptPackages | None, apk: ApkPackages | None) -> None:
        self.apt = apt
        self.apk = apk

    def for_base(self, base: RootFS) -> AptPackages | ApkPackages:
        """The package layer for `base`; `Invalid` naming the field when this site has no
        sources for the base's distribution."""
        distribution = os_release(base).get("ID", "")
        uses_apk = (
            distribution == "alpine"
            or base.collected(INSTALLED) is not None
            or (self.apk is not None and self.apk.serves(distribution))
        )
        if uses_apk:
            if self.apk is None:
                raise Invalid(
                    FIELD,
                    f"this site has no apk sources for {distribution or 'the base'}: an admin "
                    "adds them to the apk_sources setting",
                )
            return self.apk
        if self.apt is None:
            raise Invalid(
                FIELD,
                f"this site has no package sources for {distribution or 'the base'}: an admin "
                "adds them to the package_sources setting",
            )
        return self.apt

    async def reuse(
        self,
        base: Digest,
        platform: Platform,
        requests: Sequence[str],
        reusable: Container[str],
        log: Any,
    ) -> tuple[str, dict[str, Any]] | None:
        """A reusable layer's key and lock known without reading the base: only the apt layer
        remembers its plans (an Alpine base is always read)."""
        if self.apt is None:
            return None
        return await self.apt.reuse(base, platform, requests, reusable, log)

    async def add(
        self,
        base: RootFS,
        platform: Platform,
        requests: Sequence[str],
        layer: LayerBuilder,
        log: Any,
        reusable: Container[str] = (),
    ) -> tuple[str, dict[str, Any]]:
        chosen = self.for_base(base)
        if isinstance(chosen, AptPackages):
            return await chosen.add(base, platform, requests, layer, log, reusable)
        return await chosen.add(base, platform, requests, layer, log)

    async def search(self, base: RootFS, platform: Platform, query: str) -> list[dict[str, str]]:
        """The packages drop-down: Debian-family bases only, for now (empty for Alpine)."""
        layer = self.for_base(base)
        if isinstance(layer, AptPackages):
            return await layer.search(base, platform, query)
        return []
