"""The entry type every layer contributor shares: one spelling per path, no escape from the
root, and data only where a file is."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.build.entries import Entry, Kind, clean_path, file_range, is_within


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("./etc/passwd", "etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("etc/ssl/", "etc/ssl"),
        ("a//b/./c", "a/b/c"),
        ("/", ""),
        ("./", ""),
        ("", ""),
    ],
)
def test_every_spelling_of_a_path_is_one_key(text: str, clean: str) -> None:
    assert clean_path(text) == clean


@pytest.mark.parametrize("text", ["../etc", "a/../../b", "/a/.."])
def test_a_dotdot_component_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"'\.\.'"):
        clean_path(text)


def test_is_within_matches_whole_components() -> None:
    assert is_within("etc/ssl/certs/a.pem", "etc/ssl")
    assert is_within("etc/ssl", "etc/ssl")
    assert not is_within("etc/sslx", "etc/ssl")
    assert is_within("anything", "")


def test_entries_refuse_what_a_layer_cannot_hold() -> None:
    with pytest.raises(ValueError, match="not clean"):
        Entry("/etc/passwd", Kind.FILE, 0o644)
    with pytest.raises(ValueError, match="permission bits"):
        Entry("a", Kind.FILE, 0o100644)
    with pytest.raises(ValueError, match="link target"):
        Entry("a", Kind.SYMLINK, 0o777)
    with pytest.raises(ValueError, match="only a file"):
        Entry("a", Kind.DIR, 0o755, data=b"x", size=1)
    with pytest.raises(ValueError, match="size 2"):
        Entry("a", Kind.FILE, 0o644, size=2, data=b"x")


async def test_data_streams_from_bytes_or_from_a_file_range(tmp_path: Path) -> None:
    entry = Entry.file("/etc/motd", b"hello")
    assert entry.path == "etc/motd"
    assert b"".join([chunk async for chunk in entry.chunks()]) == b"hello"
    spool = tmp_path / "spool"
    spool.write_bytes(b"xxhello worldyy")
    ranged = Entry("a", Kind.FILE, 0o600, size=11, data=file_range(spool, 2, 11))
    assert b"".join([chunk async for chunk in ranged.chunks()]) == b"hello world"
    # an opener opens afresh each time (the writer may read a file twice: hash, then write)
    assert b"".join([chunk async for chunk in ranged.chunks()]) == b"hello world"
