"""The local PostgreSQL server as pytest fixtures: one cluster for the whole test run, a fresh
database per test (or per test process).

Under pytest-xdist every worker is its own pytest session, so the cluster is shared through
files beside the workers' temporary folders: the first user starts it (if it was down), the
last one to leave stops it (if it was started here), and a lock keeps two workers from running
`pg_ctlcluster` at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.peers import HOST, STARTUP_TIMEOUT, log_tail, run, wait_until

POSTGRES_ROLE = "dockyard"
POSTGRES_PASSWORD = "dockyard"
FIXTURES = frozenset({"postgres_cluster", "postgres_url", "postgres_database_url"})
"""The fixtures that need the server; a test using one must be marked `peers` (conftest.py)."""


@dataclass
class PostgresCluster:
    """A local PostgreSQL cluster (Debian's pg_ctlcluster) that tests create databases in."""

    version: str
    name: str
    port: int
    log: Path
    started_by_us: bool = False

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run SQL as the `postgres` superuser over the Unix socket; return unaligned output."""
        argv = [
            *_as_postgres(),
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-p",
            str(self.port),
            "-d",
            database,
            "-c",
            sql,
        ]
        # cwd=/ : psql as postgres cannot read root's working directory and says so.
        return run(argv, cwd="/", timeout=60).stdout.strip()

    def url(self, database: str) -> str:
        return (
            f"postgresql+asyncpg://{POSTGRES_ROLE}:{POSTGRES_PASSWORD}"
            f"@{HOST}:{self.port}/{database}"
        )

    def create_database(self, prefix: str = "dockyard_test") -> str:
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.psql(f'CREATE DATABASE "{name}" OWNER {POSTGRES_ROLE}')
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a test that leaked a connection must not keep its database alive.
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_postgres() -> list[str]:
    """A command prefix that runs as the `postgres` OS user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"]
    if shutil.which("sudo"):
        return ["sudo", "-n", "-u", "postgres", "--"]
    return []


def _find_cluster() -> tuple[str, str, int, str, Path]:
    """(version, name, port, status, log) of the cluster to use: 15/main, else the first."""
    if shutil.which("pg_lsclusters") is None:
        pytest.fail("PostgreSQL is not installed (pg_lsclusters missing): run scripts/test-deps.sh")
    lines = run(["pg_lsclusters", "--no-header"], timeout=30).stdout.splitlines()
    clusters = [line.split() for line in lines if line.strip()]
    if not clusters:
        pytest.fail("pg_lsclusters lists no PostgreSQL cluster (is the postgresql package set up?)")
    chosen = next((c for c in clusters if c[0] == "15" and c[1] == "main"), clusters[0])
    version, name, port, status = chosen[0], chosen[1], int(chosen[2]), chosen[3]
    log = (
        Path(chosen[6])
        if len(chosen) > 6
        else Path(f"/var/log/postgresql/postgresql-{version}-{name}.log")
    )
    return version, name, port, status, log


def _start_cluster() -> PostgresCluster:
    version, name, port, status, log = _find_cluster()
    cluster = PostgresCluster(version=version, name=name, port=port, log=log)
    if status != "online":
        result = run(["pg_ctlcluster", version, name, "start"], timeout=60, check=False)
        if result.returncode != 0:
            pytest.fail(
                f"could not start PostgreSQL {version}/{name}: pg_ctlcluster exited with "
                f"{result.returncode}\n{result.stdout}{result.stderr}\n--- {log} ---\n"
                f"{log_tail(log, 30)}"
            )
        cluster.started_by_us = True

    def ready() -> bool:
        argv = ["pg_isready", "-q", "-h", HOST, "-p", str(port)]
        return run(argv, timeout=10, check=False).returncode == 0

    try:
        wait_until(ready, timeout=STARTUP_TIMEOUT, what=f"PostgreSQL on {HOST}:{port}")
    except AssertionError as error:
        pytest.fail(f"{error}\n--- {log} ---\n{log_tail(log, 30)}")
    cluster.psql(
        "DO $$ BEGIN "
        f"IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{POSTGRES_ROLE}') THEN "
        f"ALTER ROLE {POSTGRES_ROLE} LOGIN SUPERUSER PASSWORD '{POSTGRES_PASSWORD}'; "
        f"ELSE CREATE ROLE {POSTGRES_ROLE} LOGIN SUPERUSER PASSWORD '{POSTGRES_PASSWORD}'; "
        "END IF; END $$"
    )
    return cluster


def _stop_cluster(cluster: PostgresCluster) -> None:
    # Another test session on this machine may have started using the server we started:
    # leave it running while anyone else is connected.
    others = cluster.psql(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    if others == "0":
        run(["pg_ctlcluster", cluster.version, cluster.name, "stop"], timeout=60)


def run_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all processes of this test run share: an xdist worker's base temporary folder
    lies in the controller's."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _users(directory: Path) -> Iterator[dict[str, Any]]:
    """The run's shared record of the cluster (`users`, `started_by_us`), locked while open."""
    state = directory / "postgres-users.json"
    with (directory / "postgres-users.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record: dict[str, Any] = (
            json.loads(state.read_text())
            if state.exists()
            else {"users": 0, "started_by_us": False}
        )
        yield record
        state.write_text(json.dumps(record))


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """The local PostgreSQL server, started if it was down (and then stopped when the last
    process of this run that used it is done), with a `dockyard` superuser role (password
    `dockyard`). Fails, never skips, if it cannot."""
    directory = run_directory(tmp_path_factory)
    with _users(directory) as record:
        cluster = _start_cluster()
        record["started_by_us"] = record["started_by_us"] or cluster.started_by_us
        record["users"] += 1
    yield cluster
    with _users(directory) as record:
        record["users"] -= 1
        if record["users"] == 0 and record["started_by_us"]:
            _stop_cluster(cluster)
            record["started_by_us"] = False


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """`postgresql+asyncpg://dockyard:dockyard@127.0.0.1:5432/<db>`: one fresh database per
    test session (per xdist worker), dropped at its end."""
    name = postgres_cluster.create_database("dockyard_session")
    yield postgres_cluster.url(name)
    postgres_cluster.drop_database(name)


@pytest.fixture
def postgres_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Like `postgres_url`, but a fresh database for this test alone, dropped after it."""
    if request.node.get_closest_marker("peers") is None:
        # conftest.py catches the tests that name these fixtures; this, the ones that ask for
        # them at run time (request.getfixturevalue in a parametrized fixture).
        pytest.fail("a test that uses PostgreSQL must be marked `peers` (make unit runs without)")
    postgres_cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = postgres_cluster.create_database()
    yield postgres_cluster.url(name)
    postgres_cluster.drop_database(name)
