"""`dockyard sync check|once|server -c FILE`: regsync's commands over a regsync YAML file.

`check` plans every entry and prints, per repository, the tags to add, to update and those
unchanged, the referrers to copy and the bytes to transfer; it writes nothing. `once` syncs
and prints a summary table. `server` keeps syncing on each entry's `schedule`/`interval`
until SIGTERM or SIGINT, then cancels what runs (a copy is safe to interrupt) and exits 0.

Registry settings and credentials come from `$DOCKYARD_CONFIG/registries.json` (`dockyard
registry login/set`) and Docker's `config.json`, with the file's `creds` laid over them.
Exit codes: 0 done, 1 something failed, 2 the config (or the command line) is wrong.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from dockyard.cli import loop
from dockyard.client.registry import RegistryClient
from dockyard.config import ConfigError
from dockyard.copy.sync import Syncer
from dockyard.copy.sync_client import sync_client
from dockyard.copy.sync_config import load_sync_config
from dockyard.copy.sync_model import SyncConfig
from dockyard.copy.sync_report import RepositoryResult, SyncReport
from dockyard.copy.sync_server import serve

if TYPE_CHECKING:  # rich is imported when something is printed with it
    from rich.console import Console

    from dockyard.copy.progress import Progress

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
T = TypeVar("T")

app = typer.Typer(
    help="Mirror repositories as regsync does, from a regsync-compatible YAML file.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="the sync config (regsync's YAML); - reads standard input"),
]
FormatOption = Annotated[str, typer.Option("--format", help="output: text or json")]
ProgressOption = Annotated[
    str,
    typer.Option(
        "--progress",
        help="progress on stderr: auto (bars on a terminal, else none), rich, plain, json, none",
    ),
]


@app.command()
def check(config: ConfigOption, output: FormatOption = "text") -> None:
    """Show what `once` would copy (per repository: tags to add, update, unchanged, referrers
    to copy, bytes to transfer); writes nothing."""
    _check_format(output)
    settings = _load(config)
    report = _run(settings, lambda syncer: syncer.check(), progress=None)
    if output == "json":
        typer.echo(report.dumps())
    else:
        print_plan(report, _console())
    raise typer.Exit(EXIT_FAILED if report.failed else 0)


@app.command()
def once(
    config: ConfigOption,
    output: FormatOption = "text",
    progress: ProgressOption = "auto",
    missing: Annotated[
        bool, typer.Option("--missing", help="only copy tags the target does not have")
    ] = False,
) -> None:
    """Sync every entry once and print a summary; exit 1 if anything failed."""
    _check_format(output)
    settings = _load(config)
    report = _run(settings, lambda syncer: syncer.run(missing_only=missing), progress=progress)
    if output == "json":
        typer.echo(report.dumps())
    else:
        print_summary(report, _console())
    raise typer.Exit(EXIT_FAILED if report.failed else 0)


@app.command()
def server(
    config: ConfigOption,
    output: FormatOption = "text",
    progress: ProgressOption = "none",
) -> None:
    """Keep syncing: each entry on its `schedule` or `interval` (what the targets lack is
    copied at start); SIGTERM or SIGINT stops it cleanly."""
    _check_format(output)
    settings = _load(config)
    console = _console()

    def report_run(report: SyncReport) -> None:
        if output == "json":
            typer.echo(json.dumps(report.to_json(), separators=(",", ":")))  # a line per run
        else:
            print_run(report, console, time.strftime("%Y-%m-%d %H:%M:%S"))
        sys.stdout.flush()

    async def work(syncer: Syncer) -> None:
        stop = asyncio.Event()
        running = asyncio.get_running_loop()

        def stopping(signum: int) -> None:
            if not stop.is_set():
                _say(f"{signal.Signals(signum).name}: stopping (cancelling the runs in progress)")
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            running.add_signal_handler(signum, stopping, signum)
        try:
            _say(f"sync server started with {settings.path}")
            await serve(syncer, stop, on_report=report_run, log=_say)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                running.remove_signal_handler(signum)
        _say("sync server stopped")

    _run(settings, work, progress=progress)


# --- running -------------------------------------------------------------------------------------


def _check_format(output: str) -> None:
    if output not in ("text", "json"):
        _fail(f"--format must be text or json, not {output!r}", EXIT_USAGE)


def _load(path: Path) -> SyncConfig:
    try:
        return load_sync_config(path)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)


def _run(config: SyncConfig, work: Callable[[Syncer], Awaitable[T]], *, progress: str | None) -> T:
    """Run `work` with a syncer over the registries the config names; failures of the whole
    run (not of single tags, which the report holds) become one line and exit 1."""
    shown: Progress | None = None
    if progress == "auto" and not sys.stderr.isatty():
        progress = None  # the summary says what happened; plain lines on request
    if progress not in (None, "none"):
        from dockyard.copy.progress import progress_for  # rich.progress: only when shown

        try:
            shown = progress_for(progress, sys.stderr)
        except ValueError as exc:
            _fail(str(exc), EXIT_USAGE)

    async def main() -> T:
        client = sync_client(config)
        syncer = Syncer(config, RegistryClient(client), progress=shown, log=_say)
        try:
            return await work(syncer)
        finally:
            await syncer.close()

    try:
        return loop.run(main())
    except KeyboardInterrupt:
        _say("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except BrokenPipeError:
        raise  # a closed stdout (`| head`): Typer exits quietly
    except Exception as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    finally:
        if shown is not None:
            shown.close()


def _say(line: str) -> None:
    typer.echo(line, err=True)


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _console() -> Console:
    from rich.console import Console

    terminal = sys.stdout.isatty()
    return Console(file=sys.stdout, width=None if terminal else 160, highlight=False)


# --- printing ------------------------------------------------------------------------------------


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _tags(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def print_plan(report: SyncReport, console: Console) -> None:
    """Per repository: the tags to add, to update and unchanged, referrers, bytes."""
    from rich.markup import escape

    for repo in report.repositories:
        console.print(
            f"[bold]sync[{repo.entry}][/bold] {escape(repo.source)} -> {escape(repo.target)}"
        )
        if repo.error is not None:
            console.print(f"  [red]failed[/red]: {escape(repo.error)}")
            continue
        if not repo.tags:
            console.print("  no tags selected")
        else:
            console.print(f"  [dim]{'status':<10} {'tags':>4}  names[/dim]")
        for status in ("add", "update", "unchanged", "skipped"):
            tags = repo.with_status(status)
            if tags:
                names = escape(_tags([t.tag for t in tags]))
                console.print(f"  {status:<10} {len(tags):>4}  {names}")
        for tag in repo.with_status("failed"):
            console.print(f"  [red]failed[/red]     {escape(tag.tag)}: {escape(tag.error or '')}")
        console.print(
            f"  referrers to copy: {repo.referrers_to_copy}, "
            f"bytes to transfer: {_size(repo.bytes_to_transfer)}"
        )
    totals = report.totals()
    console.print(
        f"total: {totals['add']} to add, {totals['update']} to update, "
        f"{totals['unchanged']} unchanged, {totals['skipped']} skipped, "
        f"{totals['failed'] + totals['repositories_failed']} failed; "
        f"{totals['referrers_to_copy']} referrers and {_size(totals['bytes_to_transfer'])} "
        f"to copy (checked in {report.seconds:.1f}s; nothing was written)"
    )


def print_summary(report: SyncReport, console: Console) -> None:
    """One row per repository: tags added, updated, unchanged, skipped, failed; referrers
    and bytes copied; then what failed."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=None, show_lines=False)
    for column in ("entry", "source", "target"):
        table.add_column(column, overflow="fold")
    for column in ("added", "updated", "unchanged", "skipped", "failed", "referrers", "copied"):
        table.add_column(column, justify="right")
    table.add_column("time", justify="right")
    for repo in report.repositories:
        failed = repo.count("failed") + (1 if repo.error is not None else 0)
        table.add_row(
            str(repo.entry),
            escape(repo.source),
            escape(repo.target),
            str(repo.count("add")),
            str(repo.count("update")),
            str(repo.count("unchanged")),
            str(repo.count("skipped")),
            f"[red]{failed}[/red]" if failed else "0",
            str(repo.referrers_copied),
            _size(repo.bytes_copied),
            f"{_seconds(repo):.1f}s",
        )
    console.print(table)
    for repo in report.repositories:
        if repo.error is not None:
            console.print(f"[red]failed[/red] {escape(repo.source)}: {escape(repo.error)}")
        for tag in repo.with_status("failed"):
            console.print(f"[red]failed[/red] {escape(str(tag.source))}: {escape(tag.error or '')}")
    totals = report.totals()
    verdict = "[red]FAILED[/red]" if report.failed else "ok"
    console.print(
        f"{verdict}: {totals['add']} added, {totals['update']} updated, "
        f"{totals['unchanged']} unchanged, {totals['skipped']} skipped, "
        f"{totals['failed'] + totals['repositories_failed']} failed; "
        f"{totals['referrers_copied']} referrers and {_size(totals['bytes_copied'])} copied "
        f"in {report.seconds:.1f}s"
    )


def print_run(report: SyncReport, console: Console, stamp: str) -> None:
    """A run of `sync server`: the summary table when something was copied or failed, else
    one line (a server that finds nothing new every minute should not print a table each time)."""
    totals = report.totals()
    changed = ("add", "update", "failed", "repositories_failed", "referrers_copied")
    entries = ", ".join(str(entry) for entry in report.entries)
    if any(totals[key] for key in changed) or totals["bytes_copied"]:
        console.print(f"[bold]{stamp}[/bold] sync run of entries {entries}")
        print_summary(report, console)
        return
    console.print(
        f"[bold]{stamp}[/bold] ok: nothing changed in entries {entries} "
        f"({totals['unchanged']} tags unchanged, {totals['skipped']} skipped; "
        f"{report.seconds:.1f}s)"
    )


def _seconds(repo: RepositoryResult) -> float:
    return max((t.seconds for t in repo.tags), default=0.0)


def main() -> None:
    """Run the sub-app alone (`python -m dockyard.cli.sync`), before it is wired into
    `dockyard`."""
    app(prog_name="dockyard sync")


if __name__ == "__main__":
    main()
