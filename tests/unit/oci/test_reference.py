"""References: Docker's normalization, the SPEC §1 examples, errors that say what is wrong."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, NameInvalid, OciError, TagInvalid
from dockyard.oci.reference import Reference

SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8
ID = "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "canonical", "familiar"),
    [
        # SPEC §1, verbatim
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None,
         "docker.io/library/nginx:1.25", "nginx:1.25"),
        ("ubuntu:24.04", "docker.io", "library/ubuntu", "24.04", None,
         "docker.io/library/ubuntu:24.04", "ubuntu:24.04"),
        ("jwilder/nginx-proxy:latest", "docker.io", "jwilder/nginx-proxy", "latest", None,
         "docker.io/jwilder/nginx-proxy:latest", "jwilder/nginx-proxy:latest"),
        ("ghcr.io/username/myapp:v1.0", "ghcr.io", "username/myapp", "v1.0", None,
         "ghcr.io/username/myapp:v1.0", "ghcr.io/username/myapp:v1.0"),
        ("gcr.io/google-containers/pause:3.6", "gcr.io", "google-containers/pause", "3.6", None,
         "gcr.io/google-containers/pause:3.6", "gcr.io/google-containers/pause:3.6"),
        ("registry.example.com/mycompany/myapp:v1.2.3", "registry.example.com", "mycompany/myapp",
         "v1.2.3", None, "registry.example.com/mycompany/myapp:v1.2.3",
         "registry.example.com/mycompany/myapp:v1.2.3"),
        ("localhost:5000/myapp:v1.0", "localhost:5000", "myapp", "v1.0", None,
         "localhost:5000/myapp:v1.0", "localhost:5000/myapp:v1.0"),
        # defaults, digests, hosts
        ("nginx", "docker.io", "library/nginx", "latest", None,
         "docker.io/library/nginx:latest", "nginx:latest"),
        (f"nginx@{SHA256}", "docker.io", "library/nginx", None, SHA256,
         f"docker.io/library/nginx@{SHA256}", f"nginx@{SHA256}"),
        (f"nginx:1.25@{SHA512}", "docker.io", "library/nginx", "1.25", SHA512,
         f"docker.io/library/nginx:1.25@{SHA512}", f"nginx:1.25@{SHA512}"),
        (f"127.0.0.1:5000/a/b:t@{SHA256}", "127.0.0.1:5000", "a/b", "t", SHA256,
         f"127.0.0.1:5000/a/b:t@{SHA256}", f"127.0.0.1:5000/a/b:t@{SHA256}"),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None, "[::1]:5000/x:y", "[::1]:5000/x:y"),
        ("[2001:db8::1]/team/app", "[2001:db8::1]", "team/app", "latest", None,
         "[2001:db8::1]/team/app:latest", "[2001:db8::1]/team/app:latest"),
        ("localhost/app", "localhost", "app", "latest", None,
         "localhost/app:latest", "localhost/app:latest"),
        ("myhost:443/a", "myhost:443", "a", "latest", None,
         "myhost:443/a:latest", "myhost:443/a:latest"),
        # Docker Hub's other names, and names that are not hosts
        ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None,
         "docker.io/library/nginx:latest", "nginx:latest"),
        ("registry-1.docker.io/library/nginx:1", "docker.io", "library/nginx", "1", None,
         "docker.io/library/nginx:1", "nginx:1"),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None,
         "docker.io/library/nginx:latest", "nginx:latest"),
        ("Docker.IO/jwilder/nginx-proxy", "docker.io", "jwilder/nginx-proxy", "latest", None,
         "docker.io/jwilder/nginx-proxy:latest", "jwilder/nginx-proxy:latest"),
        ("GHCR.io/user/app:V1", "ghcr.io", "user/app", "V1", None,
         "ghcr.io/user/app:V1", "ghcr.io/user/app:V1"),
        ("library/nginx/extra", "docker.io", "library/nginx/extra", "latest", None,
         "docker.io/library/nginx/extra:latest", "library/nginx/extra:latest"),
        ("docker.io/a.b/c", "docker.io", "a.b/c", "latest", None,
         "docker.io/a.b/c:latest", "docker.io/a.b/c:latest"),
        ("docker.io/localhost/c", "docker.io", "localhost/c", "latest", None,
         "docker.io/localhost/c:latest", "docker.io/localhost/c:latest"),
        ("a.b", "docker.io", "library/a.b", "latest", None,
         "docker.io/library/a.b:latest", "a.b:latest"),
        ("my_org/my__app-x:Tag_1.0-rc", "docker.io", "my_org/my__app-x", "Tag_1.0-rc", None,
         "docker.io/my_org/my__app-x:Tag_1.0-rc", "my_org/my__app-x:Tag_1.0-rc"),
        (f"{ID}:latest", "docker.io", f"library/{ID}", "latest", None,
         f"docker.io/library/{ID}:latest", f"{ID}:latest"),
    ],
)  # fmt: skip
def test_parse(
    text: str,
    registry: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    canonical: str,
    familiar: str,
) -> None:
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert ref.digest == (Digest.parse(digest) if digest else None)
    assert str(ref) == ref.common_name() == canonical
    assert ref.familiar() == familiar
    assert ref.reference == (digest or tag)
    assert Reference.parse(canonical) == ref
    assert Reference.parse(familiar) == ref


@pytest.mark.parametrize(
    ("text", "error", "says"),
    [
        ("", NameInvalid, "reference is empty"),
        (" nginx", NameInvalid, "must not contain whitespace"),
        ("nginx:1.25\n", NameInvalid, "must not contain whitespace"),
        (ID, NameInvalid, "64-character hex string is an image ID"),
        (":1.0", NameInvalid, "repository name is missing"),
        (f"@{SHA256}", NameInvalid, "repository name is missing"),
        ("Nginx:1.25", NameInvalid, "repository name 'library/Nginx' must be lowercase"),
        ("MyOrg/app", NameInvalid, "repository name 'MyOrg/app' must be lowercase"),
        ("ghcr.io/User/app", NameInvalid, "repository name 'User/app' must be lowercase"),
        ("org//app", NameInvalid, "repository name 'org//app' has an empty path component"),
        ("org/app/", NameInvalid, "has an empty path component"),
        ("ghcr.io/", NameInvalid, "repository name is missing"),
        ("myorg/a..b", NameInvalid, "repository name 'myorg/a..b' contains '..'"),
        ("ghcr.io/a/../b", NameInvalid, "contains '..'"),
        ("org/-app", NameInvalid, "invalid repository name 'org/-app'"),
        ("org/app_", NameInvalid, "invalid repository name"),
        ("org/ñginx", NameInvalid, "invalid repository name"),
        ("org/" + "a" * 252, NameInvalid, "256 characters long; at most 255"),
        ("a" * 250, NameInvalid, "258 characters long"),  # counted with `library/`
        ("localhost:abc/x", NameInvalid, "registry 'localhost:abc' has an invalid port 'abc'"),
        ("localhost:/x", NameInvalid, "has an invalid port ''"),
        ("localhost:0/x", NameInvalid, "invalid port '0'"),
        ("localhost:65536/x", NameInvalid, "expected a number from 1 to 65535"),
        ("localhost:5000:1/x", NameInvalid, "invalid port '5000:1'"),
        ("localhost:" + "9" * 5000 + "/x", NameInvalid, "invalid port"),
        ("localhost:\u0665\u0660\u0660\u0660/x", NameInvalid, "must be ASCII"),  # Arabic digits
        (":5000/x", NameInvalid, "registry ':5000' has no host name"),
        ("exa_mple.com/x", NameInvalid, "invalid registry host 'exa_mple.com'"),
        ("-bad.com/x", NameInvalid, "invalid registry host '-bad.com'"),
        ("bad-.com/x", NameInvalid, "invalid registry host"),
        ("a..b/x", NameInvalid, "invalid registry host 'a..b'"),
        ("ex\u00e4mple.com/x", NameInvalid, "must be ASCII"),
        ("\u212a8s.io/x", NameInvalid, "must be ASCII"),  # Kelvin sign lowercases to 'k'
        ("[::1/x", NameInvalid, "missing its closing ']'"),
        ("[::g]:5000/x", NameInvalid, "'::g' is not an IPv6 address"),
        ("[1:2:3]/x", NameInvalid, "is not an IPv6 address"),
        ("[fe80::1%eth0]/x", NameInvalid, "is not an IPv6 address"),
        ("[::1]x/y", NameInvalid, "expected ':<port>' after the IPv6 address"),
        ("[::1]:99999/y", NameInvalid, "invalid port '99999'"),
        ("nginx:", TagInvalid, "tag after ':' is empty"),
        ("nginx:.hidden", TagInvalid, "invalid tag '.hidden'"),
        ("nginx:-x", TagInvalid, "not starting with '.' or '-'"),
        ("nginx:" + "a" * 129, TagInvalid, "is 129 characters long; at most 128"),
        ("nginx:v1+b", TagInvalid, "invalid tag 'v1+b'"),
        ("nginx@", DigestInvalid, "digest after '@' is empty"),
        ("nginx@sha256:abc", DigestInvalid, "invalid sha256 digest 'sha256:abc'"),
        ("nginx@md5:" + "a" * 32, DigestInvalid, "unsupported digest algorithm 'md5'"),
        ("nginx@latest", DigestInvalid, "expected algorithm:hex"),
        (f"nginx@{SHA256}@{SHA256}", DigestInvalid, "invalid digest"),
        (f"nginx@{SHA256.upper()}", DigestInvalid, "invalid digest"),
    ],
)
def test_invalid_references_say_what_is_wrong(text: str, error: type[OciError], says: str) -> None:
    with pytest.raises(error) as caught:
        Reference.parse(text)
    assert type(caught.value) is error
    message = caught.value.message
    assert message.startswith(f"invalid reference {text!r}: ")
    assert says in message
    assert str(caught.value) == message


def test_tag_digest_and_reference_property() -> None:
    digest = Digest.parse(SHA256)
    pinned = Reference.parse(f"ghcr.io/org/app:1.0@{SHA256}")
    assert (pinned.tag, pinned.digest, pinned.reference) == ("1.0", digest, SHA256)
    tagged = Reference.parse("ghcr.io/org/app:1.0")
    assert (tagged.tag, tagged.digest, tagged.reference) == ("1.0", None, "1.0")


def test_registry_host_is_where_the_api_is_served() -> None:
    assert Reference.parse("nginx").registry_host == "registry-1.docker.io"
    assert Reference.parse("ghcr.io/a/b").registry_host == "ghcr.io"
    assert Reference.parse("localhost:5000/a").registry_host == "localhost:5000"
    assert Reference.parse("[::1]:5000/a").registry_host == "[::1]:5000"


def test_names() -> None:
    assert Reference.parse("nginx:1").name == "docker.io/library/nginx"
    assert Reference.parse("nginx:1").familiar_name() == "nginx"
    assert Reference.parse("jwilder/nginx-proxy").familiar_name() == "jwilder/nginx-proxy"
    assert Reference.parse("ghcr.io/u/a:1").familiar_name() == "ghcr.io/u/a"


def test_setters_return_new_values() -> None:
    ref = Reference.parse(f"nginx:1.25@{SHA256}")
    assert ref.with_tag("1.26") == Reference.parse("nginx:1.26")  # a new tag drops the digest
    assert ref.with_digest(SHA512) == Reference.parse(f"nginx:1.25@{SHA512}")
    assert ref.with_digest(Digest.parse(SHA512)) == ref.with_digest(SHA512)
    assert ref.with_registry("ghcr.io") == Reference.parse(f"ghcr.io/library/nginx:1.25@{SHA256}")
    assert ref.with_repository("other") == Reference.parse(f"other:1.25@{SHA256}")
    assert ref == Reference.parse(f"nginx:1.25@{SHA256}")  # unchanged
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]


def test_setters_normalize_like_parse() -> None:
    local = Reference.parse("localhost:5000/myapp:v1")
    assert local.with_registry("index.docker.io") == Reference.parse("myapp:v1")
    assert local.with_registry("Docker.io").repository == "library/myapp"
    hub = Reference.parse("nginx")
    assert hub.with_repository("redis").repository == "library/redis"
    assert hub.with_registry("GHCR.IO").registry == "ghcr.io"


@pytest.mark.parametrize(
    ("change", "error", "says"),
    [
        (lambda r: r.with_tag(""), TagInvalid, "tag must not be empty"),
        (lambda r: r.with_tag("a/b"), TagInvalid, "invalid tag 'a/b'"),
        (lambda r: r.with_digest("sha256:xyz"), DigestInvalid, "invalid sha256 digest"),
        (lambda r: r.with_registry(""), NameInvalid, "registry must not be empty"),
        (lambda r: r.with_registry("myhost"), NameInvalid, "would read as a namespace"),
        (lambda r: r.with_registry("ghcr.io/x"), NameInvalid, "invalid registry host"),
        (lambda r: r.with_repository("A"), NameInvalid, "must be lowercase"),
        (lambda r: r.with_repository(""), NameInvalid, "repository name is missing"),
    ],
)
def test_setters_validate(
    change: Callable[[Reference], Reference], error: type[OciError], says: str
) -> None:
    with pytest.raises(error) as caught:
        change(Reference.parse("nginx:1"))
    assert says in caught.value.message


def test_constructor_normalizes_and_defaults_the_tag() -> None:
    ref = Reference("index.docker.io", "nginx")
    assert ref == Reference.parse("nginx:latest")
    assert Reference("ghcr.io", "a", digest=Digest.parse(SHA256)).tag is None


def test_references_are_hashable_values() -> None:
    refs = {Reference.parse("nginx"), Reference.parse("docker.io/library/nginx:latest")}
    assert len(refs) == 1
    assert repr(Reference.parse("nginx")) == "Reference('docker.io/library/nginx:latest')"


# --- properties -------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_port = st.integers(1, 65535).map(str)
_domain = st.lists(_label, min_size=2, max_size=4).map(".".join)
_hosts = st.one_of(
    st.tuples(_domain, st.none() | _port),
    st.tuples(st.just("localhost"), st.none() | _port),
    st.tuples(_label, _port),
    st.tuples(st.ip_addresses(v=4).map(str), st.none() | _port),
    st.tuples(st.ip_addresses(v=6).map(lambda a: f"[{a}]"), st.none() | _port),
)
registries = st.one_of(
    _hosts.map(lambda hp: hp[0] if hp[1] is None else f"{hp[0]}:{hp[1]}"),
    st.sampled_from(["docker.io", "index.docker.io", "registry-1.docker.io", "DOCKER.IO"]),
)
_component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,6}){0,2}", fullmatch=True)
repositories = st.lists(_component, min_size=1, max_size=4).map("/".join)
tags = st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", fullmatch=True)
digests = st.one_of(
    st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: Digest("sha256", h)),
    st.text("0123456789abcdef", min_size=128, max_size=128).map(lambda h: Digest("sha512", h)),
)


@given(registries, repositories, st.none() | tags, st.none() | digests)
@example("docker.io", "a.b/c", None, None)
@example("docker.io", "localhost/c", "t", None)
@example("docker.io", ID, None, None)
def test_parse_round_trips_every_valid_reference(
    registry: str, repository: str, tag: str | None, digest: Digest | None
) -> None:
    ref = Reference(registry, repository, tag, digest)
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar()) == ref
    moved = ref.with_registry("localhost:5000").with_tag("x").with_digest(Digest.of(b""))
    assert Reference.parse(str(moved)) == moved


_reference_alphabet = st.sampled_from([*"abcAB019.:/@-_[]%", "sha256:", "localhost"])
_reference_like = st.lists(_reference_alphabet, max_size=30).map("".join)


@given(st.one_of(st.text(max_size=80), _reference_like))
@example(f"nginx:1@{SHA256}")
@example("[::1]:5000/x:y")
@example("localhost:" + "1" * 5000 + "/x")
def test_parse_raises_only_its_documented_errors(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except (NameInvalid, TagInvalid, DigestInvalid) as exc:
        message = exc.message
    else:
        assert Reference.parse(str(ref)) == ref
        assert Reference.parse(ref.familiar()) == ref
        return
    assert message.startswith(f"invalid reference {text!r}: ")


# --- layout (ocidir) references ----------------------------------------------------------------


def test_layout_references_print_and_parse_with_their_scheme() -> None:
    ref = Reference.layout("/data/out", "v1")
    assert (ref.scheme, ref.path, ref.registry, ref.repository) == ("ocidir", "/data/out", "", "")
    assert str(ref) == "ocidir:///data/out:v1" == ref.familiar()
    assert ref.name == "ocidir:///data/out"
    assert Reference.parse("ocidir:///data/out:v1") == ref
    assert Reference.layout("rel/dir").tag == "latest"
    pinned = Reference.parse(f"ocidir://rel/dir@{SHA256}")
    assert (pinned.path, pinned.tag, str(pinned.digest)) == ("rel/dir", None, SHA256)
    assert str(pinned) == f"ocidir://rel/dir@{SHA256}"


def test_layout_setters_keep_the_scheme_and_path() -> None:
    ref = Reference.layout("out", "v1")
    assert ref.with_tag("v2") == Reference.layout("out", "v2")
    assert ref.with_digest(SHA256) == Reference.layout("out", "v1", Digest.parse(SHA256))
    for wrong in (lambda: ref.with_registry("localhost:5000"), lambda: ref.with_repository("x")):
        with pytest.raises(NameInvalid, match="OCI layout folder"):
            wrong()


def test_layout_and_registry_references_never_compare_equal() -> None:
    layouts = {Reference.layout("a", "1"), Reference.layout("a", "1"), Reference.layout("b", "1")}
    assert len(layouts) == 2
    assert Reference.layout("a", "1") != Reference("localhost", "a", "1")
    assert Reference.parse("ocidir://a:1") not in {Reference.parse("localhost/a:1")}


def test_registry_only_parts_refuse_a_layout_reference() -> None:
    with pytest.raises(NameInvalid, match="ocidir://out:1 names an OCI layout folder"):
        _ = Reference.layout("out", "1").registry_host


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("ocidir://", NameInvalid),
        ("ocidir://:v1", NameInvalid),
        ("ocidir://dir:", TagInvalid),
        ("ocidir://dir@", DigestInvalid),
        ("ocidir://dir@sha256:short", DigestInvalid),
        ("ocidir://dir:Bad/Tag", TagInvalid),
    ],
)
def test_invalid_layout_references_say_what_is_wrong(text: str, error: type[OciError]) -> None:
    with pytest.raises(error, match=f"invalid reference {text!r}"):
        Reference.parse(text)


@pytest.mark.parametrize(
    "parts",
    [("x.io", "", "out"), ("", "repo", "out"), ("", "", ""), ("", "", "a:b"), ("", "", "a@b")],
)
def test_a_layout_reference_is_a_path_only(parts: tuple[str, str, str]) -> None:
    registry, repository, path = parts
    with pytest.raises(NameInvalid):
        Reference(registry, repository, "v1", None, "ocidir", path)
    with pytest.raises(NameInvalid, match="no path"):
        Reference("localhost", "repo", path="out")


_paths = st.from_regex(r"[a-zA-Z0-9._/ -]{1,20}", fullmatch=True)


@given(_paths, st.none() | tags, st.none() | digests)
def test_layout_references_round_trip(path: str, tag: str | None, digest: Digest | None) -> None:
    ref = Reference.layout(path, tag, digest)
    assert Reference.parse(str(ref)) == ref
    assert hash(Reference.parse(str(ref))) == hash(ref)
    assert Reference.parse(str(ref.with_tag("x"))).path == path
