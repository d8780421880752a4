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

import typer

from dockyard.auth.policy import Role, Scope, Subject
from dockyard.cli import loop
from dockyard.config import ConfigError, load_settings
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


def _run(data: Path | None, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, bring its schema up to date, run `work`, and turn refusals into messages."""
    try:
        settings = load_settings(data=data)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    from dockyard import app as composition
    from dockyard.auth.accounts import AccountError

    async def main() -> T:
        store = composition.open_store(settings)
        try:
            await composition.prepare(store)
            return await work(store)
        finally:
            await store.db.close()

    try:
        return loop.run(main())
    except (AccountError, ValueError, OciError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


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
    data: DataOption = None,
) -> None:
    """Change a repository's visibility or immutable-tags setting."""
    wanted = _on_off(immutable_tags)

    async def configure(store: Store) -> str:
        from dockyard.registry.service import Registry

        row = await Registry.over(store).repositories.configure(
            _SITE_ADMIN, repo, visibility, wanted
        )
        immutable = "on" if row.immutable_tags else "off"
        return f"{row.name}: visibility {row.visibility}, immutable tags {immutable}"

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
