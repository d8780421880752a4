"""The host-shared token buckets: one bucket per key across processes, eviction by age."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from dockyard.storage.buckets import PROBE, Limit, SharedTable

LIMIT = Limit(capacity=20.0, per_second=0.001)


def _take(table: SharedTable, key: str, limit: Limit, now: float) -> int:
    """Take a token under the lock: 0 when taken, else whole seconds until one is."""
    with table.locked() as slots:
        return slots.lease(key, limit, now, 1)[1]


def _take_all(path: str, key: str, start: float, results: multiprocessing.Queue[int]) -> None:
    table = SharedTable(Path(path))
    taken = 0
    for _ in range(40):
        if _take(table, key, LIMIT, start) == 0:
            taken += 1
    results.put(taken)


def test_processes_sharing_the_file_share_each_bucket(tmp_path: Path) -> None:
    path = tmp_path / "run" / "buckets"
    parent = SharedTable(path)
    now = time.time()
    assert _take(parent, "client", LIMIT, now) == 0  # opened here before the fork
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[int] = context.Queue()
    workers = [
        context.Process(target=_take_all, args=(str(path), "client", now, results))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    counts = [results.get(timeout=5) for _ in workers]
    # 20 tokens in all: the parent's one, and 19 among three processes, none twice
    assert sum(counts) == 19
    assert _take(parent, "client", LIMIT, now) > 0


def test_a_full_table_forgets_the_bucket_touched_longest_ago(tmp_path: Path) -> None:
    table = SharedTable(tmp_path / "buckets", slots=1)  # every key has the same PROBE slots
    limit = Limit(capacity=1.0, per_second=0.001)
    for i in range(PROBE):
        assert _take(table, f"client{i}", limit, 1000.0 + i) == 0
    assert _take(table, "newcomer", limit, 2000.0) == 0
    with table.locked() as slots:
        assert slots.get("client0") is None  # the oldest made room
        kept = [slots.get(f"client{i}") for i in range(1, PROBE)]
    assert all(entry is not None for entry in kept)
    # the others are still empty buckets: nothing was cleared wholesale
    assert all(_take(table, f"client{i}", limit, 2000.0) > 0 for i in range(1, PROBE))


def test_a_bucket_refills_at_its_rate_and_says_when(tmp_path: Path) -> None:
    table = SharedTable(tmp_path / "buckets")
    limit = Limit.per_window(2, 10.0)  # 2 at once, one more every 5 s
    assert [_take(table, "c", limit, 100.0) for _ in range(3)] == [0, 0, 5]
    assert _take(table, "c", limit, 103.0) == 2
    assert _take(table, "c", limit, 105.0) == 0


def test_a_file_laid_out_by_another_process_is_used_at_its_size(tmp_path: Path) -> None:
    path = tmp_path / "buckets"
    first = SharedTable(path, slots=64)
    assert _take(first, "c", LIMIT, 1.0) == 0
    size = path.stat().st_size
    second = SharedTable(path, slots=128)
    with second.locked() as slots:
        assert slots.get("c") == (1.0, LIMIT.capacity - 1.0)
    assert path.stat().st_size == size  # not cut under the first one's mapping, nor grown
