"""Which entries of a pushed index must already be in the repository.

distribution v3's `validation.manifests.indexes.platforms` as a site setting (`all`, `none`,
or a `list` of platforms), overridden per repository by its `sparse_indexes` setting. A sparse
index (one naming manifests the repository lacks) is what a platform-subset copy makes: the
index keeps its bytes, so its digest and its signatures, while only the platforms wanted are
copied. The manifests it does hold are pushed whole: an image manifest still needs every blob.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.descriptor import Descriptor, Platform


@dataclass(frozen=True, slots=True)
class IndexChecks:
    """The site's rule: `all` entries must exist, `none` need to, or those of `platform_list`
    (matched on OS and architecture, as in distribution; entries without a platform need not
    exist)."""

    platforms: Literal["all", "none", "list"] = "all"
    platform_list: tuple[Platform, ...] = ()

    @classmethod
    def of(cls, platforms: Literal["all", "none", "list"], listed: Sequence[str]) -> IndexChecks:
        """From the settings `index_platforms` and `index_platform_list`."""
        return cls(platforms, tuple(Platform.parse(p) for p in listed))

    def required(
        self, repository: RepositoryRow, entries: Iterable[Descriptor]
    ) -> list[Descriptor]:
        """The entries of an index pushed to `repository` that must already be there."""
        if repository.sparse_indexes is not None:
            return [] if repository.sparse_indexes else list(entries)
        if self.platforms == "all":
            return list(entries)
        if self.platforms == "none":
            return []
        return [e for e in entries if e.platform is not None and self._listed(e.platform)]

    def _listed(self, platform: Platform) -> bool:
        wanted = (platform.os, platform.architecture)
        return any(wanted == (p.os, p.architecture) for p in self.platform_list)
