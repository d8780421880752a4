"""Image references `[registry/][namespace/]repo[:tag][@digest]`, normalized as Docker does,
or `ocidir://PATH[:TAG][@DIGEST]` for an OCI image layout folder (regclient's schemes).

No registry means Docker Hub (`docker.io`), where a one-part name lives under `library/`; no tag
and no digest means the tag `latest`. A `Reference` is always valid and normalized, so
`Reference.parse(str(ref)) == ref` holds for every value. A layout's path is only text here
(this package does no I/O); it may not contain ':' or '@', as in skopeo's `oci:DIR:TAG`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Literal

from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, NameInvalid, OciError, TagInvalid
from dockyard.oci.names import validate_name, validate_tag

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API})
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MAX_TAG_LENGTH = 128
REGISTRY: Literal["registry"] = "registry"
OCIDIR: Literal["ocidir"] = "ocidir"
OCIDIR_PREFIX = "ocidir://"

# Host grammar of distribution/reference: dot-separated labels of letters, digits and inner '-'
# (applied to the lowercased host), or a bracketed IPv6 address.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IPV6_TEXT = re.compile(r"[0-9a-f:.]+")
_PORT = re.compile(r"[0-9]{1,5}")
# Docker refuses a bare 64-hex name: it reads as an image ID, not a repository.
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """An image reference: where (`registry`, `repository`, or with the `ocidir` scheme the
    layout folder `path`) and which (`tag` and/or `digest`).

    Construction validates and normalizes every part (Docker Hub aliases become `docker.io`,
    one-part Docker Hub names gain `library/`, a reference without tag or digest gets `latest`)
    and raises `NameInvalid`, `TagInvalid` or `DigestInvalid` saying what is wrong. A layout
    reference (made by `Reference.layout`) has an empty registry and repository.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None
    scheme: Literal["registry", "ocidir"] = REGISTRY
    path: str | None = None

    def __post_init__(self) -> None:
        if self.scheme == OCIDIR:
            _check_layout(self.registry, self.repository, self.path)
        elif self.scheme != REGISTRY:
            raise NameInvalid(f"unknown reference scheme {self.scheme!r}")
        else:
            if self.path is not None:
                raise NameInvalid("a registry reference has no path (only an ocidir one does)")
            registry = _normalize_registry(self.registry)
            object.__setattr__(self, "registry", registry)
            object.__setattr__(self, "repository", _normalize_repository(registry, self.repository))
        if self.tag is not None:
            _check_tag(self.tag)
        elif self.digest is None:
            object.__setattr__(self, "tag", DEFAULT_TAG)

    @classmethod
    def layout(cls, path: str, tag: str | None = None, digest: Digest | None = None) -> Reference:
        """A reference to `tag` (or `digest`) in the OCI image layout folder `path`."""
        return cls("", "", tag, digest, OCIDIR, path)

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse `[registry/][namespace/]repo[:tag][@digest]` or `ocidir://PATH[:TAG][@DIGEST]`.

        Raises `NameInvalid`, `TagInvalid` or `DigestInvalid` (by the part that is wrong) with a
        message that quotes `text` and says what is wrong.
        """
        try:
            if text.startswith(OCIDIR_PREFIX):
                path, tag, digest_text = _split_layout(text[len(OCIDIR_PREFIX) :])
                digest = Digest.parse(digest_text) if digest_text is not None else None
                return cls.layout(path, tag, digest)
            name, tag, digest_text = _split(text)
            digest = Digest.parse(digest_text) if digest_text is not None else None
            registry, repository = _split_registry(name)
            return cls(registry, repository, tag, digest)
        except OciError as exc:
            raise type(exc)(f"invalid reference {text!r}: {exc.message}") from exc

    def with_tag(self, tag: str) -> Reference:
        """A copy that names `tag` and no digest (a tag is resolved afresh, as in regclient)."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest | str) -> Reference:
        """A copy pinned to `digest`; the tag, if any, is kept for display."""
        return replace(self, digest=digest if isinstance(digest, Digest) else Digest.parse(digest))

    def with_registry(self, registry: str) -> Reference:
        """A copy on another registry, same repository, tag and digest (registry scheme only)."""
        self.require_registry()
        return replace(self, registry=registry)

    def with_repository(self, repository: str) -> Reference:
        """A copy naming another repository on the same registry, same tag and digest
        (registry scheme only)."""
        self.require_registry()
        return replace(self, repository=repository)

    @property
    def is_layout(self) -> bool:
        """Whether this names content of an OCI image layout folder (`ocidir://`)."""
        return self.scheme == OCIDIR

    def require_registry(self) -> None:
        """Raise `NameInvalid` if this is a layout reference, which no registry serves."""
        if self.scheme != REGISTRY:
            raise NameInvalid(
                f"{self} names an OCI layout folder, not a registry: "
                "only a layout target can read or write it"
            )

    @property
    def name(self) -> str:
        """`registry/repository` (`ocidir://PATH` for a layout), without tag or digest."""
        if self.scheme == OCIDIR:
            return f"{OCIDIR_PREFIX}{self.path}"
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes in `/v2/<name>/manifests/<reference>`: the digest if set, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    @property
    def registry_host(self) -> str:
        """The host (and port) that serves the registry API: Docker Hub's is another host.
        Raises `NameInvalid` for a layout reference."""
        self.require_registry()
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def common_name(self) -> str:
        """The canonical, parseable full form (regclient's `CommonName`), same as `str(ref)`."""
        return self.name + self._suffix()

    def familiar_name(self) -> str:
        """The name as Docker shows it: `nginx`, `jwilder/nginx-proxy`, `ghcr.io/user/app`
        (a layout's is its full `ocidir://PATH`)."""
        if self.registry != DOCKER_HUB:
            return self.name
        namespace, _, rest = self.repository.partition("/")
        if namespace == OFFICIAL_NAMESPACE and "/" not in rest:
            return rest
        first = self.repository.split("/", 1)[0]
        if "." in first or first == "localhost":
            # `docker.io/a.b/c` shortened to `a.b/c` would read as registry `a.b`
            return self.name
        return self.repository

    def familiar(self) -> str:
        """The short form Docker prints, which parses back to this reference: `nginx:1.25`."""
        return self.familiar_name() + self._suffix()

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        return f"{tag}@{self.digest}" if self.digest is not None else tag

    def __str__(self) -> str:
        return self.common_name()

    def __repr__(self) -> str:
        return f"Reference({self.common_name()!r})"


def _split(text: str) -> tuple[str, str | None, str | None]:
    """Cut `text` into name, tag and digest text, refusing the forms no part can fix."""
    if not text:
        raise NameInvalid("reference is empty")
    if any(c.isspace() for c in text):
        raise NameInvalid("reference must not contain whitespace")
    if _IMAGE_ID.fullmatch(text):
        raise NameInvalid("a 64-character hex string is an image ID, not a repository name")
    name, at, digest_text = text.partition("@")
    if at and not digest_text:
        raise DigestInvalid("digest after '@' is empty")
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):  # a ':' before the last '/' separates a registry's port
        name, tag = name[:colon], name[colon + 1 :]
        if not tag:
            raise TagInvalid("tag after ':' is empty")
    if not name:
        raise NameInvalid("repository name is missing")
    return name, tag, digest_text if at else None


def _split_layout(rest: str) -> tuple[str, str | None, str | None]:
    """Cut the text after `ocidir://` into path, tag and digest text (the path has no ':')."""
    path, at, digest_text = rest.partition("@")
    if at and not digest_text:
        raise DigestInvalid("digest after '@' is empty")
    path, colon, tag = path.partition(":")
    if colon and not tag:
        raise TagInvalid("tag after ':' is empty")
    if not path:
        raise NameInvalid("the layout folder's path is missing: expected ocidir://PATH[:TAG]")
    return path, tag if colon else None, digest_text if at else None


def _check_layout(registry: str, repository: str, path: str | None) -> None:
    if registry or repository:
        raise NameInvalid("a layout reference has no registry or repository, only a path")
    if not path:
        raise NameInvalid("the layout folder's path is missing: expected ocidir://PATH[:TAG]")
    if ":" in path or "@" in path:
        raise NameInvalid(
            f"layout path {path!r} must not contain ':' or '@' (they separate the tag and digest)"
        )


def _split_registry(name: str) -> tuple[str, str]:
    """The registry and repository of `name`; the first component is a registry if it looks
    like a host (has '.' or ':', or is `localhost`), else the name is on Docker Hub."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first.lower() == "localhost"):
        return first, rest
    return DOCKER_HUB, name


def _normalize_registry(registry: str) -> str:
    """`registry` lowercased with Docker Hub's aliases folded into `docker.io`; checked."""
    if not registry:
        raise NameInvalid("registry must not be empty")
    if not registry.isascii():
        raise NameInvalid(f"registry {registry!r} must be ASCII")
    lowered = registry.lower()
    if lowered.startswith("["):
        port = _ipv6_port(lowered, registry)
    else:
        host, colon, port_text = lowered.partition(":")
        port = port_text if colon else None
        _check_hostname(host, registry)
        if port is None and "." not in host and host != "localhost":
            raise NameInvalid(
                f"registry {registry!r} would read as a namespace: use a host name with a '.', "
                "add a port, or use localhost"
            )
    if port is not None and (not _PORT.fullmatch(port) or not 0 < int(port) <= 65535):
        raise NameInvalid(
            f"registry {registry!r} has an invalid port {port!r}: expected a number from 1 to 65535"
        )
    return DOCKER_HUB if lowered in DOCKER_HUB_ALIASES else lowered


def _ipv6_port(lowered: str, registry: str) -> str | None:
    """The port text of a `[ipv6]` or `[ipv6]:port` registry, after checking the address."""
    end = lowered.find("]")
    if end < 0:
        raise NameInvalid(f"registry {registry!r}: the IPv6 address is missing its closing ']'")
    address, rest = lowered[1:end], lowered[end + 1 :]
    if not _is_ipv6(address):
        raise NameInvalid(f"registry {registry!r}: {address!r} is not an IPv6 address")
    if rest and not rest.startswith(":"):
        raise NameInvalid(f"registry {registry!r}: expected ':<port>' after the IPv6 address")
    return rest[1:] if rest else None


def _is_ipv6(address: str) -> bool:
    if not _IPV6_TEXT.fullmatch(address):
        return False  # ipaddress would also take a zone (`%eth0`), which a reference cannot hold
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def _check_hostname(host: str, registry: str) -> None:
    if not host:
        raise NameInvalid(f"registry {registry!r} has no host name")
    if not _HOSTNAME.fullmatch(host):
        raise NameInvalid(
            f"invalid registry host {host!r}: expected dot-separated labels of "
            "letters, digits and '-' (not at either end), or a bracketed IPv6 address"
        )


def _normalize_repository(registry: str, repository: str) -> str:
    """`repository`, under `library/` when it is a one-part Docker Hub name; checked."""
    if not repository:
        raise NameInvalid("repository name is missing")
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"{OFFICIAL_NAMESPACE}/{repository}"
    if "" in repository.split("/"):
        raise NameInvalid(f"repository name {repository!r} has an empty path component")
    if ".." in repository:
        raise NameInvalid(
            f"repository name {repository!r} contains '..': components are separated by a "
            "single '.', '_', '__' or dashes"
        )
    return validate_name(repository)


def _check_tag(tag: str) -> None:
    if not tag:
        raise TagInvalid("tag must not be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise TagInvalid(
            f"tag {tag!r} is {len(tag)} characters long; at most {MAX_TAG_LENGTH} are allowed"
        )
    validate_tag(tag)
