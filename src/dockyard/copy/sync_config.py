"""The sync configuration: regsync's YAML (`version`, `creds`, `defaults`, `sync`), read strictly.

regsync's own files run unchanged: every key regsync documents for what Dockyard does is read
with regsync's meaning and defaults (see `SyncEntry`), `x-*` keys are user extensions (handy for
YAML anchors) and ignored, anchors, aliases and merge keys work. Unlike regsync, which ignores
what it does not know, an unknown or misspelled key is an error naming the key, the file and
the line; so are values of the wrong type, and regsync settings Dockyard does not implement
(credential helpers, mirrors, hooks, backups...), each named.

Templates (`{{file "..."}}`, `{{env "..."}}`, see `sync_template`) are expanded where regsync
expands them: `registry`, `hostname`, `user`, `pass` and `regcert` of `creds`, and `source`,
`referrerSource`, `target` and `referrerTarget` of `sync` entries (in that order, each seeing
the ones before it as `.Sync.Source`, ...).
"""

from __future__ import annotations

import difflib
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml

from dockyard.client.settings import TLSMode, normalize_registry
from dockyard.config import ConfigError
from dockyard.copy.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_IMAGE_CONCURRENCY,
    CopyOptions,
    ReferrerFilter,
)
from dockyard.copy.sync_schedule import Cron, Every, format_duration, parse_duration
from dockyard.copy.sync_template import TemplateError, expand
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Platform
from dockyard.oci.errors import OciError
from dockyard.oci.reference import DEFAULT_TAG, Reference

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
EXTENSION_PREFIX = "x-"
MERGE_TAG = "tag:yaml.org,2002:merge"
NULL_TAG = "tag:yaml.org,2002:null"

# --- the keys ------------------------------------------------------------------------------------

TOP_KEYS = ("version", "creds", "defaults", "sync")
CREDS_KEYS = (
    "registry",
    "hostname",
    "user",
    "pass",
    "tls",
    "scheme",
    "regcert",
    "reqPerSec",
    "reqConcurrent",
    "blobChunk",
)
COMMON_KEYS = (
    "interval",
    "schedule",
    "ratelimit",
    "referrers",
    "referrerFilters",
    "referrerSource",
    "referrerTarget",
    "digestTags",
    "fastCheck",
    "forceRecursive",
    "includeExternal",
    "platforms",
    "mediaTypes",
)
DEFAULTS_KEYS = (*COMMON_KEYS, "parallel", "skipDockerConfig", "userAgent")
SYNC_KEYS = (
    *COMMON_KEYS,
    "source",
    "target",
    "type",
    "tags",
    "tagSets",
    "repos",
    "platform",
    "fastCopy",
)
FILTER_KEYS = ("allow", "deny")
RATELIMIT_KEYS = ("min", "retry")
REFERRER_FILTER_KEYS = ("artifactType", "annotations")

_NOT_SUPPORTED = "a regsync setting dockyard sync does not support"
UNSUPPORTED_CREDS = dict.fromkeys(
    (
        "credHelper",
        "credExpire",
        "credHost",
        "pathPrefix",
        "mirrors",
        "priority",
        "repoAuth",
        "api",
        "apiOpts",
        "blobMax",
        "clientCert",
        "clientKey",
        "token",
        "dns",
    ),
    _NOT_SUPPORTED,
)
UNSUPPORTED_CREDS["credHelper"] = (
    "credential helpers are not run by dockyard; use user/pass (with {{file}} or {{env}}), "
    "`dockyard registry login`, or Docker's config.json"
)
UNSUPPORTED_COMMON = {
    "backup": "backups of overwritten tags are not made by dockyard sync",
    "hooks": "hooks are not run by dockyard sync",
    "referrerSlow": _NOT_SUPPORTED,
}
UNSUPPORTED_DEFAULTS = {
    **UNSUPPORTED_COMMON,
    "blobLimit": _NOT_SUPPORTED,
    "cacheCount": _NOT_SUPPORTED,
    "cacheTime": _NOT_SUPPORTED,
}
UNSUPPORTED_FILTER = {"semverRange": "semver ranges are not supported; use allow/deny regexes"}


# keys in the wrong section: where they belong
_HOMES = {
    **{key: "`defaults`" for key in DEFAULTS_KEYS if key not in SYNC_KEYS},
    **{key: "a `sync` entry" for key in SYNC_KEYS if key not in DEFAULTS_KEYS},
}


# --- values --------------------------------------------------------------------------------------


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
        object.__setattr__(self, "_allow", tuple(_anchored(p) for p in self.allow))
        object.__setattr__(self, "_deny", tuple(_anchored(p) for p in self.deny))

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


def _anchored(pattern: str) -> re.Pattern[str]:
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


# --- loading -------------------------------------------------------------------------------------


def load_sync_config(path: Path | str) -> SyncConfig:
    """Read and check the sync config at `path` (`-`: standard input)."""
    if str(path) == "-":
        import sys

        return parse_sync_config(sys.stdin.read(), "<stdin>")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SyncConfigError(
            f"{path}: cannot read the sync config: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise SyncConfigError(f"{path}: the sync config is not UTF-8 text") from None
    return parse_sync_config(text, str(path))


def parse_sync_config(text: str, name: str = "<config>") -> SyncConfig:
    """Check the sync config `text` (read from the file `name`, for messages)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Where(name, mark.line + 1, mark.column + 1) if mark is not None else None
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise SyncConfigError(f"not valid YAML: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise SyncConfigError(f"{name}: not valid YAML: {exc}") from None
    return _Reader(name).config(root)


class _Reader:
    """Turns composed YAML nodes into config values, naming the place of anything wrong."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = yaml.SafeLoader("")

    # --- nodes ---------------------------------------------------------------------------------

    def where(self, node: yaml.Node) -> Where:
        mark = node.start_mark
        return Where(self.file, mark.line + 1, mark.column + 1)

    def fail(self, node: yaml.Node, path: str, message: str) -> NoReturn:
        raise SyncConfigError(f"{path}: {message}" if path else message, self.where(node))

    @staticmethod
    def is_null(node: yaml.Node | None) -> bool:
        return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG)

    def mapping(
        self,
        node: yaml.Node,
        path: str,
        known: Sequence[str],
        unsupported: Mapping[str, str] | None = None,
    ) -> dict[str, yaml.Node]:
        """The keys of a mapping node, each checked against `known`."""
        if self.is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, path, f"must be a mapping (key: value), not {_kind(node)}")
        found: dict[str, yaml.Node] = {}
        lines: dict[str, int] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged += self._merged(value_node, path)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            self._check_key(key, key_node, path, known, unsupported or {})
            if key in found:
                self.fail(key_node, path, f"key {key!r} appears twice (first on line {lines[key]})")
            found[key] = value_node
            lines[key] = self.where(key_node).line
        for key_node, value_node in merged:  # explicit keys win over merged ones
            key = self._key(key_node, path)
            if key is None or key in found:
                continue
            self._check_key(key, key_node, path, known, unsupported or {})
            found[key] = value_node
        return found

    def _merged(self, node: yaml.Node, path: str) -> list[tuple[yaml.Node, yaml.Node]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.fail(source, path, "a merge key (<<) needs a mapping or a list of mappings")
            for key_node, value_node in source.value:
                if key_node.tag == MERGE_TAG:
                    pairs += self._merged(value_node, path)
                else:
                    pairs.append((key_node, value_node))
        return pairs

    def _key(self, node: yaml.Node, path: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, path, "keys must be plain names")
        key = str(node.value)
        return None if key.startswith(EXTENSION_PREFIX) else key

    def _check_key(
        self,
        key: str,
        node: yaml.Node,
        path: str,
        known: Sequence[str],
        unsupported: Mapping[str, str],
    ) -> None:
        if key in known:
            return
        where = f" in {path}" if path else " at the top level"
        if key in unsupported:
            raise SyncConfigError(f"key {key!r}{where}: {unsupported[key]}", self.where(node))
        home = _HOMES.get(key)
        if home is not None and (path == "defaults" or re.fullmatch(r"sync\[\d+\]", path)):
            raise SyncConfigError(f"key {key!r}{where} belongs in {home}", self.where(node))
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if not close:
            close = [k for k in known if k.lower() == key.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
        raise SyncConfigError(f"unknown key {key!r}{where}{hint}", self.where(node))

    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, path, f"must be a single value, not {_kind(node)}")
        return self.constructor.construct_object(node, deep=True)

    def string(self, node: yaml.Node, path: str) -> str | None:
        """A string value; numbers and booleans count as the text written, as in Go's yaml
        (so `pass: 0123` is "0123"); null is unset."""
        if self.is_null(node):
            return None
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, path, f"must be a string, not {_kind(node)}")
        return str(node.value)

    def boolean(self, node: yaml.Node, path: str) -> bool | None:
        if self.is_null(node):
            return None
        value = self.scalar(node, path)
        if not isinstance(value, bool):
            self.fail(node, path, f"must be true or false, not {_shown(node)}")
        return value

    def integer(self, node: yaml.Node, path: str, minimum: int = 0) -> int | None:
        if self.is_null(node):
            return None
        value = self.scalar(node, path)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(node, path, f"must be a whole number, not {_shown(node)}")
        if value < minimum:
            self.fail(node, path, f"must be at least {minimum}, not {value}")
        return value

    def number(self, node: yaml.Node, path: str, minimum: float = 0.0) -> float | None:
        if self.is_null(node):
            return None
        value = self.scalar(node, path)
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.fail(node, path, f"must be a number, not {_shown(node)}")
        if value < minimum:
            self.fail(node, path, f"must be at least {minimum:g}, not {value}")
        return float(value)

    def strings(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        if self.is_null(node):
            return None
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, f"must be a list of strings, not {_kind(node)}")
        values = []
        for i, item in enumerate(node.value):
            text = self.string(item, f"{path}[{i}]")
            if text is None:
                self.fail(item, f"{path}[{i}]", "must be a string, not null")
            values.append(text)
        return tuple(values)

    def string_map(self, node: yaml.Node, path: str) -> dict[str, str]:
        if self.is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, path, f"must be a mapping of strings, not {_kind(node)}")
        values: dict[str, str] = {}
        for key_node, value_node in node.value:
            key = self.string(key_node, path)
            if key is None:
                self.fail(key_node, path, "keys must be strings")
            values[key] = self.string(value_node, f"{path}.{key}") or ""
        return values

    def duration(self, node: yaml.Node, path: str) -> float | None:
        text = self.string(node, path)
        if text is None:
            return None
        if not isinstance(self.scalar(node, path), str):
            self.fail(node, path, f"must be a duration such as 90s, 15m or 1h30m, not {text}")
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            self.fail(node, path, str(exc))
        if seconds < 0:
            self.fail(node, path, f"must not be negative, not {text}")
        return seconds

    def schedule(self, node: yaml.Node, path: str) -> Cron | Every | None:
        text = self.string(node, path)
        if not text:
            return None
        try:
            return Cron.parse(text)
        except ValueError as exc:
            self.fail(node, path, str(exc))

    def template(self, node: yaml.Node, path: str, data: Mapping[str, Any] | None = None) -> str:
        text = self.string(node, path) or ""
        try:
            return expand(text, data)
        except TemplateError as exc:
            self.fail(node, path, f"template: {exc}")

    # --- sections ------------------------------------------------------------------------------

    def config(self, root: yaml.Node | None) -> SyncConfig:
        if root is None or self.is_null(root):
            return SyncConfig(self.file)
        keys = self.mapping(root, "", TOP_KEYS)
        version = SUPPORTED_VERSION
        if "version" in keys:
            version = self.integer(keys["version"], "version") or SUPPORTED_VERSION
            if version > SUPPORTED_VERSION:
                self.fail(
                    keys["version"],
                    "version",
                    f"version {version} is not supported (this is version {SUPPORTED_VERSION})",
                )
        creds = self.creds(keys.get("creds"))
        defaults = self.defaults(keys.get("defaults"))
        entries = self.entries(keys.get("sync"), defaults)
        return SyncConfig(self.file, version, creds, defaults, entries)

    def items(self, node: yaml.Node | None, path: str) -> list[yaml.Node]:
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(
                node, path, f"must be a list (each item starting with '-'), not {_kind(node)}"
            )
        return list(node.value)

    def creds(self, node: yaml.Node | None) -> tuple[RegistryCreds, ...]:
        found: list[RegistryCreds] = []
        seen: dict[str, Where] = {}
        for i, item in enumerate(self.items(node, "creds")):
            path = f"creds[{i}]"
            keys = self.mapping(item, path, CREDS_KEYS, UNSUPPORTED_CREDS)
            name_node = keys.get("registry", keys.get("hostname"))
            if name_node is None or not self.string(name_node, path):
                self.fail(item, path, "needs `registry` (the registry's name in references)")
            registry = self.template(name_node, f"{path}.registry")
            try:
                name = normalize_registry(registry)
            except ValueError as exc:
                self.fail(name_node, f"{path}.registry", str(exc))
            hostname = None
            if "registry" in keys and "hostname" in keys:
                hostname = self.template(keys["hostname"], f"{path}.hostname").strip() or None
                if hostname is not None and ("/" in hostname or not hostname):
                    self.fail(keys["hostname"], f"{path}.hostname", "must be host[:port]")
                if hostname == name:
                    hostname = None
            if name in seen:
                self.fail(
                    item, path, f"creds for {name} are already given on line {seen[name].line}"
                )
            seen[name] = self.where(item)
            tls = self.tls(keys, path)
            regcert = None
            if "regcert" in keys:
                regcert = self.template(keys["regcert"], f"{path}.regcert") or None
                if regcert is not None:
                    self.check_pem(keys["regcert"], f"{path}.regcert", regcert)
            found.append(
                RegistryCreds(
                    registry=name,
                    hostname=hostname,
                    user=self.template(keys["user"], f"{path}.user") if "user" in keys else None,
                    password=self.template(keys["pass"], f"{path}.pass")
                    if "pass" in keys
                    else None,
                    tls=tls,
                    regcert=regcert,
                    req_per_sec=self.number(keys["reqPerSec"], f"{path}.reqPerSec")
                    if "reqPerSec" in keys
                    else None,
                    req_concurrent=self.integer(keys["reqConcurrent"], f"{path}.reqConcurrent")
                    if "reqConcurrent" in keys
                    else None,
                    blob_chunk=self.integer(keys["blobChunk"], f"{path}.blobChunk")
                    if "blobChunk" in keys
                    else None,
                    where=self.where(item),
                )
            )
        return tuple(found)

    def tls(self, keys: Mapping[str, yaml.Node], path: str) -> TLSMode | None:
        mode: TLSMode | None = None
        if "tls" in keys:
            text = (self.string(keys["tls"], f"{path}.tls") or "").lower()
            if text:
                try:
                    mode = TLSMode(text)
                except ValueError:
                    self.fail(
                        keys["tls"],
                        f"{path}.tls",
                        f"must be enabled, insecure or disabled, not {text!r}",
                    )
        if "scheme" in keys:  # deprecated in regclient: http means tls: disabled
            scheme = (self.string(keys["scheme"], f"{path}.scheme") or "").lower()
            if scheme not in ("", "http", "https"):
                self.fail(
                    keys["scheme"], f"{path}.scheme", f"must be http or https, not {scheme!r}"
                )
            if scheme == "http" and mode is None:
                mode = TLSMode.DISABLED
        return mode

    def check_pem(self, node: yaml.Node, path: str, pem: str) -> None:
        try:
            ssl.create_default_context().load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as exc:
            self.fail(node, path, f"is not a PEM certificate the TLS library accepts: {exc}")

    def ratelimit(self, node: yaml.Node, path: str) -> tuple[int | None, float | None]:
        keys = self.mapping(node, path, RATELIMIT_KEYS)
        minimum = self.integer(keys["min"], f"{path}.min") if "min" in keys else None
        retry = self.duration(keys["retry"], f"{path}.retry") if "retry" in keys else None
        return minimum, retry

    def referrer_filters(self, node: yaml.Node, path: str) -> tuple[ReferrerFilter, ...] | None:
        if self.is_null(node):
            return None
        filters = []
        for i, item in enumerate(self.items(node, path)):
            keys = self.mapping(item, f"{path}[{i}]", REFERRER_FILTER_KEYS)
            artifact_type = (
                self.string(keys["artifactType"], f"{path}[{i}].artifactType")
                if "artifactType" in keys
                else None
            )
            annotations = (
                self.string_map(keys["annotations"], f"{path}[{i}].annotations")
                if "annotations" in keys
                else {}
            )
            filters.append(ReferrerFilter(artifact_type or None, annotations))
        return tuple(filters)

    def platforms(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        values = self.strings(node, path)
        for i, value in enumerate(values or ()):
            self.platform(node.value[i], f"{path}[{i}]", value)
        return values

    def platform(self, node: yaml.Node, path: str, value: str) -> str:
        try:
            Platform.parse(value)
        except ValueError as exc:
            self.fail(node, path, str(exc))
        return value

    def media_types(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        values = self.strings(node, path)
        for i, value in enumerate(values or ()):
            if value not in mt.MANIFESTS:
                self.fail(
                    node.value[i],
                    f"{path}[{i}]",
                    f"{value!r} is not a manifest media type dockyard copies (use "
                    + ", ".join(DEFAULT_MEDIA_TYPES)
                    + ")",
                )
        return values

    def repository(self, node: yaml.Node, path: str, text: str) -> Reference:
        """A reference that names a repository (no tag, no digest)."""
        ref = self.reference(node, path, text)
        if ref.digest is not None or ref.tag != DEFAULT_TAG or text.strip().endswith(":latest"):
            self.fail(node, path, f"{text!r} must name a repository, without a tag or digest")
        return ref

    def reference(self, node: yaml.Node, path: str, text: str) -> Reference:
        try:
            return Reference.parse(text.strip())
        except (OciError, ValueError) as exc:
            message = exc.message if isinstance(exc, OciError) else str(exc)
            self.fail(node, path, message)

    def common(self, keys: Mapping[str, yaml.Node], path: str) -> dict[str, Any]:
        """The values `defaults` and `sync` entries share (None: not set)."""
        values: dict[str, Any] = {}
        if "interval" in keys:
            values["interval"] = self.duration(keys["interval"], f"{path}.interval")
        if "schedule" in keys:
            values["schedule"] = self.schedule(keys["schedule"], f"{path}.schedule")
        if "ratelimit" in keys:
            values["ratelimit"] = self.ratelimit(keys["ratelimit"], f"{path}.ratelimit")
        for key, attr in (
            ("referrers", "referrers"),
            ("digestTags", "digest_tags"),
            ("fastCheck", "fast_check"),
            ("forceRecursive", "force_recursive"),
            ("includeExternal", "include_external"),
        ):
            if key in keys:
                values[attr] = self.boolean(keys[key], f"{path}.{key}")
        if "referrerFilters" in keys:
            values["referrer_filters"] = self.referrer_filters(
                keys["referrerFilters"], f"{path}.referrerFilters"
            )
        if "platforms" in keys:
            values["platforms"] = self.platforms(keys["platforms"], f"{path}.platforms")
        if "mediaTypes" in keys:
            values["media_types"] = self.media_types(keys["mediaTypes"], f"{path}.mediaTypes")
        return values

    def defaults(self, node: yaml.Node | None) -> SyncDefaults:
        if node is None:
            return SyncDefaults()
        path = "defaults"
        keys = self.mapping(node, path, DEFAULTS_KEYS, UNSUPPORTED_DEFAULTS)
        values = self.common(keys, path)
        minimum, retry = values.pop("ratelimit", (None, None))
        ratelimit = RateLimit(minimum or 0, max(retry or 0.0, RATE_LIMIT_RETRY_MIN))
        for key, attr in (
            ("referrerSource", "referrer_source"),
            ("referrerTarget", "referrer_target"),
        ):
            if key in keys:
                text = self.template(keys[key], f"{path}.{key}")
                values[attr] = self.repository(keys[key], f"{path}.{key}", text) if text else None
        parallel = 1
        if "parallel" in keys:
            parallel = self.integer(keys["parallel"], f"{path}.parallel", minimum=1) or 1
        user_agent = (
            self.string(keys["userAgent"], f"{path}.userAgent") if "userAgent" in keys else None
        )
        skip = keys.get("skipDockerConfig")
        return SyncDefaults(
            parallel=parallel,
            ratelimit=ratelimit,
            skip_docker_config=bool(
                skip is not None and self.boolean(skip, f"{path}.skipDockerConfig")
            ),
            user_agent=user_agent or None,
            **values,
        )

    def tag_filter(
        self, node: yaml.Node, path: str, unsupported: Mapping[str, str] | None = None
    ) -> TagFilter:
        keys = self.mapping(node, path, FILTER_KEYS, unsupported)
        lists: dict[str, tuple[str, ...]] = {}
        for key in FILTER_KEYS:
            values = self.strings(keys[key], f"{path}.{key}") if key in keys else None
            for i, pattern in enumerate(values or ()):
                try:
                    _anchored(pattern)
                except re.error as exc:
                    self.fail(
                        keys[key].value[i],
                        f"{path}.{key}[{i}]",
                        f"invalid regex {pattern!r}: {exc}",
                    )
            lists[key] = values or ()
        return TagFilter(lists["allow"], lists["deny"])

    def entries(self, node: yaml.Node | None, defaults: SyncDefaults) -> tuple[SyncEntry, ...]:
        return tuple(
            self.entry(i, item, defaults) for i, item in enumerate(self.items(node, "sync"))
        )

    def entry(self, index: int, node: yaml.Node, defaults: SyncDefaults) -> SyncEntry:
        path = f"sync[{index}]"
        keys = self.mapping(node, path, SYNC_KEYS, UNSUPPORTED_COMMON)
        for required in ("source", "target", "type"):
            if required not in keys or not self.string(keys[required], f"{path}.{required}"):
                self.fail(node, path, f"needs `{required}`")
        kind = (self.string(keys["type"], f"{path}.type") or "").strip()
        if kind not in SYNC_TYPES:
            self.fail(
                keys["type"], f"{path}.type", f"must be registry, repository or image, not {kind!r}"
            )
        values = self.common(keys, path)
        ratelimit = values.pop("ratelimit", (None, None))
        fast_check = values.pop("fast_check", None)
        if "fastCopy" in keys:
            fast_copy = self.boolean(keys["fastCopy"], f"{path}.fastCopy")
            if fast_check is not None and fast_copy is not None and fast_copy != fast_check:
                self.fail(keys["fastCopy"], f"{path}.fastCopy", "contradicts fastCheck")
            fast_check = fast_copy if fast_check is None else fast_check

        def pick(name: str, fallback: Any) -> Any:
            value = values.get(name)
            if value is not None:
                return value
            inherited = getattr(defaults, name)
            return fallback if inherited is None else inherited

        force_recursive = bool(pick("force_recursive", False))
        if fast_check is None:
            fast_check = defaults.fast_check
        referrers = bool(pick("referrers", False))

        # templates, in regsync's order: source, referrerSource, target, referrerTarget
        schedule = self.entry_schedule(values, defaults)
        data: dict[str, Any] = {
            "Type": kind,
            "Source": self.string(keys["source"], path) or "",
            "Target": self.string(keys["target"], path) or "",
            "ReferrerSrc": "",
            "ReferrerTgt": "",
            "Platform": "",
            "Schedule": str(schedule) if isinstance(schedule, Cron) else "",
            "Interval": format_duration(schedule.seconds) if isinstance(schedule, Every) else "0s",
        }
        if "platform" in keys:
            data["Platform"] = self.string(keys["platform"], f"{path}.platform") or ""
        source = self.template(keys["source"], f"{path}.source", {"Sync": data}).strip()
        data["Source"] = source
        referrer_source = defaults.referrer_source
        if "referrerSource" in keys:
            text = self.template(keys["referrerSource"], f"{path}.referrerSource", {"Sync": data})
            data["ReferrerSrc"] = text
            referrer_source = (
                self.repository(keys["referrerSource"], f"{path}.referrerSource", text)
                if text
                else None
            )
        target = self.template(keys["target"], f"{path}.target", {"Sync": data}).strip()
        data["Target"] = target
        referrer_target = defaults.referrer_target
        if "referrerTarget" in keys:
            text = self.template(keys["referrerTarget"], f"{path}.referrerTarget", {"Sync": data})
            data["ReferrerTgt"] = text
            referrer_target = (
                self.repository(keys["referrerTarget"], f"{path}.referrerTarget", text)
                if text
                else None
            )
        for key in ("referrerSource", "referrerTarget"):
            if key in keys and not referrers and not self.is_null(keys[key]):
                self.fail(keys[key], f"{path}.{key}", "has no effect without `referrers: true`")

        source_ref = target_ref = None
        if kind == "image":
            source_ref = self.reference(keys["source"], f"{path}.source", source)
            target_ref = self.reference(keys["target"], f"{path}.target", target)
        elif kind == "repository":
            source_ref = self.repository(keys["source"], f"{path}.source", source)
            target_ref = self.repository(keys["target"], f"{path}.target", target)
        else:
            self.registry_names(keys, path, source, target)

        tags: list[TagFilter] = []
        if "tags" in keys:
            tags.append(self.tag_filter(keys["tags"], f"{path}.tags", UNSUPPORTED_FILTER))
        for i, item in enumerate(self.items(keys.get("tagSets"), f"{path}.tagSets")):
            tags.append(self.tag_filter(item, f"{path}.tagSets[{i}]", UNSUPPORTED_FILTER))
        tags = [t for t in tags if not t.is_empty]
        repos = self.tag_filter(keys["repos"], f"{path}.repos") if "repos" in keys else TagFilter()
        if kind == "image":
            for key in ("tags", "tagSets"):
                if key in keys and not self.is_null(keys[key]):
                    self.fail(
                        keys[key],
                        f"{path}.{key}",
                        "selects tags of repository and registry entries, not of an image",
                    )
        if kind != "registry" and "repos" in keys and not self.is_null(keys["repos"]):
            self.fail(
                keys["repos"], f"{path}.repos", "selects repositories of registry entries only"
            )

        platform = None
        if "platform" in keys:
            chosen = self.string(keys["platform"], f"{path}.platform")
            if chosen:
                platform = self.platform(keys["platform"], f"{path}.platform", chosen)
        platforms = pick("platforms", ())
        if platform is not None and values.get("platforms"):
            self.fail(keys["platform"], f"{path}.platform", "use platform or platforms, not both")

        minimum, retry = ratelimit
        inherited = defaults.ratelimit
        if retry is not None:
            retry = max(retry, RATE_LIMIT_RETRY_MIN)
        return SyncEntry(
            index=index,
            type=kind,
            source=source,
            target=target,
            source_ref=source_ref,
            target_ref=target_ref,
            tags=tuple(tags),
            repos=repos,
            platform=platform,
            platforms=tuple(platforms or ()),
            referrers=referrers,
            referrer_filters=tuple(pick("referrer_filters", ()) or ()),
            referrer_source=referrer_source,
            referrer_target=referrer_target,
            digest_tags=bool(pick("digest_tags", False)),
            fast_check=(not force_recursive) if fast_check is None else fast_check,
            force_recursive=force_recursive,
            include_external=bool(pick("include_external", False)),
            schedule=schedule,
            ratelimit=RateLimit(
                minimum if minimum else inherited.min, retry if retry else inherited.retry
            ),
            media_types=tuple(pick("media_types", DEFAULT_MEDIA_TYPES) or DEFAULT_MEDIA_TYPES),
            where=self.where(node),
        )

    @staticmethod
    def entry_schedule(values: Mapping[str, Any], defaults: SyncDefaults) -> Cron | Every | None:
        """regsync's precedence: the entry's schedule, its interval, then the defaults'."""
        schedule: Cron | Every | None = values.get("schedule")
        interval: float | None = values.get("interval")
        if schedule is None and not interval:
            schedule, interval = defaults.schedule, defaults.interval
        if schedule is not None:
            return schedule
        return Every(interval) if interval else None

    def registry_names(
        self, keys: Mapping[str, yaml.Node], path: str, source: str, target: str
    ) -> None:
        if "/" in source.strip("/") or not source.strip():
            self.fail(
                keys["source"], f"{path}.source", f"{source!r} must be a registry (host[:port])"
            )
        for key, text in (("source", source), ("target", target)):
            host = text.strip().split("/", 1)[0]
            try:
                Reference(host, "x")
            except (OciError, ValueError) as exc:
                message = exc.message if isinstance(exc, OciError) else str(exc)
                self.fail(
                    keys[key],
                    f"{path}.{key}",
                    f"{text!r} does not start with a registry host: {message}",
                )


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}"


def _shown(node: yaml.Node) -> str:
    return _kind(node) if not isinstance(node, yaml.ScalarNode) else repr(node.value)
