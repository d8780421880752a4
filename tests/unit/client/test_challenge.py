"""WWW-Authenticate parsing, scope merging and the Link headers of paged lists."""

from __future__ import annotations

from yarl import URL

from dockyard.client.challenge import covers, merge_scopes, parse_challenges, scope_for
from dockyard.client.links import next_link


def test_docker_hub_bearer_challenge() -> None:
    [challenge] = parse_challenges(
        [
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/nginx:pull"'
        ]
    )
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.params["service"] == "registry.docker.io"
    assert challenge.scopes == {"repository:library/nginx:pull"}


def test_several_challenges_in_one_header_and_across_headers() -> None:
    found = parse_challenges(
        [
            'Bearer realm="https://a/token", service="svc",scope="repository:a:pull '
            'repository:b:pull", Basic realm="fallback"',
            "Basic realm=bare",
        ]
    )
    assert [c.scheme for c in found] == ["bearer", "basic", "basic"]
    assert found[0].scopes == {"repository:a:pull", "repository:b:pull"}
    assert found[1].realm == "fallback"
    assert found[2].realm == "bare"


def test_quoted_strings_keep_commas_and_escapes() -> None:
    [challenge] = parse_challenges(['Basic realm="a, \\"quoted\\" realm", charset="UTF-8"'])
    assert challenge.realm == 'a, "quoted" realm'
    assert challenge.params["charset"] == "UTF-8"


def test_scheme_and_parameter_names_are_case_insensitive() -> None:
    [challenge] = parse_challenges(['BEARER Realm="r",Service="s"'])
    assert (challenge.scheme, challenge.realm, challenge.params["service"]) == ("bearer", "r", "s")


def test_garbage_gives_what_parsed_before_it() -> None:
    assert parse_challenges(["", "   "]) == []
    found = parse_challenges(['Basic realm="x", @@@'])
    assert [c.scheme for c in found] == ["basic"]
    assert [c.scheme for c in parse_challenges(["Negotiate abc123=="])] == ["negotiate"]


def test_scopes_merge_per_resource() -> None:
    assert scope_for("team/app", "push", "pull", "pull") == "repository:team/app:pull,push"
    merged = merge_scopes(
        ["repository:a:pull", "repository:b:pull"], ["repository:a:push", "registry:catalog:*"]
    )
    assert merged == {"repository:a:pull,push", "repository:b:pull", "registry:catalog:*"}


def test_covers() -> None:
    granted = frozenset({"repository:a:pull,push", "repository:b:pull"})
    assert covers(granted, frozenset({"repository:a:pull"}))
    assert covers(granted, frozenset())
    assert not covers(granted, frozenset({"repository:b:push"}))
    assert not covers(granted, frozenset({"repository:c:pull"}))


BASE = URL("http://registry.test/v2/team/app/tags/list?n=2")


def test_next_link_distribution_style() -> None:
    link = '</v2/team/app/tags/list?last=b&n=2>; rel="next"'
    assert next_link([link], BASE) == URL("http://registry.test/v2/team/app/tags/list?last=b&n=2")


def test_next_link_among_others_and_absolute() -> None:
    links = [
        '<https://other.test/prev>; rel="prev", '
        '<https://cdn.test/v2/x/tags/list?last=z>; title="x, y"; rel="next"'
    ]
    assert next_link(links, BASE) == URL("https://cdn.test/v2/x/tags/list?last=z")
    assert next_link(['<a>; rel="prev"'], BASE) is None
    assert next_link([], BASE) is None
    assert next_link(["<b>; rel=next"], BASE) == URL("http://registry.test/v2/team/app/tags/b")
