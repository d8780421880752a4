"""The sync config: regsync's YAML read strictly. The seed's `regsync.yaml` (the DHI mirroring
docs) with only its hosts and placeholders changed; every unknown or misspelled key named with
its file and line; templates; tag filters as regsync anchors them; schedules and durations."""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path

import pytest

from dockyard.client.settings import TLSMode
from dockyard.copy.options import ReferrerFilter
from dockyard.oci.reference import Reference
from dockyard.sync.config import load_sync_config, parse_sync_config
from dockyard.sync.model import (
    DEFAULT_MEDIA_TYPES,
    SyncConfigError,
    TagFilter,
    select_tags,
)
from dockyard.sync.schedule import Cron, Every, format_duration, parse_duration
from dockyard.sync.template import TemplateError, expand

# The regsync.yaml of Docker's "Mirror a repository" guide for Hardened Images (section "Mirror a
# DHI repository to a third-party registry"), copied verbatim; the tests replace hosts and the
# <your-org> placeholder only, as a user would.
SEED_YAML = """\
version: 1
# Optional: inline creds if not relying on prior CLI logins
# creds:
#   - registry: docker.io
#     user: <your-docker-username>
#     pass: "{{file \\"/run/secrets/docker_token\\"}}"
#   - registry: registry.scout.docker.com
#     user: <your-docker-username>
#     pass: "{{file \\"/run/secrets/docker_token\\"}}"
#   - registry: registry.example.com
#     user: <service-user>
#     pass: "{{file \\"/run/secrets/dest_token\\"}}"

sync:
  - source: docker.io/<your-org>/dhi-node
    target: registry.example.com/mirror/dhi-node
    type: repository
    fastCopy: true
    referrers: true
    referrerSource: registry.scout.docker.com/<your-org>/dhi-node
    referrerTarget: registry.example.com/mirror/dhi-node
    tags:
      allow: [ "24.*" ]
      deny: [ ".*alpine.*", ".*debian12.*" ]

  - source: docker.io/<your-org>/dhi-python
    target: registry.example.com/mirror/dhi-python
    type: repository
    fastCopy: true
    referrers: true
    referrerSource: registry.scout.docker.com/<your-org>/dhi-python
    referrerTarget: registry.example.com/mirror/dhi-python
    tags:
      allow: [ "3.12.*" ]
      deny: [ ".*alpine.*", ".*debian12.*" ]
"""


def seed_with_hosts(source: str, scout: str, target: str, org: str = "acme") -> str:
    return (
        SEED_YAML.replace("registry.scout.docker.com", scout)
        .replace("registry.example.com", target)
        .replace("docker.io", source)
        .replace("<your-org>", org)
    )


def parse(text: str, name: str = "sync.yaml") -> object:
    return parse_sync_config(textwrap.dedent(text), name)


def error_of(text: str, name: str = "sync.yaml") -> str:
    with pytest.raises(SyncConfigError) as caught:
        parse_sync_config(textwrap.dedent(text), name)
    return str(caught.value)


# --- the seed ------------------------------------------------------------------------------------


def test_seed_config_runs_with_hosts_changed(tmp_path: Path) -> None:
    path = tmp_path / "regsync.yaml"
    path.write_text(seed_with_hosts("src.test:5000", "scout.test:5001", "dst.test:5002"))
    config = load_sync_config(path)
    assert config.version == 1
    assert config.creds == ()
    assert config.parallel == 1
    node, python = config.sync
    assert node.type == "repository"
    assert node.source_ref == Reference.parse("src.test:5000/acme/dhi-node")
    assert node.target_ref == Reference.parse("dst.test:5002/mirror/dhi-node")
    assert node.referrers is True
    assert node.fast_check is True  # fastCopy, as the seed writes it
    assert node.referrer_source == Reference.parse("scout.test:5001/acme/dhi-node")
    assert node.referrer_target == Reference.parse("dst.test:5002/mirror/dhi-node")
    assert node.tags == (TagFilter(("24.*",), (".*alpine.*", ".*debian12.*")),)
    assert node.media_types == DEFAULT_MEDIA_TYPES
    assert node.schedule is None
    assert node.where is not None
    assert node.where.line == 15
    assert python.tags[0].allow == ("3.12.*",)
    tags = ["24", "24.1", "24.1-alpine3.21", "24-debian12", "24.2-debian13", "22.1", "124"]
    assert select_tags(node.tags, tags) == ["24", "24.1", "24.2-debian13"]
    options = node.copy_options()
    assert options.referrers
    assert options.fast_check
    assert not options.force_recursive


def test_seed_with_docker_hub_names_parses_as_given() -> None:
    config = parse_sync_config(SEED_YAML.replace("<your-org>", "acme"))
    assert config.sync[0].source_ref == Reference.parse("docker.io/acme/dhi-node")


# --- unknown keys: named with their line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "line", "where"),
    [
        ("verison: 1\nsync: []\n", "verison", 1, "at the top level"),
        ("version: 1\ncreds:\n  - registry: a.test\n    usr: me\n", "usr", 4, "in creds[0]"),
        ("defaults:\n  paralel: 2\n", "paralel", 2, "in defaults"),
        ("defaults:\n  ratelimit:\n    minimum: 3\n", "minimum", 3, "in defaults.ratelimit"),
        (
            "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
            "    tgas:\n      allow: [a]\n",
            "tgas",
            5,
            "in sync[0]",
        ),
        (
            "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
            "    tags:\n      alow: [a]\n",
            "alow",
            6,
            "in sync[0].tags",
        ),
        (
            "sync:\n  - source: a.test/x:1\n    target: b.test/x:1\n    type: image\n"
            "    referrers: true\n    referrerFilters:\n      - artifactTyp: x\n",
            "artifactTyp",
            7,
            "in sync[0].referrerFilters[0]",
        ),
        (
            "sync:\n  - source: a.test/x:1\n    target: b.test/x:1\n    type: image\n"
            "    fastcopy: true\n",
            "fastcopy",
            5,
            "in sync[0]",
        ),
    ],
)
def test_unknown_key_names_key_line_and_file(text: str, key: str, line: int, where: str) -> None:
    message = error_of(text, "mirror.yaml")
    assert message.startswith(f"mirror.yaml, line {line}: ")
    assert f"unknown key {key!r} {where}" in message


def test_misspelling_suggests_the_key() -> None:
    message = error_of(
        """\
        sync:
          - source: a.test/x
            target: b.test/x
            type: repository
            referrerSorce: c.test/x
        """
    )
    assert "line 5" in message
    assert "did you mean 'referrerSource'?" in message


def test_unknown_key_without_a_close_one_lists_the_known_keys() -> None:
    message = error_of("defaults:\n  zzz: 1\n")
    assert "known keys: interval, schedule" in message


def test_key_in_the_wrong_case_is_suggested() -> None:
    assert "did you mean 'reqPerSec'?" in error_of(
        "creds:\n  - registry: a.test\n    REQPERSEC: 1\n"
    )


def test_regsync_keys_dockyard_does_not_implement_are_refused_by_name() -> None:
    message = error_of("creds:\n  - registry: a.test\n    credHelper: docker-credential-x\n")
    assert "line 3" in message
    assert "'credHelper'" in message
    assert "credential helpers are not run" in message
    message = error_of(
        "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
        "    backup: old-{{.Ref.Tag}}\n"
    )
    assert "line 5" in message
    assert "'backup'" in message
    assert "not made by dockyard sync" in message
    message = error_of(
        "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
        "    tags:\n      semverRange: ['>=1']\n"
    )
    assert "'semverRange'" in message
    assert "line 6" in message


def test_duplicate_keys_are_an_error() -> None:
    message = error_of("defaults:\n  parallel: 1\n  parallel: 2\n")
    assert "line 3" in message
    assert "appears twice (first on line 2)" in message


def test_extension_keys_anchors_and_merge_keys() -> None:
    config = parse_sync_config(
        textwrap.dedent(
            """\
            x-sched-a: &sched-a "15 01 * * *"
            x-common: &common
              type: repository
              referrers: true
              x-note: anything goes under x-
            version: 1
            sync:
              - <<: *common
                source: a.test/x
                target: b.test/x
                schedule: *sched-a
              - <<: *common
                source: a.test/y
                target: b.test/y
                referrers: false
            """
        )
    )
    first, second = config.sync
    assert first.type == "repository"
    assert first.referrers is True
    assert isinstance(first.schedule, Cron)
    assert first.schedule.text == "15 01 * * *"
    assert second.referrers is False  # explicit keys win over merged ones


def test_empty_config_has_no_entries() -> None:
    assert parse_sync_config("").sync == ()
    assert parse_sync_config("version: 1\n").sync == ()


def test_invalid_yaml_names_line() -> None:
    message = error_of("sync:\n  - source: [a\n")
    assert message.startswith("sync.yaml, line ")
    assert "not valid YAML" in message


# --- types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 2\n", "version 2 is not supported"),
        ("version: one\n", "version: must be a whole number, not 'one'"),
        ("defaults:\n  parallel: 0\n", "defaults.parallel: must be at least 1"),
        ("defaults:\n  parallel: 2.5\n", "must be a whole number"),
        ("defaults:\n  referrers: maybe\n", "defaults.referrers: must be true or false"),
        ("defaults:\n  interval: 10\n", "must be a duration such as 90s"),
        ("defaults:\n  interval: 10 minutes\n", "invalid duration"),
        ("defaults:\n  schedule: '61 * * * *'\n", "minute '61': values must be within 0-59"),
        ("defaults:\n  schedule: '* * *'\n", "expected 5 fields"),
        ("defaults:\n  platforms: linux/amd64\n", "must be a list of strings"),
        ("defaults:\n  platforms: [linux]\n", "invalid platform 'linux'"),
        ("defaults:\n  mediaTypes: [text/plain]\n", "'text/plain' is not a manifest media type"),
        ("creds: {registry: a.test}\n", "creds: must be a list"),
        ("creds:\n  - user: me\n", "needs `registry`"),
        ("creds:\n  - registry: a.test\n    tls: off\n", "must be enabled, insecure or disabled"),
        ("creds:\n  - registry: a.test\n    reqPerSec: -1\n", "must be at least 0"),
        ("creds:\n  - registry: a.test\n    regcert: not a cert\n", "not a PEM certificate"),
        (
            "creds:\n  - registry: a.test\n  - registry: A.test\n",
            "creds for a.test are already given on line 2",
        ),
        ("sync:\n  - source: a.test/x\n    target: b.test/x\n", "needs `type`"),
        (
            "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repo\n",
            "must be registry, repository or image, not 'repo'",
        ),
        (
            "sync:\n  - source: a.test/x:1\n    target: b.test/x\n    type: repository\n",
            "must name a repository, without a tag or digest",
        ),
        (
            "sync:\n  - source: a.test/X\n    target: b.test/x\n    type: repository\n",
            "sync[0].source",
        ),
        (
            "sync:\n  - source: a.test/x:1\n    target: b.test/x:1\n    type: image\n"
            "    tags: {allow: [a]}\n",
            "selects tags of repository and registry entries",
        ),
        (
            "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
            "    tags: {allow: ['(']}\n",
            "invalid regex '('",
        ),
        (
            "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
            "    referrerSource: c.test/x\n",
            "has no effect without `referrers: true`",
        ),
        (
            "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
            "    platform: linux/amd64\n    platforms: [linux/arm64]\n",
            "use platform or platforms, not both",
        ),
        (
            "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
            "    fastCopy: true\n    fastCheck: false\n",
            "contradicts fastCheck",
        ),
        (
            "sync:\n  - source: a.test/x\n    target: b.test\n    type: registry\n",
            "must be a registry (host[:port])",
        ),
    ],
)
def test_wrong_values_are_named(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_string_fields_take_the_text_written() -> None:
    config = parse_sync_config("creds:\n  - registry: a.test\n    user: 0123\n    pass: yes\n")
    assert config.creds[0].user == "0123"
    assert config.creds[0].password == "yes"


def test_creds_settings() -> None:
    config = parse_sync_config(
        textwrap.dedent(
            """\
            creds:
              - registry: Registry.Example.COM
                tls: Disabled
                reqPerSec: 2.5
                reqConcurrent: 4
                blobChunk: 1048576
              - hostname: legacy.test:5000
                scheme: http
              - registry: docker.io
                hostname: 127.0.0.1:5000
            """
        )
    )
    first, second, third = config.creds
    assert first.registry == "registry.example.com"
    assert first.tls is TLSMode.DISABLED
    assert first.req_per_sec == 2.5
    assert first.req_concurrent == 4
    assert first.blob_chunk == 1048576
    assert first.hostname is None
    assert second.registry == "legacy.test:5000"  # `hostname` alone names the registry
    assert second.tls is TLSMode.DISABLED
    assert third.registry == "docker.io"
    assert third.hostname == "127.0.0.1:5000"


# --- defaults and overrides ----------------------------------------------------------------------


def test_defaults_apply_and_entries_override() -> None:
    config = parse_sync_config(
        textwrap.dedent(
            """\
            defaults:
              parallel: 3
              interval: 60m
              referrers: true
              referrerFilters:
                - artifactType: application/spdx+json
                - annotations: {org.example.kind: sbom, org.example.any: ""}
              digestTags: true
              forceRecursive: true
              platforms: [linux/amd64]
              mediaTypes: [application/vnd.oci.image.index.v1+json]
              ratelimit: {min: 100, retry: 15m}
            sync:
              - source: a.test/x
                target: b.test/x
                type: repository
              - source: a.test/y:1
                target: b.test/y:1
                type: image
                schedule: "@hourly"
                referrers: false
                forceRecursive: false
                platform: linux/arm64
                ratelimit: {min: 5}
                interval: 5m
              - source: a.test/z
                target: b.test/z
                type: repository
                fastCheck: true
                ratelimit: {retry: 1m}
            """
        )
    )
    assert config.parallel == 3
    first, second, third = config.sync
    assert first.schedule == Every(3600.0)
    assert first.referrers is True
    assert first.referrer_filters == (
        ReferrerFilter("application/spdx+json"),
        ReferrerFilter(None, {"org.example.kind": "sbom", "org.example.any": ""}),
    )
    assert first.digest_tags is True
    assert first.force_recursive is True
    assert first.fast_check is False  # forceRecursive without fastCheck: a full check
    assert first.platforms == ("linux/amd64",)
    assert first.media_types == ("application/vnd.oci.image.index.v1+json",)
    assert (first.ratelimit.min, first.ratelimit.retry) == (100, 900.0)
    assert isinstance(second.schedule, Cron)  # schedule wins over interval
    assert second.referrers is False
    assert second.fast_check is True
    assert second.platform == "linux/arm64"
    assert second.copy_options().platforms == ()  # one platform: the manifest, not a filter
    assert (second.ratelimit.min, second.ratelimit.retry) == (5, 900.0)
    assert third.fast_check is True
    assert third.force_recursive is True
    assert third.ratelimit.retry == 300.0  # at least 5 minutes, as regsync


def test_entry_interval_wins_over_default_schedule() -> None:
    config = parse_sync_config(
        "defaults:\n  schedule: '@daily'\nsync:\n"
        "  - {source: a.test/x, target: b.test/x, type: repository, interval: 90s}\n"
        "  - {source: a.test/y, target: b.test/y, type: repository}\n"
    )
    assert config.sync[0].schedule == Every(90.0)
    assert isinstance(config.sync[1].schedule, Cron)


def test_registry_entries() -> None:
    config = parse_sync_config(
        "sync:\n  - source: localreg:5000\n    target: localcopy:5000/mirror\n"
        "    type: registry\n    repos: {allow: ['team/.*'], deny: ['team/old']}\n"
        "    tags: {deny: ['.*-rc']}\n"
    )
    entry = config.sync[0]
    assert entry.source == "localreg:5000"
    assert entry.target == "localcopy:5000/mirror"
    assert entry.repos.select(["team/a", "team/old", "other/b"]) == ["team/a"]
    assert select_tags(entry.tags, ["1", "2-rc"]) == ["1"]


# --- templates -----------------------------------------------------------------------------------


def test_templates_in_creds_and_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("HUB_USER", "alice")
    monkeypatch.setenv("MIRROR", "mirror.test:5000")
    config = parse_sync_config(
        textwrap.dedent(
            f"""\
            creds:
              - registry: "{{{{env \\"MIRROR\\"}}}}"
                user: "{{{{env \\"HUB_USER\\"}}}}"
                pass: "{{{{file \\"{secret}\\"}}}}"
            sync:
              - source: a.test/team/app
                target: '{{{{env "MIRROR"}}}}/{{{{ .Sync.Source | lower }}}}'
                type: repository
                referrers: true
                referrerSource: '{{{{ .Sync.Source }}}}-attestations'
                referrerTarget: '{{{{ .Sync.Target }}}}'
            """
        )
    )
    creds = config.creds[0]
    assert (creds.registry, creds.user, creds.password) == ("mirror.test:5000", "alice", "s3cret")
    entry = config.sync[0]
    assert entry.target == "mirror.test:5000/a.test/team/app"
    assert entry.referrer_source == Reference.parse("a.test/team/app-attestations")
    assert entry.referrer_target == Reference.parse("mirror.test:5000/a.test/team/app")


def test_template_errors_name_the_field_and_line(tmp_path: Path) -> None:
    message = error_of('creds:\n  - registry: a.test\n    pass: "{{file \\"/nonexistent/x\\"}}"\n')
    assert message.startswith("sync.yaml, line 3: creds[0].pass: template:")
    assert "cannot read the file" in message
    message = error_of("creds:\n  - registry: a.test\n    user: '{{ secret \"x\" }}'\n")
    assert "line 3" in message
    assert "unknown template function 'secret'" in message
    message = error_of("creds:\n  - registry: a.test\n    user: '{{ time.Now }}'\n")
    assert "template function 'time' is not supported" in message


def test_templates_are_only_expanded_where_regsync_expands_them() -> None:
    config = parse_sync_config(
        "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
        "    tags: {allow: ['{{x}}']}\n"
    )
    assert config.sync[0].tags[0].allow == ("{{x}}",)


def test_template_language(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A", "Value")
    monkeypatch.delenv("UNSET", raising=False)
    assert expand('{{env "A"}}') == "Value"
    assert expand('{{ env "UNSET" }}') == ""
    assert expand('{{ env "UNSET" | default "fallback" | upper }}') == "FALLBACK"
    assert expand('{{ default "d" (env "A") }}') == "Value"
    assert expand("a  {{- `raw` -}}  b") == "arawb"
    assert expand('{{ printf "%s:%d" "x" 5 }}') == "x:5"
    assert expand('{{ join (split "a,b" ",") "-" }}') == "a-b"
    assert expand("{{/* a comment */}}ok") == "ok"
    assert expand("{{ .Sync.Source }}", {"Sync": {"Source": "s"}}) == "s"
    assert expand("no actions") == "no actions"
    for bad, said in [
        ("{{ nope }}", "unknown template function 'nope'"),
        ("{{ if true }}x{{ end }}", "'if' is not supported"),
        ("{{ $x := 1 }}", "variables"),
        ("{{ .Missing }}", "no field '.Missing'"),
        ("{{ env", "unclosed action"),
        ('{{ "a" "b" }}', "not a function"),
    ]:
        with pytest.raises(TemplateError, match=re.escape(said)):
            expand(bad)


# --- tag filters ---------------------------------------------------------------------------------


def test_tag_filters_are_anchored_as_regsync_anchors_them() -> None:
    f = TagFilter(allow=("3.12.*",))
    assert f.select(["3.12", "3.12.1", "13.12", "3.120"]) == ["3.12", "3.12.1", "3.120"]
    assert TagFilter(allow=("latest",)).select(["latest", "latest-1", "not-latest"]) == ["latest"]
    # regsync writes "^" + pattern + "$": an alternation binds each side to one end only
    assert TagFilter(allow=("a|b",)).select(["a", "b", "ax", "xb", "xa"]) == ["a", "b", "ax", "xb"]
    assert TagFilter(deny=("3\\.0",)).select(["3.0", "3.01", "3x0"]) == ["3.01", "3x0"]
    assert TagFilter().select(["a"]) == ["a"]
    both = TagFilter(allow=("24.*",), deny=(".*alpine.*",))
    assert both.select(["24", "24-alpine", "alpine-24", "25"]) == ["24"]


def test_tag_sets_are_a_union() -> None:
    config = parse_sync_config(
        "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n"
        "    tagSets:\n      - allow: ['1\\..*']\n"
        "      - allow: ['2\\..*']\n        deny: ['2\\.0']\n"
    )
    assert select_tags(config.sync[0].tags, ["1.0", "2.0", "2.1", "3.0"]) == ["1.0", "2.1"]


# --- schedules -----------------------------------------------------------------------------------


def test_go_durations() -> None:
    assert parse_duration("60m") == 3600
    assert parse_duration("1h15m30s") == 4530
    assert parse_duration("1.5h") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("0") == 0
    for bad in ("", "10", "1d", "m", "1h-5m"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)
    assert format_duration(5400) == "1h30m0s"
    assert format_duration(90) == "1m30s"


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def _iso(moment: float | None) -> str:
    assert moment is not None
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        ("15 01 * * *", "2024-03-10 00:00", "2024-03-10 01:15"),
        ("15 01 * * *", "2024-03-10 01:15", "2024-03-11 01:15"),
        ("*/20 * * * *", "2024-03-10 00:41", "2024-03-10 01:00"),
        ("0 9-17/4 * * MON-FRI", "2024-03-09 12:00", "2024-03-11 09:00"),  # Saturday
        ("0 0 1 jan *", "2024-03-10 00:00", "2025-01-01 00:00"),
        ("0 0 13 * 5", "2024-03-10 00:00", "2024-03-13 00:00"),  # 13th OR a Friday
        ("0 0 ? * 5", "2024-03-10 00:00", "2024-03-15 00:00"),
        ("0 0 29 2 *", "2024-03-01 00:00", "2028-02-29 00:00"),
        ("@hourly", "2024-03-10 00:30", "2024-03-10 01:00"),
        ("@weekly", "2024-03-10 00:30", "2024-03-17 00:00"),
        ("30/15 * * * *", "2024-03-10 00:31", "2024-03-10 00:45"),
    ],
)
def test_cron_next(spec: str, after: str, expected: str) -> None:
    schedule = Cron.parse(f"CRON_TZ=UTC {spec}")
    assert isinstance(schedule, Cron)
    assert _iso(schedule.next_after(_at(after))) == expected


def test_every_descriptor() -> None:
    schedule = Cron.parse("@every 1h30m")
    assert schedule == Every(5400.0)
    assert schedule.next_after(100.0) == 5500.0


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("@often", "unknown descriptor"),
        ("0 0 31 * 7", "values must be within 0-6"),
        ("0 0 * * * *", "expected 5 fields"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "must be a positive number"),
        ("CRON_TZ=Mars/Base * * * * *", "unknown time zone"),
        ("@every -5m", "positive duration"),
    ],
)
def test_cron_errors(spec: str, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        Cron.parse(spec)


def test_a_key_in_the_wrong_section_says_where_it_belongs() -> None:
    message = error_of(
        "sync:\n  - source: a.test/x\n    target: b.test/x\n    type: repository\n    parallel: 2\n"
    )
    assert message == "sync.yaml, line 5: key 'parallel' in sync[0] belongs in `defaults`"
    message = error_of("defaults:\n  fastCopy: true\n")
    assert message == "sync.yaml, line 2: key 'fastCopy' in defaults belongs in a `sync` entry"
