"""A short-lived read cache for the hottest metadata (repository rows, tags, manifests).

Writes made on this host invalidate entries at once, in every worker process: a write calls
`invalidate` after its commit, which bumps the host's shared `Generation`, and an entry
loaded before that bump is no longer used. So a client always reads its own writes, whichever
worker answers. Writes made by a node on another host are seen within `ttl` seconds: the
price of serving hot tags without a database round trip per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from dockyard.storage.generation import Generation

if TYPE_CHECKING:
    from dockyard.registry.context import Store

V = TypeVar("V")


class _Entry(NamedTuple, Generic[V]):
    expires: float
    stamp: int  # the generation read before the value was loaded
    value: V


class ReadCache(Generic[V]):
    """At most `size` entries, each kept for `ttl` seconds; a `ttl` of 0 caches nothing."""

    def __init__(self, ttl: float, size: int = 4096, generation: Generation | None = None) -> None:
        self.ttl = ttl
        self.size = size
        self.generation = generation or Generation()
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        """The cached value, None on a miss (absent values are not cached)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires < time.monotonic() or entry.stamp != self.generation.current():
            del self._entries[key]
            return None
        return entry.value

    async def fetch(self, key: Hashable, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value, or `load()`'s (cached unless None)."""
        found = self.get(key)
        if found is None:
            stamp = self.generation.current()  # before loading: a write meanwhile voids it
            found = await load()
            if found is not None:
                self._put(key, found, stamp)
        return found

    def put(self, key: Hashable, value: V) -> None:
        """Cache what this process has just written (and committed)."""
        self._put(key, value, self.generation.current())

    def _put(self, key: Hashable, value: V, stamp: int) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = _Entry(time.monotonic() + self.ttl, stamp, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def invalidate(self) -> None:
        """After a committed write: void every entry of every cache of this host's workers
        (entries are not dropped one by one: the shared stamp voids them all anyway)."""
        self._entries.clear()
        self.generation.bump()


def store_cache(store: Store, size: int = 4096) -> ReadCache[Any]:
    """A cache of what `store` holds, kept coherent with the host's other workers."""
    return ReadCache(store.cache_seconds, size, store.generation)
