"""The customization document: Docker's YAML reads as it is, and every mistake names its field."""

from __future__ import annotations

import pytest
import yaml

from dockyard.build.errors import InvalidCustomization
from dockyard.build.model import parse_customization, to_fields

# Docker's own example document (docs.docker.com, "Image customization YAML file"), with the
# base tag Dockyard needs
DOCKER = """
name: golang with git
targets:
  - destination: my-org/dhi-golang
    tag_definition_id: golang/alpine-3.23/1.25
contents:
  packages:
    - git
    - curl
  artifacts:
    - name: my-org/my-certs:latest
      includes:
        - etc/ssl/certs
      excludes:
        - etc/ssl/certs/old
paths:
  - path: /etc/myconfig
    contents: |
      key=value
    mode: "0644"
    uid: 0
    gid: 0
accounts:
  root: true
  runs-as: nonroot
  users:
    - name: nonroot
      uid: 65532
      gid: 65532
  groups:
    - name: nonroot
      gid: 65532
      members:
        - nonroot
environment:
  MY_VAR: my_value
  DEBUG: "false"
labels:
  org.opencontainers.image.version: "1.0.0"
annotations:
  org.opencontainers.image.title: Custom hardened image
entrypoint:
  - /docker-entrypoint.sh
cmd:
  - /bin/bash
platforms:
  - linux/amd64
  - linux/arm64
compression: ZSTD
"""


def _problems(text: str) -> dict[str, str]:
    with pytest.raises(InvalidCustomization) as refused:
        parse_customization(text)
    return dict(refused.value.problems)


def test_dockers_document_reads_as_it_is() -> None:
    custom = parse_customization(DOCKER)
    target = custom.targets[0]
    assert target.base_tag == "1.25"  # the tag definition's last part
    assert custom.suffix == "golang-with-git"  # as Docker derives it
    assert custom.result_tag(target) == "1.25_golang-with-git"
    assert custom.accounts is not None
    assert custom.accounts.runs_as == "nonroot"
    assert custom.paths[0].path == "/etc/myconfig"
    assert custom.paths[0].permissions == 0o644
    assert custom.contents.artifacts[0].includes == ["etc/ssl/certs"]
    fields = to_fields(custom)
    assert fields["accounts"]["runs-as"] == "nonroot"  # written back in Docker's spelling
    assert parse_customization(yaml.safe_dump(fields)) == custom


def test_dockyards_own_fields() -> None:
    custom = parse_customization(
        "name: x\ntargets: [{destination: acme/dhi-python, tag: '3.13'}]\n"
        "tag_suffix: custom\nplatforms: [linux/amd64]\n"
    )
    assert custom.result_tag(custom.targets[0]) == "3.13_custom"
    assert custom.compression == "GZIP"


@pytest.mark.parametrize(
    ("snippet", "field", "says"),
    [
        ("targets: [{destination: python, tag: '3'}]", "targets[0].destination", "namespace"),
        ("targets: [{destination: acme/Py, tag: '3'}]", "targets[0].destination", "lowercase"),
        ("targets: [{destination: acme/py}]", "targets[0]", "base image's tag"),
        ("targets: [{destination: acme/py, tag: '-x'}]", "targets[0]", "invalid tag"),
        ("contents: {packages: ['cu rl']}", "contents.packages", "no package name"),
        ("contents: {packages: [curl, curl]}", "contents.packages", "more than once"),
        (
            "contents: {artifacts: [{name: acme/ca, includes: [etc]}]}",
            "contents.artifacts[0].name",
            "tag or digest",
        ),
        (
            "contents: {artifacts: [{name: acme/ca:1, includes: []}]}",
            "contents.artifacts[0].includes",
            "at least 1",
        ),
        (
            "contents: {artifacts: [{name: acme/ca:1, includes: [../etc]}]}",
            "contents.artifacts[0].includes",
            "'..'",
        ),
        ("paths: [{path: etc/x, contents: ''}]", "paths[0].path", "absolute path"),
        ("paths: [{path: /x, contents: '', mode: 0755}]", "paths[0].mode", "quoted octal"),
        ("paths: [{path: /x, contents: '', mode: '999'}]", "paths[0].mode", "no octal mode"),
        ("accounts: {runs-as: root}", "accounts", "root: true"),
        ("accounts: {users: [{name: 1app, uid: 5}]}", "accounts.users[0].name", "lowercase"),
        ("accounts: {users: [{name: a, uid: 5}, {name: b, uid: 5}]}", "accounts", "id 5"),
        ("platforms: [linux]", "platforms", "os/arch"),
        ("environment: {'A=B': x}", "environment", "variable"),
        ("workdir: app", "workdir", "absolute"),
        ("colour: blue", "colour", "no such field"),
        ("tag_suffix: '-x'", "(document)", "tag_suffix"),
    ],
)
def test_each_mistake_names_its_field(snippet: str, field: str, says: str) -> None:
    base = {
        "name": "name: x",
        "targets": "targets: [{destination: acme/py, tag: '3'}]",
        "platforms": "platforms: [linux/amd64]",
    }
    key = snippet.split(":", 1)[0]
    base[key] = snippet
    problems = _problems("\n".join(base.values()))
    assert field in problems, problems
    assert says in problems[field], problems


def test_a_bulk_customization_cannot_set_accounts_or_commands() -> None:
    problems = _problems(
        "name: x\nplatforms: [linux/amd64]\ncmd: [a]\n"
        "targets: [{destination: acme/a, tag: '1'}, {destination: acme/b, tag: '1'}]\n"
    )
    assert "more than one target" in problems["(document)"]


def test_a_key_given_twice_is_refused() -> None:
    problems = _problems("name: x\nname: y\n")
    assert "given twice" in problems["(document)"]


def test_not_yaml_or_not_a_mapping() -> None:
    assert "not YAML" in _problems("name: [x\n")["(document)"]
    assert "mapping" in _problems("- a\n")["(document)"]
