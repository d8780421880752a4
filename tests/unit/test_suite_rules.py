"""The rules that let the suite run in parallel and without PostgreSQL (support/rules.py,
support/postgres.py, support/peers.py): shared-state tests stay together, a PostgreSQL test
must be marked `peers`, and two xdist workers are never handed the same port. Checked on probe
test files run by a real pytest with those plugins loaded, as conftest.py loads them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support.peers import free_port

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"


def pytest_on(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on a probe module with the suite's PostgreSQL fixtures and rules."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(textwrap.dedent(source))
    # No plugins from entry points (schemathesis, hypothesis, ...): only the ones named here.
    env = {
        **os.environ,
        "PYTHONPATH": f"{TESTS}{os.pathsep}{SRC}",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    argv = [sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir", str(tmp_path)]
    argv += [
        "-p",
        "support.postgres",
        "-p",
        "support.rules",
        "-p",
        "no:cacheprovider",
        "-q",
        *args,
        str(probe),
    ]
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


GROUP_PRINTER = """
    def pytest_collection_finish(session):
        for item in session.items:
            marker = item.get_closest_marker("xdist_group")
            print("GROUP", item.name, marker.args[0] if marker else None)
"""


def test_tests_sharing_a_module_fixture_or_loop_run_in_one_group(tmp_path: Path) -> None:
    (tmp_path / "groups.py").write_text(textwrap.dedent(GROUP_PRINTER))
    result = pytest_on(
        tmp_path,
        """
        import pytest

        @pytest.fixture(scope="module")
        def server():
            return object()

        def test_one(server): pass
        def test_two(server): pass
        def test_alone(tmp_path): pass

        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop(): pass
        """,
        "--collect-only",
        "-p",
        "groups",
    )
    groups = dict(line.split()[1:] for line in result.stdout.splitlines() if line[:6] == "GROUP ")
    assert groups == {
        "test_one": "test_probe.py",
        "test_two": "test_probe.py",
        "test_alone": "None",
        "test_module_loop": "test_probe.py",
    }, result.stdout + result.stderr


def test_a_postgresql_test_not_marked_peers_is_refused(tmp_path: Path) -> None:
    result = pytest_on(
        tmp_path,
        """
        import pytest

        def test_unmarked(postgres_database_url): pass

        @pytest.mark.peers
        def test_marked(postgres_database_url): pass
        """,
        "--collect-only",
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "test_probe.py::test_unmarked" in result.stderr
    assert "test_marked" not in result.stderr


def test_a_test_of_the_debian_base_not_marked_peers_is_refused(tmp_path: Path) -> None:
    # The base is built by mmdebstrap from the machine's mirror: `make unit` must not need it.
    result = pytest_on(
        tmp_path,
        """
        import pytest

        def test_unmarked(debian_base): pass

        @pytest.mark.peers
        def test_marked(debian_base): pass
        """,
        "--collect-only",
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "test_probe.py::test_unmarked" in result.stderr
    assert "test_marked" not in result.stderr


def test_a_postgresql_test_asking_at_run_time_without_the_mark_fails(tmp_path: Path) -> None:
    # Fails at setup, before any database is made: the unit run has no PostgreSQL to ask.
    result = pytest_on(
        tmp_path,
        """
        def test_dynamic(request):
            request.getfixturevalue("postgres_database_url")
        """,
    )
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "a test that uses PostgreSQL must be marked `peers`" in result.stdout


def test_xdist_workers_are_handed_disjoint_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    handed = {}
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        handed[worker] = {free_port() for _ in range(20)}
    assert {port // 2 % 3 for port in handed["gw0"]} == {0}
    assert {port // 2 % 3 for port in handed["gw1"]} == {1}
    assert {port // 2 % 3 for port in handed["gw2"]} == {2}


def test_xdist_runs_a_group_on_one_worker(tmp_path: Path) -> None:
    # The groups above are only a hint unless this pytest and pytest-xdist agree on how a group
    # reaches the scheduler (pytest 9.2 with xdist 3.8 silently spread them over workers).
    result = pytest_on(
        tmp_path,
        """
        import os
        from pathlib import Path

        import pytest

        @pytest.fixture(scope="module")
        def server():
            return object()

        @pytest.mark.parametrize("n", range(8))
        def test_shared(server, n):
            with (Path(__file__).parent / "workers").open("a") as ran_on:
                ran_on.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
        """,
        "-p",
        "xdist",
        "-n",
        "2",
        "--dist",
        "loadgroup",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    workers = (tmp_path / "workers").read_text().split()
    assert len(workers) == 8
    assert len(set(workers)) == 1, workers
