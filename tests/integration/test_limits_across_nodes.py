"""Two nodes of one site (two `dockyard serve`, each with its own data folder, so nothing
host-wide is shared, and one PostgreSQL database) count failed sign-ins and the rate limit
together: an attacker who alternates between them gets no more than from one."""

from __future__ import annotations

import orjson
import pytest

from support.peers import DockyardServer, DockyardServerFactory
from support.workers import Answer, basic, request

ATTACKER, REGULAR = "127.0.0.1", "127.0.0.3"


def _nodes(
    factory: DockyardServerFactory, database_url: str, env: dict[str, str]
) -> list[DockyardServer]:
    first = factory(args=["--workers", "2"], env={"DOCKYARD_DATABASE_URL": database_url, **env})
    second = factory(
        args=["--workers", "2"],
        env={
            "DOCKYARD_DATABASE_URL": database_url,
            "DOCKYARD_ADMIN_PASSWORD": first.admin_password,
            **env,
        },
    )
    assert first.data != second.data
    return [first, second]


async def _get(
    node: DockyardServer, path: str, source: str, headers: dict[str, str] | None = None
) -> Answer:
    assert node.process is not None
    return await request(node.url, node.process.pid, "GET", path, source=source, headers=headers)


@pytest.mark.peers
async def test_wrong_passwords_are_counted_by_the_site_not_by_the_node(
    dockyard_server_factory: DockyardServerFactory, postgres_database_url: str
) -> None:
    nodes = _nodes(dockyard_server_factory, postgres_database_url, {})
    password = nodes[0].admin_password
    assert (await _get(nodes[1], "/v2/", REGULAR, basic("admin", password))).status == 200
    answers = [
        await _get(nodes[i % 2], "/v2/", ATTACKER, basic("admin", f"guess-{i}")) for i in range(12)
    ]
    # 5 per account and address for the site: one node alone would have allowed 5 more
    assert [a.status for a in answers] == [401] * 5 + [429] * 7
    assert {orjson.loads(a.body)["errors"][0]["code"] for a in answers[5:]} == {"TOOMANYREQUESTS"}
    refusing = {nodes[i % 2].url for i, a in enumerate(answers) if a.status == 429}
    assert len(refusing) == 2, "both nodes refused"
    # the right password is refused from there too, on either node (no oracle) ...
    for node in nodes:
        assert (await _get(node, "/v2/", ATTACKER, basic("admin", password))).status == 429
    # ... but the address the real user signed in from (on the other node) still works
    assert (await _get(nodes[0], "/v2/", REGULAR, basic("admin", password))).status == 200


@pytest.mark.peers
async def test_the_rate_limit_holds_across_nodes(
    dockyard_server_factory: DockyardServerFactory, postgres_database_url: str
) -> None:
    limits = {"DOCKYARD_RATE_LIMIT_PER_SECOND": "0.05", "DOCKYARD_RATE_LIMIT_BURST": "10"}
    nodes = _nodes(dockyard_server_factory, postgres_database_url, limits)
    answers = [await _get(nodes[i % 2], "/v2/", REGULAR) for i in range(30)]
    allowed = [a for a in answers if a.status != 429]
    # a burst of 10 for the site (one more may have refilled meanwhile), not 10 per node
    assert 10 <= len(allowed) <= 11, [a.status for a in answers]
    assert all(a.status == 401 for a in allowed)
    refusing = {nodes[i % 2].url for i, a in enumerate(answers) if a.status == 429}
    assert len(refusing) == 2, "both nodes refused"
