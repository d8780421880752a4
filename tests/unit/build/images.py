"""Images built in a test as an OCI layout, read back through `LayoutTarget`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.build.rootfs import RootFS
from dockyard.client.layout import LayoutTarget
from dockyard.oci.manifest import Manifest
from dockyard.oci.reference import Reference
from support.ocilayout import Layer, Layout


@dataclass
class Images:
    """A layout, and the `LayoutTarget` that reads it."""

    layout: Layout
    target: LayoutTarget

    def ref(self, tag: str) -> Reference:
        return Reference.layout(str(self.layout.path), tag)

    def add(self, tag: str, layers: Sequence[Layer], platform: str = "linux/amd64") -> Reference:
        self.layout.add_image(tag, layers=layers, platform=platform)
        return self.ref(tag)

    async def manifest(self, ref: Reference) -> Manifest:
        return await self.target.manifest_get(ref)

    async def rootfs(self, tag: str, layers: Sequence[Layer], **options: object) -> RootFS:
        ref = self.add(tag, layers)
        return await RootFS.scan(self.target, ref, await self.manifest(ref), **options)  # type: ignore[arg-type]
