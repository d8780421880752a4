"""Users and groups a customization adds (Docker's `accounts`: `users`, `groups`, `runs-as`,
`root`), checked against the base's `/etc/passwd` and `/etc/group`, written as useradd and
groupadd would write them, without running them.

Rules, decided here:
- a name or id that the base already has, or that two new entries share, is an error naming
  the field and the clashing entry: nothing is ever renumbered or replaced;
- a user's `gid` names its primary group, a new one or the base's; a user without a `gid`, or
  whose `gid` no group has, gets its own group named after it with that gid (the user's uid
  when it has no `gid`), as useradd does with USERGROUPS_ENAB; that fails only when the name
  is taken by another group;
- the base's lines are kept byte for byte, new lines appended; `/etc/shadow` and
  `/etc/gshadow` gain locked entries (`!`), as useradd writes them, only if the base has them,
  with the last-change day taken from `epoch` (the build's SOURCE_DATE_EPOCH; empty without);
- each new user gets `/home/NAME` (0755, owned by the user and its primary group) and the
  login shell `/bin/sh` when the base has one, else `/sbin/nologin`;
- `runs-as` names a user (the base's or a new one) and becomes the config's `User`; `root:
  true` runs as root and may not be combined with another user; running as a uid-0 user
  requires `root: true`. Neither set: the base's `User` stays.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from dockyard.build.entries import Entry, Kind
from dockyard.build.errors import Invalid
from dockyard.build.rootfs import RootFS

FIELD = "accounts"
MAX_ID = 2**32 - 2  # (uid_t)-1 means "no change" to chown and setuid
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,30}[A-Za-z0-9_.$-]?")


@dataclass(frozen=True)
class User:
    """A user to add (`accounts.users[]`)."""

    name: str
    uid: int
    gid: int | None = None


@dataclass(frozen=True)
class Group:
    """A group to add (`accounts.groups[]`), with users (new or the base's) as members."""

    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Accounts:
    """The `accounts` section of a customization."""

    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    runs_as: str | None = None
    root: bool = False


@dataclass(frozen=True)
class AccountFiles:
    """The layer entries that add the accounts, and the config's `User` (None: keep the base's)."""

    entries: tuple[Entry, ...]
    user: str | None


@dataclass(frozen=True)
class Line:
    """One entry of a colon-separated account database (passwd, group)."""

    name: str
    id: int
    gid: int
    members: tuple[str, ...]
    raw: str


def parse_db(data: bytes, *, group: bool) -> list[Line]:
    """The well-formed lines of `/etc/passwd` (or `/etc/group` with `group`); comments, NIS
    `+`/`-` lines and broken lines are skipped (and kept in the file as they are)."""
    lines = []
    for raw in data.decode("utf-8", "surrogateescape").splitlines():
        fields = raw.split(":")
        if raw.startswith(("#", "+", "-")) or len(fields) < (4 if group else 7):
            continue
        try:
            ident = int(fields[2])
            gid = ident if group else int(fields[3])
        except ValueError:
            continue
        members = tuple(m for m in fields[3].split(",") if m) if group else ()
        lines.append(Line(fields[0], ident, gid, members, raw))
    return lines


@dataclass
class _Db:
    """One account file of the base: where it is, its entry, its bytes, what it adds."""

    path: str
    entry: Entry | None
    data: bytes
    added: list[str] = field(default_factory=list)

    def entry_out(self) -> Entry | None:
        if not self.added:
            return None
        data = self.data
        if data and not data.endswith(b"\n"):
            data += b"\n"
        data += "".join(line + "\n" for line in self.added).encode()
        old = self.entry
        mode, uid, gid = (old.mode, old.uid, old.gid) if old is not None else (0o644, 0, 0)
        return Entry(self.path, Kind.FILE, mode, uid, gid, size=len(data), data=data)


async def _db(base: RootFS, path: str) -> _Db | None:
    entry = base.entry(path)
    resolved = base.resolve(path)
    if entry is None or entry.kind != Kind.FILE:
        return None
    return _Db(resolved, entry, await base.read(resolved))


async def account_files(
    accounts: Accounts, base: RootFS, *, epoch: int | None = None
) -> AccountFiles:
    """The files that add `accounts` to `base` (passwd, group, shadow, gshadow, home
    directories) and the config's `User`; `Invalid` naming the field of any clash."""
    if not accounts.users and not accounts.groups and not accounts.runs_as and not accounts.root:
        return AccountFiles((), None)
    passwd = await _db(base, "etc/passwd") or _Db("etc/passwd", None, b"")
    group = await _db(base, "etc/group") or _Db("etc/group", None, b"")
    shadow, gshadow = await _db(base, "etc/shadow"), await _db(base, "etc/gshadow")
    base_users = parse_db(passwd.data, group=False)
    base_groups = parse_db(group.data, group=True)
    new_groups = _check_groups(accounts.groups, base_groups)
    own_groups = _check_users(accounts.users, base_users, base_groups, new_groups)
    known_users = {line.name for line in base_users} | {user.name for user in accounts.users}
    for i, grp in enumerate(accounts.groups):
        for j, member in enumerate(grp.members):
            if member not in known_users:
                raise Invalid(
                    f"{FIELD}.groups[{i}].members[{j}]",
                    f"no user {member!r} in the base's /etc/passwd or accounts.users: add it "
                    "there, or remove it from the members",
                )
    runs_as = _runs_as(accounts, base_users)
    shell = "/bin/sh" if base.entry("bin/sh") is not None else "/sbin/nologin"
    day = str(epoch // 86400) if epoch is not None else ""
    for grp in (*accounts.groups, *own_groups):
        group.added.append(f"{grp.name}:x:{grp.gid}:{','.join(grp.members)}")
        if gshadow is not None:
            gshadow.added.append(f"{grp.name}:!::{','.join(grp.members)}")
    for user in accounts.users:
        gid = user.uid if user.gid is None else user.gid
        passwd.added.append(f"{user.name}:x:{user.uid}:{gid}::/home/{user.name}:{shell}")
        if shadow is not None:
            shadow.added.append(f"{user.name}:!:{day}:0:99999:7:::")
    files = [db.entry_out() for db in (passwd, group, shadow, gshadow) if db is not None]
    entries = [*(e for e in files if e is not None), *_homes(accounts.users, base)]
    return AccountFiles(tuple(sorted(entries, key=lambda e: e.path)), runs_as)


def _homes(users: Sequence[User], base: RootFS) -> list[Entry]:
    """`/home/NAME` for each user (and `/home` itself where the base lacks it)."""
    homes = [Entry.directory("home")] if users and base.entry("home") is None else []
    for user in users:
        gid = user.uid if user.gid is None else user.gid
        homes.append(Entry.directory(f"home/{user.name}", 0o755, user.uid, gid))
    return homes


def _check_name(where: str, name: str) -> None:
    if not _NAME.fullmatch(name):
        raise Invalid(
            where,
            f"{name!r} is not a valid account name: letters, digits, '_', '.', '-', at most "
            "32 characters, not starting with a digit, '.' or '-'",
        )


def _check_id(where: str, ident: int) -> None:
    if not 0 <= ident <= MAX_ID:
        raise Invalid(where, f"{ident} is not an id: use 0 to {MAX_ID}")


def _check_groups(groups: Sequence[Group], base: Sequence[Line]) -> dict[int, str]:
    """The new groups by gid, once no name or gid clashes with the base or another new one."""
    names = {line.name: line for line in base}
    gids = {line.id: line for line in base}
    seen_names: dict[str, int] = {}
    seen_gids: dict[int, int] = {}
    for i, item in enumerate(groups):
        where = f"{FIELD}.groups[{i}]"
        _check_name(f"{where}.name", item.name)
        _check_id(f"{where}.gid", item.gid)
        if item.name in names:
            raise Invalid(
                f"{where}.name",
                f"the base's /etc/group already has group {item.name!r} "
                f"({names[item.name].raw}): choose another name",
                clash=names[item.name].raw,
            )
        if item.gid in gids:
            raise Invalid(
                f"{where}.gid",
                f"gid {item.gid} is the base's group {gids[item.gid].name!r} "
                f"({gids[item.gid].raw}): choose another gid",
                clash=gids[item.gid].raw,
            )
        if item.name in seen_names:
            raise Invalid(f"{where}.name", f"also the name of groups[{seen_names[item.name]}]")
        if item.gid in seen_gids:
            raise Invalid(f"{where}.gid", f"also the gid of groups[{seen_gids[item.gid]}]")
        seen_names[item.name], seen_gids[item.gid] = i, i
    return {item.gid: item.name for item in groups}


def _check_users(
    users: Sequence[User],
    base_users: Sequence[Line],
    base_groups: Sequence[Line],
    new_groups: dict[int, str],
) -> list[Group]:
    """The users' own groups to create, once no user's name or uid clashes."""
    names = {line.name: line for line in base_users}
    uids = {line.id: line for line in base_users}
    group_gids = {line.id for line in base_groups} | set(new_groups)
    group_names = {line.name: line.id for line in base_groups} | {
        name: gid for gid, name in new_groups.items()
    }
    seen_names: dict[str, int] = {}
    seen_uids: dict[int, int] = {}
    own: list[Group] = []
    for i, item in enumerate(users):
        where = f"{FIELD}.users[{i}]"
        _check_name(f"{where}.name", item.name)
        _check_id(f"{where}.uid", item.uid)
        if item.name in names:
            raise Invalid(
                f"{where}.name",
                f"the base's /etc/passwd already has user {item.name!r} "
                f"({names[item.name].raw}): choose another name",
                clash=names[item.name].raw,
            )
        if item.uid in uids:
            raise Invalid(
                f"{where}.uid",
                f"uid {item.uid} is the base's user {uids[item.uid].name!r} "
                f"({uids[item.uid].raw}): choose another uid",
                clash=uids[item.uid].raw,
            )
        if item.name in seen_names:
            raise Invalid(f"{where}.name", f"also the name of users[{seen_names[item.name]}]")
        if item.uid in seen_uids:
            raise Invalid(f"{where}.uid", f"also the uid of users[{seen_uids[item.uid]}]")
        seen_names[item.name], seen_uids[item.uid] = i, i
        gid = item.uid if item.gid is None else item.gid
        if item.gid is not None:
            _check_id(f"{where}.gid", item.gid)
        if gid in group_gids:
            continue
        if item.name in group_names:
            raise Invalid(
                f"{where}.gid",
                f"no group has gid {gid}, and the user's own group cannot be made: group "
                f"{item.name!r} exists with gid {group_names[item.name]}; set gid to "
                f"{group_names[item.name]}, or add a group with gid {gid} to accounts.groups",
            )
        own.append(Group(item.name, gid))
        group_gids.add(gid)
        group_names[item.name] = gid
    return own


def _runs_as(accounts: Accounts, base_users: Sequence[Line]) -> str | None:
    uids = {line.name: line.id for line in base_users} | {u.name: u.uid for u in accounts.users}
    name = accounts.runs_as
    if name is None:
        if not accounts.root:
            return None
        return next((n for n, uid in uids.items() if uid == 0), "0")
    if name not in uids:
        known = ", ".join(sorted(uids)) or "none"
        raise Invalid(
            f"{FIELD}.runs-as",
            f"no user {name!r} in the base's /etc/passwd or accounts.users (users: {known})",
        )
    if uids[name] == 0 and not accounts.root:
        raise Invalid(f"{FIELD}.runs-as", f"{name!r} is uid 0: set accounts.root to run as root")
    if uids[name] != 0 and accounts.root:
        raise Invalid(
            f"{FIELD}.root",
            f"root: true runs the image as root, but runs-as names {name!r}: keep one of them",
        )
    return name
