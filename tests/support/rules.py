"""The rules that let the suite run in parallel (pytest-xdist, `--dist loadgroup`) and without
PostgreSQL (`make unit`: `-m "not peers"`), as a pytest plugin."""

from __future__ import annotations

import pytest

from support.debian import FIXTURES as DEBIAN_FIXTURES
from support.postgres import FIXTURES as POSTGRES_FIXTURES

PEER_FIXTURES = POSTGRES_FIXTURES | DEBIAN_FIXTURES
"""Fixtures that need a peer of the machine (PostgreSQL, a Debian system built by mmdebstrap)."""

WIDE_SCOPES = frozenset({"module", "class", "package"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep together the tests that share state; refuse a test of a peer (PostgreSQL, a Debian
    system) not marked `peers`.

    A test that uses a fixture wider than itself (a module's server, a module's event loop, a
    class's state) runs on the same xdist worker as the rest of its module, in file order:
    spreading them would start that fixture once per worker, and the conformance workflows
    depend on the order of their checks. (tryfirst: xdist reads the groups in this same hook.)
    """
    unmarked = []
    for item in items:
        fixtures = item.fixturenames if isinstance(item, pytest.Function) else []
        if PEER_FIXTURES.intersection(fixtures) and item.get_closest_marker("peers") is None:
            unmarked.append(item.nodeid)
        if _uses_wide_fixture(item) or _uses_wide_loop(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    if unmarked:
        raise pytest.UsageError(
            "these tests use PostgreSQL or a Debian system but are not marked `peers`, so "
            "`make unit` (-m 'not peers') would need it: " + ", ".join(unmarked)
        )


def _uses_wide_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definition.scope in WIDE_SCOPES
        for definitions in info.name2fixturedefs.values()
        for definition in definitions
    )


def _uses_wide_loop(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("asyncio")
    return marker is not None and marker.kwargs.get("loop_scope") in WIDE_SCOPES
