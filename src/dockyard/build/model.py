"""The customization document: Docker's shape (`docker dhi customization prepare|create` YAML,
the Terraform resource `dhi_customization`), so users can bring theirs.

```yaml
name: python with ca              # also the tag suffix, slugged: _python-with-ca
targets:
  - destination: acme/dhi-python  # a mirrored image repository
    tag: "3.13"                   # Dockyard: the base tag (Docker's tag_definition_id's last part)
contents:
  packages: [curl, "jq=1.6-2.1+deb12u1"]
  artifacts:
    - {name: acme/rootca:20250101, includes: [etc/ssl/certs], excludes: [etc/ssl/certs/old]}
paths:                            # files placed, never run at build time
  - {path: /opt/init.sh, contents: "#!/bin/sh\n", mode: "0755", uid: 0, gid: 0}
accounts:
  root: false
  runs-as: app
  users: [{name: app, uid: 1000, gid: 1000}]
  groups: [{name: app, gid: 1000, members: [app]}]
environment: {APP_ENV: prod}
labels: {}
annotations: {}
entrypoint: [--verbose]           # appended to the base's ENTRYPOINT
cmd: []                           # appended to the base's CMD
platforms: [linux/amd64]
compression: GZIP                 # or ZSTD
```

Fields Dockyard adds without renaming Docker's: `targets[].tag` (Docker names the base by a
catalog tag definition; `tag_definition_id`'s last part is taken as the tag when `tag` is
absent), `tag_suffix` (Docker derives it from `name`; this sets it), `workdir` and
`stop_signal` (the Terraform resource's). The default compression is GZIP, not Docker's ZSTD:
zstd layers are still unreadable to tools people use to inspect images (umoci 0.4, older
Docker engines). Checks here need nothing but the document; what needs the base, the package
index or the artifacts is checked by the plan.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dockyard.build.errors import InvalidCustomization
from dockyard.oci.errors import OciError
from dockyard.oci.names import TAG_PATTERN, validate_name, validate_tag

MAX_DOCUMENT_BYTES = 1024 * 1024  # paths' contents included
_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
_VERSION = re.compile(r"[A-Za-z0-9.+~:_-]+")  # Debian's and Alpine's version characters
_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?")
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # useradd's NAME_REGEX, without the final $
_MODE = re.compile(r"0?[0-7]{3,4}")
_ENV_NAME = re.compile(r"[^=\0]+")

Id = Annotated[int, Field(ge=0, le=2**31 - 2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Target(_Strict):
    """Which repository and base tag a customization builds on."""

    destination: str
    tag: str | None = None
    tag_definition_id: str | None = None

    @field_validator("destination")
    @classmethod
    def _repository(cls, value: str) -> str:
        _oci(validate_name, value)
        if "/" not in value:
            raise ValueError("name the repository with its namespace, as acme/dhi-python")
        return value

    @model_validator(mode="after")
    def _base_tag(self) -> Target:
        if self.tag is None and self.tag_definition_id is None:
            raise ValueError('give the base image\'s tag (tag: "3.13")')
        _oci(validate_tag, self.base_tag)
        return self

    @property
    def base_tag(self) -> str:
        """The tag of `destination` that is the base image."""
        if self.tag is not None:
            return self.tag
        assert self.tag_definition_id is not None
        return self.tag_definition_id.rstrip("/").rsplit("/", 1)[-1]


class Artifact(_Strict):
    """An image of the same namespace whose selected files are added (Docker: nothing by
    default, `includes` select, `excludes` remove from what was selected)."""

    name: str
    includes: list[str] = Field(min_length=1)
    excludes: list[str] = []

    @field_validator("name")
    @classmethod
    def _reference(cls, value: str) -> str:
        repository, tag, digest = split_reference(value)
        _oci(validate_name, repository)
        if tag is None and digest is None:
            raise ValueError(f"name a tag or digest of {repository} (as {repository}:1.0)")
        return value

    @field_validator("includes", "excludes")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [_relative_path(path) for path in value]


class Contents(_Strict):
    packages: list[str] = []
    artifacts: list[Artifact] = []

    @field_validator("packages")
    @classmethod
    def _packages(cls, value: list[str]) -> list[str]:
        names = []
        for spec in value:
            name, _, version = spec.partition("=")
            if not _PACKAGE.fullmatch(name):
                raise ValueError(f"{spec!r} is no package name (as curl, or curl=7.88.1-10)")
            if "=" in spec and not _VERSION.fullmatch(version):
                raise ValueError(f"{spec!r}: the version after '=' has characters no version has")
            names.append(name)
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"{', '.join(duplicated)} listed more than once")
        return value


class PathFile(_Strict):
    """A file placed in the image (Docker's `paths`); never run at build time."""

    path: str
    contents: str
    mode: str = "0644"
    uid: Id = 0
    gid: Id = 0

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r}: give the absolute path the file gets in the image")
        return "/" + _relative_path(value)

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> Any:
        if isinstance(value, int):
            # YAML reads an unquoted 0755 as the number 493, and 755 as 755: say how to write it
            raise ValueError(f'write the mode as a quoted octal string ("0755"), not {value}')
        if not isinstance(value, str) or not _MODE.fullmatch(value):
            raise ValueError(f'{value!r} is no octal mode (as "0644" or "0755")')
        return value

    @property
    def permissions(self) -> int:
        return int(self.mode, 8)


class User(_Strict):
    name: str
    uid: Id
    gid: Id | None = None

    _name = field_validator("name")(lambda value: _account_name(value))


class Group(_Strict):
    name: str
    gid: Id
    members: list[str] = []

    _name = field_validator("name")(lambda value: _account_name(value))


class Accounts(_Strict):
    root: bool = False
    runs_as: str | None = Field(None, alias="runs-as")
    users: list[User] = []
    groups: list[Group] = []

    @model_validator(mode="after")
    def _consistent(self) -> Accounts:
        for kind, names in (
            ("users", [u.name for u in self.users]),
            ("groups", [g.name for g in self.groups]),
        ):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise ValueError(f"{kind}: {', '.join(duplicated)} named more than once")
        for kind, ids in (
            ("users", [u.uid for u in self.users]),
            ("groups", [g.gid for g in self.groups]),
        ):
            duplicated_ids = sorted({i for i in ids if ids.count(i) > 1})
            if duplicated_ids:
                raise ValueError(f"{kind}: id {duplicated_ids[0]} given more than once")
        if self.runs_as == "root" and not self.root:
            raise ValueError("runs-as: root needs root: true")
        return self


class Customization(_Strict):
    """One customization: what to add to a base image, and what the result is called."""

    id: str | None = None
    name: str = Field(min_length=1, max_length=128)
    targets: list[Target] = Field(min_length=1)
    tag_suffix: str | None = None
    contents: Contents = Contents()
    paths: list[PathFile] = []
    accounts: Accounts | None = None
    environment: dict[str, str] = {}
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    workdir: str | None = None
    stop_signal: str | None = None
    platforms: list[str] = Field(min_length=1)
    compression: Literal["GZIP", "ZSTD"] = "GZIP"

    @field_validator("environment")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.fullmatch(key):
                raise ValueError(f"{key!r} cannot be a variable's name (no '=' in it, not empty)")
        return value

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, value: list[str]) -> list[str]:
        for platform in value:
            if not _PLATFORM.fullmatch(platform):
                raise ValueError(f"{platform!r} is no platform: os/arch, as linux/arm64")
        if len(set(value)) != len(value):
            raise ValueError("a platform is listed more than once")
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r}: the working directory is an absolute path")
        return value

    @model_validator(mode="after")
    def _whole(self) -> Customization:
        suffix = self.suffix
        if not TAG_PATTERN.fullmatch(suffix) or suffix.startswith((".", "-")):
            raise ValueError(
                f"tag_suffix {suffix!r}: letters, digits, '_', '.' and '-' (from name when unset)"
            )
        for i, target in enumerate(self.targets):
            if len(self.result_tag(target)) > 128:
                raise ValueError(
                    f"targets[{i}]: {self.result_tag(target)!r} is longer than a tag may be "
                    "(128): shorten the name or tag_suffix"
                )
        if len(self.targets) > 1:  # as Docker: a bulk customization cannot set these
            bulk = [f for f in ("accounts", "entrypoint", "cmd") if getattr(self, f)]
            if bulk:
                raise ValueError(f"{', '.join(bulk)} cannot be set with more than one target")
        paths = [p.path for p in self.paths]
        duplicated = sorted({p for p in paths if paths.count(p) > 1})
        if duplicated:
            raise ValueError(f"paths: {', '.join(duplicated)} given more than once")
        return self

    @property
    def suffix(self) -> str:
        """The tag suffix: `tag_suffix`, else `name` lowercased with its spaces as hyphens."""
        if self.tag_suffix is not None:
            return self.tag_suffix
        return re.sub(r"[^a-z0-9._-]+", "-", self.name.lower()).strip("-") or "custom"

    def result_tag(self, target: Target) -> str:
        """The tag the build of `target` gets: `3.13_custom`."""
        return f"{target.base_tag}_{self.suffix}"


def parse_customization(text: str | bytes) -> Customization:
    """The customization a YAML (or JSON) document describes, or `InvalidCustomization` with
    every problem, each naming its field."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InvalidCustomization(
            [("(document)", f"larger than {MAX_DOCUMENT_BYTES // 1024} KiB")]
        )
    try:
        loaded = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise InvalidCustomization([("(document)", f"not YAML: {exc}")]) from None
    if not isinstance(loaded, dict):
        raise InvalidCustomization([("(document)", "expected a mapping of fields")])
    return from_fields(loaded)


def from_fields(fields: dict[str, Any]) -> Customization:
    """The customization of already-parsed fields (a JSON body), or `InvalidCustomization`."""
    try:
        return Customization.model_validate(fields)
    except ValidationError as exc:
        raise InvalidCustomization(_problems(exc)) from None


def to_fields(customization: Customization) -> dict[str, Any]:
    """The document's fields as Docker writes them (`runs-as`), without the unset ones."""
    return customization.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


def split_reference(text: str) -> tuple[str, str | None, str | None]:
    """`acme/rootca:1.0` → (repository, tag, digest); either may be None."""
    rest, _, digest = text.partition("@")
    repository, _, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
    return repository, tag or None, digest or None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader refusing a key given twice in one mapping (which one would count?)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        field = _field(error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append((field, "no such field (check its spelling against Docker's)"))
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append((field, message))
    return problems


def _field(loc: tuple[int | str, ...]) -> str:
    """`("targets", 0, "destination")` → `targets[0].destination`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def _relative_path(path: str) -> str:
    """A path inside the image, as layers name it: no leading `/`, no `.` or `..` parts."""
    if "\0" in path:
        raise ValueError(f"{path!r} has a NUL character")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{path!r}: a path inside the image cannot use '..'")
    if not parts:
        raise ValueError(f"{path!r} names no file or folder")
    return posixpath.join(*parts)


def _account_name(value: str) -> str:
    if not _ACCOUNT.fullmatch(value):
        raise ValueError(
            f"{value!r}: up to 32 lowercase letters, digits, '_' and '-', not starting with a digit"
        )
    return value


def _oci(check: Any, value: str) -> None:
    try:
        check(value)
    except OciError as exc:
        raise ValueError(exc.message) from None
