"""Reading `sync` entries: each with the defaults applied and its templates expanded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from dockyard.oci.errors import OciError
from dockyard.oci.reference import Reference
from dockyard.sync.keys import FILTER_KEYS, SYNC_KEYS, UNSUPPORTED_COMMON, UNSUPPORTED_FILTER
from dockyard.sync.model import (
    DEFAULT_MEDIA_TYPES,
    RATE_LIMIT_RETRY_MIN,
    SYNC_TYPES,
    RateLimit,
    SyncDefaults,
    SyncEntry,
    TagFilter,
    anchored,
)
from dockyard.sync.schedule import Cron, Every, format_duration
from dockyard.sync.settings import SettingsReader


class EntryReader(SettingsReader):
    """Reads `sync` entries."""

    def tag_filter(
        self, node: yaml.Node, path: str, unsupported: Mapping[str, str] | None = None
    ) -> TagFilter:
        keys = self.mapping(node, path, FILTER_KEYS, unsupported)
        lists: dict[str, tuple[str, ...]] = {}
        for key in FILTER_KEYS:
            values = self.strings(keys[key], f"{path}.{key}") if key in keys else None
            for i, pattern in enumerate(values or ()):
                try:
                    anchored(pattern)
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
        fast_check = self.entry_fast_check(keys, path, values.pop("fast_check", None))

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
        schedule = self.entry_schedule(values, defaults)
        places = self.places(keys, path, kind, schedule, defaults, referrers)
        source, target, referrer_source, referrer_target = places
        source_ref, target_ref = self.entry_references(keys, path, kind, source, target)
        tags, repos = self.entry_filters(keys, path, kind)
        platform = self.entry_platform(keys, path, values)
        return SyncEntry(
            index=index,
            type=kind,
            source=source,
            target=target,
            source_ref=source_ref,
            target_ref=target_ref,
            tags=tags,
            repos=repos,
            platform=platform,
            platforms=tuple(pick("platforms", ()) or ()),
            referrers=referrers,
            referrer_filters=tuple(pick("referrer_filters", ()) or ()),
            referrer_source=referrer_source,
            referrer_target=referrer_target,
            digest_tags=bool(pick("digest_tags", False)),
            fast_check=(not force_recursive) if fast_check is None else fast_check,
            force_recursive=force_recursive,
            include_external=bool(pick("include_external", False)),
            schedule=schedule,
            ratelimit=self.entry_ratelimit(ratelimit, defaults.ratelimit),
            media_types=tuple(pick("media_types", DEFAULT_MEDIA_TYPES) or DEFAULT_MEDIA_TYPES),
            where=self.where(node),
        )

    def entry_fast_check(
        self, keys: Mapping[str, yaml.Node], path: str, fast_check: bool | None
    ) -> bool | None:
        """`fastCheck`, or `fastCopy` as the DHI docs write it (both: they must agree)."""
        if "fastCopy" in keys:
            fast_copy = self.boolean(keys["fastCopy"], f"{path}.fastCopy")
            if fast_check is not None and fast_copy is not None and fast_copy != fast_check:
                self.fail(keys["fastCopy"], f"{path}.fastCopy", "contradicts fastCheck")
            fast_check = fast_copy if fast_check is None else fast_check
        return fast_check

    def places(
        self,
        keys: Mapping[str, yaml.Node],
        path: str,
        kind: str,
        schedule: Cron | Every | None,
        defaults: SyncDefaults,
        referrers: bool,
    ) -> tuple[str, str, Reference | None, Reference | None]:
        """`source`, `target`, `referrerSource` and `referrerTarget` with their templates
        expanded in regsync's order (source, referrerSource, target, referrerTarget)."""
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
            referrer_source = self.referrer_place(keys, path, "referrerSource", "ReferrerSrc", data)
        target = self.template(keys["target"], f"{path}.target", {"Sync": data}).strip()
        data["Target"] = target
        referrer_target = defaults.referrer_target
        if "referrerTarget" in keys:
            referrer_target = self.referrer_place(keys, path, "referrerTarget", "ReferrerTgt", data)
        for key in ("referrerSource", "referrerTarget"):
            if key in keys and not referrers and not self.is_null(keys[key]):
                self.fail(keys[key], f"{path}.{key}", "has no effect without `referrers: true`")
        return source, target, referrer_source, referrer_target

    def referrer_place(
        self,
        keys: Mapping[str, yaml.Node],
        path: str,
        key: str,
        data_key: str,
        data: dict[str, Any],
    ) -> Reference | None:
        """`referrerSource` or `referrerTarget`, its template expanded (and noted in `data`)."""
        text = self.template(keys[key], f"{path}.{key}", {"Sync": data})
        data[data_key] = text
        return self.repository(keys[key], f"{path}.{key}", text) if text else None

    def entry_references(
        self, keys: Mapping[str, yaml.Node], path: str, kind: str, source: str, target: str
    ) -> tuple[Reference | None, Reference | None]:
        """The source and target of an image or repository entry (registry entries: None)."""
        if kind == "image":
            return (
                self.reference(keys["source"], f"{path}.source", source),
                self.reference(keys["target"], f"{path}.target", target),
            )
        if kind == "repository":
            return (
                self.repository(keys["source"], f"{path}.source", source),
                self.repository(keys["target"], f"{path}.target", target),
            )
        self.registry_names(keys, path, source, target)
        return None, None

    def entry_filters(
        self, keys: Mapping[str, yaml.Node], path: str, kind: str
    ) -> tuple[tuple[TagFilter, ...], TagFilter]:
        """`tags` with `tagSets`, and `repos`, each checked against the entry's type."""
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
        return tuple(tags), repos

    def entry_platform(
        self, keys: Mapping[str, yaml.Node], path: str, values: Mapping[str, Any]
    ) -> str | None:
        """`platform` (not with the entry's own `platforms`)."""
        platform = None
        if "platform" in keys:
            chosen = self.string(keys["platform"], f"{path}.platform")
            if chosen:
                platform = self.platform(keys["platform"], f"{path}.platform", chosen)
        if platform is not None and values.get("platforms"):
            self.fail(keys["platform"], f"{path}.platform", "use platform or platforms, not both")
        return platform

    @staticmethod
    def entry_ratelimit(
        ratelimit: tuple[int | None, float | None], inherited: RateLimit
    ) -> RateLimit:
        """The entry's `ratelimit` over the defaults' (`retry`: at least 5 minutes)."""
        minimum, retry = ratelimit
        if retry is not None:
            retry = max(retry, RATE_LIMIT_RETRY_MIN)
        return RateLimit(minimum if minimum else inherited.min, retry if retry else inherited.retry)

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
