"""A short-lived read cache for the hottest metadata (repository rows, tags, manifests).

Writes made by this process invalidate their entries at once, so a client always reads its
own writes. Writes made by another process or node are seen within `ttl` seconds: the price of
serving hot tags without a database round trip per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
_MISSING = object()


class ReadCache(Generic[V]):
    """At most `size` entries, each kept for `ttl` seconds; a `ttl` of 0 caches nothing."""

    def __init__(self, ttl: float, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        """The cached value, None on a miss (absent values are not cached)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        return value

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def forget_where(self, prefix: tuple[Hashable, ...]) -> None:
        """Drop every entry whose (tuple) key starts with `prefix`."""
        n = len(prefix)
        for key in [k for k in self._entries if isinstance(k, tuple) and k[:n] == prefix]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
