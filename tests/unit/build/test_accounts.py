"""Users and groups added to a base read through a Target: the base's lines kept byte for
byte, new ones appended as useradd writes them, shadow files only where the base has them,
home directories, and every clash an error naming its field and the clashing entry."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from dockyard.build.accounts import AccountFiles, Accounts, Group, User, account_files
from dockyard.build.entries import Entry, Kind
from dockyard.build.errors import Invalid
from dockyard.build.rootfs import RootFS
from support.ocilayout import Member, tar_layer
from unit.build.images import Images

PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "# a comment the file keeps\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nnogroup:x:65534:"  # no final newline
SHADOW = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
DAY = 20000


@pytest_asyncio.fixture
async def base(images: Images) -> RootFS:
    layer = tar_layer(
        [
            ("etc/passwd", PASSWD),
            ("etc/group", GROUP),
            Member("etc/shadow", SHADOW, mode=0o640, gid=42),
            ("bin/sh", "#!"),
        ]
    )
    return await images.rootfs("base", [layer])


def _files(entries: tuple[Entry, ...]) -> dict[str, Entry]:
    return {entry.path: entry for entry in entries}


async def test_users_and_groups_are_appended_as_useradd_writes_them(base: RootFS) -> None:
    accounts = Accounts(
        users=(User("app", 1000, 1000), User("worker", 1001), User("svc", 1002, gid=1)),
        groups=(Group("app", 1000, ("app", "daemon")),),
        runs_as="app",
    )
    result = await account_files(accounts, base, epoch=DAY * 86400 + 5)
    files = _files(result.entries)
    assert result.user == "app"
    assert (
        files["etc/passwd"].data
        == (
            PASSWD + "app:x:1000:1000::/home/app:/bin/sh\n"
            "worker:x:1001:1001::/home/worker:/bin/sh\n"
            "svc:x:1002:1::/home/svc:/bin/sh\n"
        ).encode()
    )
    # worker has no gid: its own group, named after it, with its uid; svc joins daemon's group
    assert files["etc/group"].data == (GROUP + "\napp:x:1000:app,daemon\nworker:x:1001:\n").encode()
    shadow = files["etc/shadow"]
    assert (shadow.mode, shadow.uid, shadow.gid) == (0o640, 0, 42)  # the base's, kept
    assert (
        shadow.data
        == (
            SHADOW
            + f"app:!:{DAY}:0:99999:7:::\nworker:!:{DAY}:0:99999:7:::\nsvc:!:{DAY}:0:99999:7:::\n"
        ).encode()
    )
    assert "etc/gshadow" not in files  # the base has none: none is made
    home = files["home/worker"]
    assert (home.kind, home.mode, home.uid, home.gid) == (Kind.DIR, 0o755, 1001, 1001)
    assert (files["home/svc"].uid, files["home/svc"].gid) == (1002, 1)
    assert files["home"].uid == 0  # the base had no /home
    assert [entry.path for entry in result.entries] == sorted(files)


async def test_no_accounts_change_nothing_and_root_runs_as_the_base_root(base: RootFS) -> None:
    assert await account_files(Accounts(), base) == AccountFiles((), None)
    result = await account_files(Accounts(root=True), base)
    assert result.user == "root"


async def test_shadow_files_follow_the_base_and_links_are_written_where_they_point(
    images: Images,
) -> None:
    layer = tar_layer(
        [
            ("usr/share/base/passwd", "root:x:0:0:root:/root:/sbin/nologin"),
            Member("etc/passwd", kind="symlink", link="../usr/share/base/passwd"),
            ("etc/group", "root:x:0:\n"),
            ("etc/gshadow", "root:*::\n"),
            Member("home", kind="dir", mode=0o755),
        ]
    )
    base = await images.rootfs("distroless", [layer])
    result = await account_files(
        Accounts(users=(User("app", 65532),), groups=(Group("web", 2000, ("app",)),)), base
    )
    files = _files(result.entries)
    assert sorted(files) == ["etc/group", "etc/gshadow", "home/app", "usr/share/base/passwd"]
    assert files["usr/share/base/passwd"].data == (
        b"root:x:0:0:root:/root:/sbin/nologin\napp:x:65532:65532::/home/app:/sbin/nologin\n"
    )
    assert files["etc/gshadow"].data == b"root:*::\nweb:!::app\napp:!::\n"
    assert result.user is None  # no runs-as: the base's User stays


CLASHES: list[tuple[dict[str, Any], str, str]] = [
    (
        {"users": (User("nobody2", 65534),)},
        "accounts.users[0].uid",
        "uid 65534 is the base's user 'nobody'",
    ),
    (
        {"users": (User("daemon", 5000),)},
        "accounts.users[0].name",
        "already has user 'daemon' (daemon:x:1:1:",
    ),
    (
        {"groups": (Group("g", 42),)},
        "accounts.groups[0].gid",
        "gid 42 is the base's group 'shadow' (shadow:x:42:)",
    ),
    (
        {"groups": (Group("nogroup", 7000),)},
        "accounts.groups[0].name",
        "already has group 'nogroup'",
    ),
    (
        {"users": (User("a", 2000), User("b", 2000))},
        "accounts.users[1].uid",
        "also the uid of users[0]",
    ),
    (
        {"groups": (Group("a", 2000), Group("a", 2001))},
        "accounts.groups[1].name",
        "also the name of groups[0]",
    ),
    (
        {"users": (User("shadow", 2000),)},
        "accounts.users[0].gid",
        "group 'shadow' exists with gid 42",
    ),
    (
        {"groups": (Group("g", 2000, ("ghost",)),)},
        "accounts.groups[0].members[0]",
        "no user 'ghost'",
    ),
    ({"runs_as": "ghost"}, "accounts.runs-as", "no user 'ghost'"),
    ({"runs_as": "root"}, "accounts.runs-as", "'root' is uid 0: set accounts.root"),
    ({"users": (User("app", 1000),), "runs_as": "app", "root": True}, "accounts.root", "keep one"),
    ({"users": (User("1bad:x", 1000),)}, "accounts.users[0].name", "not a valid account name"),
    ({"users": (User("big", 2**32 - 1),)}, "accounts.users[0].uid", "is not an id"),
]


@pytest.mark.parametrize(("accounts", "field", "message"), CLASHES)
async def test_every_clash_names_its_field_and_the_clashing_entry(
    base: RootFS, accounts: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(Invalid) as info:
        await account_files(Accounts(**accounts), base)
    assert info.value.field == field
    assert message in info.value.message
    assert info.value.message.startswith(field + ": ")
