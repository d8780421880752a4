"""`dockyard admin …`: accounts, tokens, repository settings and garbage collection.

Each command works on the data folder directly and is safe while the server runs: every change
is one database transaction.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar
from urllib.parse import urlsplit

import typer

from dockyard.auth.policy import Role, Scope, Subject
from dockyard.cli import loop
from dockyard.config import ConfigError, Settings, load_settings
from dockyard.oci.errors import OciError

if TYPE_CHECKING:
    # the server stack loads only when an admin command runs, not for every `dockyard` call
    from dockyard.auth.accounts import Accounts
    from dockyard.registry.context import Store

app = typer.Typer(help="Administer accounts, tokens and repositories.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
org_app = typer.Typer(help="Organizations.", no_args_is_help=True)
token_app = typer.Typer(help="Access tokens.", no_args_is_help=True)
repo_app = typer.Typer(help="Repositories.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")
app.add_typer(token_app, name="token")
app.add_typer(repo_app, name="repo")

DataOption = Annotated[Path | None, typer.Option("--data", help="data folder (default ./data)")]
T = TypeVar("T")
_SITE_ADMIN = Subject(name="admin", is_admin=True)


def _settings(data: Path | None) -> Settings:
    try:
        return load_settings(data=data)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _run(data: Path | None, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the site's store, bring its schema up to date, run `work`, and turn refusals into
    messages. A data folder (or database) that holds no site is refused, not created: an admin
    command run from the wrong folder must not start a second, empty site there."""
    settings = _settings(data)

    from dockyard import app as composition
    from dockyard.auth.accounts import AccountError

    async def main() -> T:
        missing = await composition.missing_site(settings)
        if missing is not None:
            raise _NoSite(missing, settings.data.resolve())
        store = composition.open_store(settings)
        try:
            await composition.prepare(store)
            return await work(store)
        finally:
            await store.db.close()

    try:
        return loop.run(main())
    except _NoSite as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (AccountError, ValueError, OciError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


class _NoSite(Exception):
    """The settings name no site; the message says where it looked and what to do."""

    def __init__(self, missing: str, data: Path) -> None:
        super().__init__(
            f"{missing}. Run the command where the server's data folder is, name it with "
            f"--data or DOCKYARD_DATA (and the database with DOCKYARD_DATABASE_URL), or create "
            f"a site there with `dockyard admin init --data {data}` (`dockyard serve` does too)"
        )


@app.command("init")
def init(data: DataOption = None) -> None:
    """Create a site in the data folder (or database) unless one is there: the schema, the
    signing key and the site admin (its password is printed once), as `dockyard serve` does."""
    settings = _settings(data)
    from dockyard import app as composition

    async def main() -> str:
        missing = await composition.missing_site(settings)
        store = composition.open_store(settings)
        try:
            await composition.build_state(settings, store)
            where = store.db.shown_url() if settings.database_url else str(settings.data.resolve())
        finally:
            await store.db.close()
        verb = "a Dockyard site is already in" if missing is None else "created a Dockyard site in"
        return f"{verb} {where}"

    typer.echo(loop.run(main()))


def _accounts(store: Store) -> Accounts:
    from dockyard.auth.accounts import Accounts

    return Accounts(store.db, store.accounts_generation)  # its changes reach the servers


def _read_password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        typer.echo("error: no password on standard input", err=True)
        raise typer.Exit(2)
    return password


@user_app.command("create")
def user_create(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    data: DataOption = None,
) -> None:
    """Create a user (a random password is printed unless one comes on standard input)."""
    from dockyard.auth.secrets import new_password

    given = _read_password(password_stdin)
    password = given or new_password()
    _run(data, lambda store: _accounts(store).create_user(name, password))
    typer.echo(f"created user {name!r}" + ("" if given else f" with password {password}"))


@user_app.command("set-password")
def user_set_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the new password from standard input")
    ] = False,
    data: DataOption = None,
) -> None:
    """Set a user's password (asked for twice unless it comes on standard input).

    Basic logins and refresh tokens earned with the old password stop working at once; access
    tokens keep working until they expire or are revoked.
    """
    password = _read_password(password_stdin) or typer.prompt(
        f"New password for {name}", hide_input=True, confirmation_prompt=True
    )
    _run(data, lambda store: _accounts(store).set_password(name, password))
    typer.echo(f"changed the password of {name!r}")


@org_app.command("create")
def org_create(
    name: str, owner: Annotated[str, typer.Option(help="first owner")], data: DataOption = None
) -> None:
    """Create an organization (a namespace) owned by a user."""
    _run(data, lambda store: _accounts(store).create_org(name, owner))
    typer.echo(f"created organization {name!r} owned by {owner!r}")


@org_app.command("add-member")
def org_add_member(
    org: str,
    user: str,
    role: Annotated[Role, typer.Option(help="owner or member")] = Role.MEMBER,
    data: DataOption = None,
) -> None:
    """Add a user to an organization, or change their role."""
    _run(data, lambda store: _accounts(store).add_member(org, user, role))
    typer.echo(f"{user!r} is now {role.value} of {org!r}")


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `15m`, `90s` → seconds."""
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if match is None:
        raise typer.BadParameter(
            f"{text!r}: expected a number and a unit s, m, h, d or w (e.g. 30d)"
        )
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[match.group(2)]
    return int(match.group(1)) * unit


@token_app.command("create")
def token_create(
    user: Annotated[
        str, typer.Option(help="the user the token acts for (or creates it, with --org)")
    ],
    scope: Annotated[Scope, typer.Option(help="read, write or delete")],
    org: Annotated[str | None, typer.Option(help="make an organization access token")] = None,
    expires: Annotated[str | None, typer.Option(help="lifetime, e.g. 30d")] = None,
    name: Annotated[str, typer.Option(help="a label for the token")] = "cli",
    data: DataOption = None,
) -> None:
    """Create an access token; it is printed once and only its hash is kept."""
    expires_in = parse_duration(expires) if expires else None

    async def create(store: Store) -> str:
        accounts = _accounts(store)
        if org is None:
            return await accounts.create_token(name, scope, user=user, expires_in=expires_in)
        subject = await accounts.subject(user)
        if not subject.is_admin and subject.roles.get(org) != Role.OWNER:
            raise ValueError(f"only owners of {org!r} may create its access tokens")
        return await accounts.create_token(name, scope, org=org, expires_in=expires_in)

    typer.echo(_run(data, create))
    typer.echo(_sign_in_hint(_settings(data), org or user), err=True)


def _sign_in_hint(settings: Settings, login: str) -> str:
    """How to sign in with a new token (on stderr: stdout holds only the token). An
    organization token's user name is the organization's, as on Docker Hub."""
    host = urlsplit(settings.public_url).netloc if settings.public_url else settings.listen
    return (
        f"Sign in with it as {login!r}: dockyard registry login -u {login} --pass-stdin {host}"
        f" (or: docker login -u {login} {host}, podman login -u {login} {host})"
    )


def _on_off(value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("on", "off"):
        raise typer.BadParameter("use on or off")
    return value == "on"


@repo_app.command("set")
def repo_set(
    repo: str,
    visibility: Annotated[str | None, typer.Option(help="public or private")] = None,
    immutable_tags: Annotated[str | None, typer.Option(help="on or off")] = None,
    sparse_indexes: Annotated[
        str | None,
        typer.Option(
            help="on: an index may name manifests the repository lacks (a platform-subset "
            "copy keeps the index digest); off: every entry must exist; site: the site's "
            "index_platforms setting decides"
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """Change a repository's visibility, immutable-tags or sparse-indexes setting."""
    wanted = _on_off(immutable_tags)
    if sparse_indexes not in (None, "on", "off", "site"):
        raise typer.BadParameter("use on, off or site", param_hint="--sparse-indexes")

    async def configure(store: Store) -> str:
        from dockyard.registry.service import Registry

        row = await Registry.over(store).repositories.configure(
            _SITE_ADMIN, repo, visibility, wanted, sparse_indexes
        )
        immutable = "on" if row.immutable_tags else "off"
        sparse = {True: "on", False: "off", None: "site"}[row.sparse_indexes]
        return (
            f"{row.name}: visibility {row.visibility}, immutable tags {immutable}, "
            f"sparse indexes {sparse}"
        )

    typer.echo(_run(data, configure))


@app.command("gc")
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count, delete nothing")] = False,
    grace: Annotated[str, typer.Option(help="spare what was touched this recently")] = "1h",
    data: DataOption = None,
) -> None:
    """Delete blobs that no manifest references any more (safe while pushes run)."""
    seconds = parse_duration(grace)
    from dockyard.registry.gc import collect

    result = _run(data, lambda store: collect(store, seconds, dry_run))
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {result.blobs} blobs ({result.bytes} bytes); removed {result.links} unreferenced "
        f"links, {result.orphan_files} orphan files, {result.uploads} abandoned uploads"
    )


@app.command("fsck")
def fsck(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report, change nothing")] = False,
    data: DataOption = None,
) -> None:
    """Check every blob's bytes against its digest; quarantine and forget the damaged ones.

    A forgotten blob is pushed again by the next client that needs it (HEAD answers 404), which
    repairs the manifests that name it. Exits 1 when anything was damaged. Safe while the
    server runs; reads every blob, so it takes as long as reading the store once.
    """
    from dockyard.registry.fsck import check

    result = _run(data, lambda store: check(store, repair=not dry_run))
    for damaged in result.damaged:
        line = f"{damaged.digest}: {damaged.problem}"
        if damaged.quarantined:
            line += f"; moved to {damaged.quarantined}"
        if damaged.repositories:
            line += f"; forgotten in {', '.join(damaged.repositories)}"
        typer.echo(line)
    verb = "found" if dry_run else "found and quarantined"
    typer.echo(
        f"checked {result.blobs} blobs ({result.bytes} bytes); {verb} {len(result.damaged)} damaged"
    )
    if result.damaged:
        raise typer.Exit(1)
