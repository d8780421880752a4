"""The sync config as typed values: `SyncConfig` with its `creds`, `defaults` and `sync`
entries, and the place in the file each came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dockyard.client.settings import TLSMode
from dockyard.config import ConfigError
from dockyard.copy.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_IMAGE_CONCURRENCY,
    CopyOptions,
    ReferrerFilter,
)
from dockyard.oci import mediatypes as mt
from dockyard.oci.reference import Reference
from dockyard.sync.schedule import Cron, Every

SyncType = Literal["registry", "repository", "image"]
SYNC_TYPES: tuple[SyncType, ...] = ("registry", "repository", "image")
SUPPORTED_VERSION = 1
RATE_LIMIT_RETRY_MIN = 300.0  # regsync waits at least 5 minutes for a rate limit to recover
DEFAULT_MEDIA_TYPES: tuple[str, ...] = (
    mt.DOCKER_MANIFEST,
    mt.DOCKER_MANIFEST_LIST,
    mt.OCI_MANIFEST,
    mt.OCI_INDEX,
)


@dataclass(frozen=True, slots=True)
class Where:
    """A place in the config file (lines and columns count from 1)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}"


class SyncConfigError(ConfigError):
    """The sync config cannot be used; the message names the file, the line and the key."""

    def __init__(self, message: str, where: Where | None = None) -> None:
        super().__init__(f"{where}: {message}" if where is not None else message)
        self.where = where


@dataclass(frozen=True, slots=True)
class TagFilter:
    """regsync's `allow` and `deny` lists: regular expressions bound to the whole name as
    regsync binds them (`^` + pattern + `$`, so `a|b` means `^a|b$` exactly as in regsync).
    No `allow` keeps every name; `deny` then removes names."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    _allow: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)
    _deny: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", tuple(anchored(p) for p in self.allow))
        object.__setattr__(self, "_deny", tuple(anchored(p) for p in self.deny))

    @property
    def is_empty(self) -> bool:
        return not self.allow and not self.deny

    def matches(self, name: str) -> bool:
        """Whether `name` passes the filter."""
        if self._allow and not any(p.search(name) for p in self._allow):
            return False
        return not any(p.search(name) for p in self._deny)

    def select(self, names: Iterable[str]) -> list[str]:
        """The names that pass, in their order."""
        return [name for name in names if self.matches(name)]


def anchored(pattern: str) -> re.Pattern[str]:
    return re.compile(f"^{pattern}$", re.ASCII)


def select_tags(filters: Sequence[TagFilter], tags: Iterable[str]) -> list[str]:
    """regsync's tag selection over `tags` and `tagSets`: no filter keeps every tag, else a
    tag is kept when any filter keeps it; the order of `tags` is kept."""
    names = list(tags)
    if not filters:
        return names
    return [name for name in names if any(f.matches(name) for f in filters)]


@dataclass(frozen=True, slots=True)
class RegistryCreds:
    """One `creds` entry: how to reach a registry and who to be there.

    `hostname` is where to connect when it differs from the registry name used in
    references (regsync's `hostname`); a `creds` entry with only `hostname` names the registry.
    Unset values (None) leave the user's settings (`dockyard registry set/login`) in place.
    """

    registry: str
    hostname: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TLSMode | None = None
    regcert: str | None = field(default=None, repr=False)
    req_per_sec: float | None = None
    req_concurrent: int | None = None
    blob_chunk: int | None = None
    where: Where | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """regsync's `ratelimit`: before copying, wait (checking every `retry` seconds, at least
    5 minutes) until the source's `RateLimit-Remaining` is at least `min` (0: never wait)."""

    min: int = 0
    retry: float = RATE_LIMIT_RETRY_MIN


@dataclass(frozen=True, slots=True)
class SyncDefaults:
    """`defaults`: `parallel` (image copies at once, default 1) and values every entry
    inherits unless it sets its own (None: not set here)."""

    parallel: int = 1
    interval: float | None = None
    schedule: Cron | Every | None = None
    ratelimit: RateLimit = RateLimit()
    referrers: bool | None = None
    referrer_filters: tuple[ReferrerFilter, ...] | None = None
    referrer_source: Reference | None = None
    referrer_target: Reference | None = None
    digest_tags: bool | None = None
    fast_check: bool | None = None
    force_recursive: bool | None = None
    include_external: bool | None = None
    platforms: tuple[str, ...] | None = None
    media_types: tuple[str, ...] | None = None
    skip_docker_config: bool = False
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class SyncEntry:
    """One `sync` entry with the defaults applied, as regsync applies them.

    - `type` `image`: `source_ref` to `target_ref`; `repository`: every tag of the source
      repository that `tags` (and `tagSets`) select; `registry`: every repository of the
      source registry that `repos` selects (to the same name under `target`), each as a
      repository entry.
    - `platform`: copy only that platform's manifest of a multi-platform source (to the tag);
      `platforms`: copy the index with only those platforms (plus attestations).
    - `referrers`, `referrer_filters`, `referrer_source`, `referrer_target`, `digest_tags`,
      `force_recursive`, `include_external`: as `regctl image copy`.
    - `fast_check`: a tag whose digest is unchanged costs a HEAD on each side (referrers and
      digest tags are still re-checked when asked). regsync's `fastCheck` (and `fastCopy`, as
      the DHI docs write it) set it; unset, it is on unless `forceRecursive` is.
    - `schedule`: when `dockyard sync server` runs the entry: its `schedule`, else its
      `interval`, else the defaults' `schedule`, else their `interval` (None: never).
    - `media_types`: source manifests of other types are skipped.
    """

    index: int
    type: SyncType
    source: str
    target: str
    source_ref: Reference | None = None
    target_ref: Reference | None = None
    tags: tuple[TagFilter, ...] = ()
    repos: TagFilter = TagFilter()
    platform: str | None = None
    platforms: tuple[str, ...] = ()
    referrers: bool = False
    referrer_filters: tuple[ReferrerFilter, ...] = ()
    referrer_source: Reference | None = None
    referrer_target: Reference | None = None
    digest_tags: bool = False
    fast_check: bool = True
    force_recursive: bool = False
    include_external: bool = False
    schedule: Cron | Every | None = None
    ratelimit: RateLimit = RateLimit()
    media_types: tuple[str, ...] = DEFAULT_MEDIA_TYPES
    where: Where | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """`sync[i]`, as messages name the entry."""
        return f"sync[{self.index}]"

    def describe(self) -> str:
        return f"{self.name} ({self.type} {self.source} -> {self.target})"

    def copy_options(
        self,
        concurrency: int = DEFAULT_CONCURRENCY,
        image_concurrency: int = DEFAULT_IMAGE_CONCURRENCY,
    ) -> CopyOptions:
        """The options of each image copy this entry makes."""
        return CopyOptions(
            platforms=() if self.platform else self.platforms,
            referrers=self.referrers,
            referrer_filters=self.referrer_filters,
            digest_tags=self.digest_tags,
            force_recursive=self.force_recursive,
            fast_check=self.fast_check,
            include_external=self.include_external,
            concurrency=concurrency,
            image_concurrency=image_concurrency,
        )


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """A whole sync config file."""

    path: str
    version: int = SUPPORTED_VERSION
    creds: tuple[RegistryCreds, ...] = ()
    defaults: SyncDefaults = SyncDefaults()
    sync: tuple[SyncEntry, ...] = ()

    @property
    def parallel(self) -> int:
        return self.defaults.parallel
