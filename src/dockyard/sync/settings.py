"""Reading the settings `defaults` and `sync` entries share, and the `defaults` section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from dockyard.copy.options import (
    ReferrerFilter,
)
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Platform
from dockyard.oci.errors import OciError
from dockyard.oci.reference import DEFAULT_TAG, Reference
from dockyard.sync.keys import (
    DEFAULTS_KEYS,
    RATELIMIT_KEYS,
    REFERRER_FILTER_KEYS,
    UNSUPPORTED_DEFAULTS,
)
from dockyard.sync.model import (
    DEFAULT_MEDIA_TYPES,
    RATE_LIMIT_RETRY_MIN,
    RateLimit,
    SyncDefaults,
)
from dockyard.sync.nodes import NodeReader


class SettingsReader(NodeReader):
    """Reads the settings `defaults` and `sync` entries share."""

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
