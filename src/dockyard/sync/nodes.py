"""Reading composed YAML nodes strictly: mappings with their keys checked (anchors, aliases,
merge keys and `x-*` extensions allowed), typed scalars and lists, each failure naming the
file, the line and the key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import yaml

from dockyard.sync.keys import HOMES
from dockyard.sync.model import SyncConfigError, Where
from dockyard.sync.schedule import Cron, Every, parse_duration
from dockyard.sync.template import TemplateError, expand

EXTENSION_PREFIX = "x-"
MERGE_TAG = "tag:yaml.org,2002:merge"
NULL_TAG = "tag:yaml.org,2002:null"


class NodeReader:
    """Reads composed YAML nodes as checked values, naming the place of anything wrong."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = yaml.SafeLoader("")

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
        home = HOMES.get(key)
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

    def items(self, node: yaml.Node | None, path: str) -> list[yaml.Node]:
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(
                node, path, f"must be a list (each item starting with '-'), not {_kind(node)}"
            )
        return list(node.value)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}"


def _shown(node: yaml.Node) -> str:
    return _kind(node) if not isinstance(node, yaml.ScalarNode) else repr(node.value)
