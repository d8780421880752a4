"""The site's buckets in PostgreSQL: leases refill and never overdraw, even from two nodes
at once, and idle rows go away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from dockyard.auth.limits import SiteBuckets
from dockyard.metadata.db import Database
from dockyard.metadata.tables import limit_buckets
from dockyard.storage.buckets import Limit

pytestmark = pytest.mark.peers

LIMIT = Limit(capacity=25.0, per_second=0.5)
NOW = 1_000_000.0


@pytest.fixture
async def nodes(postgres_database_url: str) -> AsyncIterator[list[SiteBuckets]]:
    """Two nodes' buckets: each its own engine (its own connections) on one database."""
    dbs = [Database(postgres_database_url) for _ in range(2)]
    await dbs[0].migrate()
    try:
        yield [SiteBuckets(db) for db in dbs]
    finally:
        for db in dbs:
            await db.close()


async def test_a_lease_takes_whole_tokens_and_the_bucket_refills(
    nodes: list[SiteBuckets],
) -> None:
    site = nodes[0]
    assert await site.lease("c", LIMIT, NOW, 10) == (10, 0)
    assert await site.lease("c", LIMIT, NOW, 10) == (10, 0)
    assert await site.lease("c", LIMIT, NOW, 10) == (5, 0)  # what is left
    assert await site.lease("c", LIMIT, NOW, 10) == (0, 2)  # one token in 2 s at 0.5/s
    assert await site.lease("c", LIMIT, NOW + 1.0, 10) == (0, 1)
    assert await site.lease("c", LIMIT, NOW + 7.0, 10) == (3, 0)  # 3.5 refilled since
    assert await site.lease("other", LIMIT, NOW, 1) == (1, 0)  # a bucket of its own


async def test_concurrent_leases_from_two_nodes_never_take_more_than_the_bucket(
    nodes: list[SiteBuckets],
) -> None:
    async def lease(i: int) -> int:
        taken, _ = await nodes[i % 2].lease("c", LIMIT, NOW, 2)
        return taken

    taken = await asyncio.gather(*(lease(i) for i in range(40)))
    assert sum(taken) == 25
    assert taken.count(0) == 40 - 13  # twelve leases of 2, one of the last token


async def test_takes_from_two_nodes_at_once_decide_once(nodes: list[SiteBuckets]) -> None:
    wanted = [("a", Limit(3.0, 0.001)), ("b", Limit(100.0, 0.001))]
    results = await asyncio.gather(
        *(nodes[i % 2].take(wanted, [True, True], NOW) for i in range(10))
    )
    assert results.count(None) == 3  # "a" allowed three
    assert all(r is not None and r[0] == 0 and r[1] < 1.0 for r in results if r is not None)
    levels = await nodes[1].levels(wanted, NOW)
    assert levels[0] == pytest.approx(0.0)
    assert levels[1] == pytest.approx(97.0)  # a refused attempt took nothing


async def test_idle_rows_are_deleted(nodes: list[SiteBuckets]) -> None:
    site, slow = nodes[0], Limit(capacity=25.0, per_second=0.1)
    await site.lease("busy", slow, NOW, 20)  # full again 200 s later
    await site.lease("brief", LIMIT, NOW, 1)  # full again 2 s later
    await site.remember("known", NOW, 3600.0)
    await site.lease("trigger", LIMIT, NOW + 61.0, 1)  # a minute since the last prune
    async with site.db.read() as conn:
        count = await conn.scalar(select(func.count()).select_from(limit_buckets))
    assert count == 3  # "brief" is gone: forgetting a full bucket changes nothing
    assert await site.seen("known") == NOW
    assert await site.lease("busy", slow, NOW + 61.0, 25) == (11, 0)  # 5 + 6.1, still counted
