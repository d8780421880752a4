"""Streaming ingest: buffered, hashed on the way, resumable, re-hashed when state is lost."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.oci.errors import SizeInvalid
from dockyard.storage import paths, uploads
from dockyard.storage.driver.filesystem import FilesystemDriver
from dockyard.storage.paths import UploadRef
from dockyard.storage.uploads import UploadStore

U1, U2, U3, U4, U5, U6 = (UploadRef(7, f"u{n}") for n in range(1, 7))


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return UploadStore(FilesystemDriver(tmp_path))


async def test_running_hash_matches_content_across_buffers(
    store: UploadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "BUFFER_SIZE", 100_000)  # several buffers in flight
    data = bytes(range(256)) * 5000
    await store.create(U1)
    assert await store.append(U1, _chunks(data[:700_000]), 700_000) == 700_000
    assert await store.append(U1, _chunks(data[700_000:])) == len(data)
    digest = await store.digest(U1, "sha256")
    assert digest.encoded == hashlib.sha256(data).hexdigest()


async def test_lost_running_state_is_rebuilt_from_the_data(tmp_path: Path) -> None:
    data = b"x" * 300_000
    first = UploadStore(FilesystemDriver(tmp_path))
    await first.create(U2)
    await first.append(U2, _chunks(data[:100_000]))
    # another process (or a restart) continues the upload
    second = UploadStore(FilesystemDriver(tmp_path))
    await second.append(U2, _chunks(data[100_000:]))
    assert (await second.digest(U2, "sha256")).encoded == hashlib.sha256(data).hexdigest()
    # and the first process, whose running hash is now stale, does not trust it
    assert (await first.digest(U2, "sha256")).encoded == hashlib.sha256(data).hexdigest()


async def test_sha512_is_computed_from_the_data(store: UploadStore) -> None:
    await store.create(U3)
    await store.append(U3, _chunks(b"abc"))
    assert (await store.digest(U3, "sha512")).encoded == hashlib.sha512(b"abc").hexdigest()


async def test_short_body_is_size_invalid_but_kept_for_resuming(store: UploadStore) -> None:
    await store.create(U4)
    with pytest.raises(SizeInvalid, match="Content-Length said 10"):
        await store.append(U4, _chunks(b"12345"), expected_length=10)
    assert await store.size(U4) == 5


async def test_failing_body_keeps_what_was_written(store: UploadStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * 10
        raise ConnectionResetError("client went away")

    await store.create(U5)
    with pytest.raises(ConnectionResetError):
        await store.append(U5, broken())
    size = await store.size(U5)
    assert size is not None
    assert size <= 10


async def test_discard_removes_data_and_state(store: UploadStore, tmp_path: Path) -> None:
    await store.create(U6)
    await store.append(U6, _chunks(b"data"))
    await store.discard(U6)
    assert await store.size(U6) is None
    assert not (tmp_path / paths.upload_folder(U6)).exists()
    assert [upload async for upload, _ in store.sessions()] == []


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 2500, 4000])
async def test_buffers_are_filled_across_chunk_boundaries(
    store: UploadStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    monkeypatch.setattr(uploads, "BUFFER_SIZE", 1000)  # chunks of 333 straddle every buffer
    data = bytes(range(251)) * 20
    await store.create(U1)
    assert await store.append(U1, _chunks(data[:size], 333)) == size
    assert (tmp_path / paths.upload_key(U1)).read_bytes() == data[:size]
    assert (await store.digest(U1, "sha256")).encoded == hashlib.sha256(data[:size]).hexdigest()


async def test_buffers_are_reused_after_an_upload_and_dropped_after_a_failure(
    store: UploadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "BUFFER_SIZE", 1000)
    made: list[bytearray] = []
    take = uploads._Buffers.take

    def counting_take(self: uploads._Buffers) -> bytearray:
        buffer = take(self)
        made.append(buffer)
        return buffer

    monkeypatch.setattr(uploads._Buffers, "take", counting_take)
    await store.create(U1)
    await store.append(U1, _chunks(b"a" * 2500, 333))  # fills two buffers
    await store.append(U1, _chunks(b"b" * 2500, 333))
    assert len(made) == 4
    assert len({id(buffer) for buffer in made}) == 2  # the second upload took the same two

    async def broken() -> AsyncIterator[bytes]:
        yield b"c" * 1500
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.append(U1, broken())
    await store.append(U1, _chunks(b"d" * 2500, 333))
    assert len({id(buffer) for buffer in made[-2:]} & {id(buffer) for buffer in made[:2]}) == 0


def test_at_most_the_limit_of_idle_buffers_is_kept() -> None:
    buffers = uploads._Buffers(limit=2)
    taken = [buffers.take() for _ in range(3)]
    for buffer in taken:
        buffers.give(buffer)
    again = [buffers.take() for _ in range(3)]
    assert sum(any(b is t for t in taken) for b in again) == 2
