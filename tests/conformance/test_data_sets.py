"""The main-branch conformance program's data-set workflows (`TestAll` in `conformance/run.go`)
for digest algorithms and tag parameters, as its run with tag parameters and sha512 data
switched on (`OCI_API_MANIFESTS_TAG_PARAM=true`, `OCI_DATA_SHA512=true`) does them.

Each data set is pushed, listed, read back (HEAD and GET, by tag and by digest), its referrers
queried, and deleted, in the Go order: one test per step of that loop, failing with every
item of the data set that failed (as Go joins them). A class per data set; the server and
repository are those of the v1.1 port's fixtures (`conftest.py`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from conformance.datasets import (
    MANIFEST_ACCEPT,
    DataSet,
    applied_tags,
    problems_with_digest_header,
    problems_with_manifest,
    push_blob,
    push_manifest,
    sha512_data,
    subject_sha512_data,
    tag_param_data,
)
from conformance.suite import INDEX_MEDIA_TYPE, Conformance

pytestmark = [pytest.mark.peers, pytest.mark.asyncio(loop_scope="module")]

# TestPushBlobAny tries every blob API; here they take turns, so each sees every algorithm
BLOB_APIS = ("post-put", "post-only", "patch-stream", "patch-chunked")


def no_problems(found: list[str]) -> None:
    assert not found, "\n".join(found)


@pytest.fixture(scope="class")
def data(request: pytest.FixtureRequest, conformance: Conformance) -> DataSet:
    """The class's data set, generated afresh for each server the module runs against."""
    make: Callable[[], DataSet] = request.cls.make
    return make()


class DataSetWorkflow:
    """run.go TestAll, the loop over data sets: push, tag-list, head, pull, referrers, delete."""

    make: ClassVar[Callable[[], DataSet]]

    # --- push (TestPush) ---------------------------------------------------------------------

    async def test_push_blobs(self, conformance: Conformance, data: DataSet) -> None:
        found: list[str] = []
        for i, dig in enumerate(data.blobs):
            found += await push_blob(conformance.client, data, dig, BLOB_APIS[i % len(BLOB_APIS)])
        no_problems(found)

    async def test_push_manifests_by_digest(self, conformance: Conformance, data: DataSet) -> None:
        """TestPushManifestDigest: with tag parameters, every tag of the manifest goes as
        `?tag=` and must come back in `OCI-Tag`."""
        found: list[str] = []
        for dig in data.order:
            tags = data.tags_of(dig) if data.tag_parameters else []
            resp, problems = await push_manifest(conformance.client, data, dig, dig, tags)
            found += problems
            for tag in tags:
                if tag in applied_tags(resp):
                    data.tag_pushed.add(tag)
                else:
                    found.append(f"header missing OCI-Tag: {tag}: {resp.describe()}")
        no_problems(found)

    async def test_push_manifests_by_tag(self, conformance: Conformance, data: DataSet) -> None:
        """TestPushManifestTag, for the tags a push by digest did not already apply."""
        found: list[str] = []
        for tag, dig in data.tags.items():
            if tag in data.tag_pushed:
                continue
            _, problems = await push_manifest(conformance.client, data, tag, dig)
            found += problems
            if not problems:
                data.tag_pushed.add(tag)
        no_problems(found)

    # --- tag-list (TestList) -----------------------------------------------------------------

    async def test_tag_list(self, conformance: Conformance, data: DataSet) -> None:
        client = conformance.client
        resp = await client.do("GET", "/v2/<name>/tags/list")
        assert resp.status in (200, 404), resp.describe()
        listed: list[str] = (resp.json().get("tags") or []) if resp.status == 200 else []
        found = [f"missing tag {tag!r} from listing" for tag in data.tags if tag not in listed]
        if len(listed) >= 2:
            ordered = sorted(listed)
            end = len(ordered) // 2
            last = ordered[end - 1]
            resp = await client.do("GET", "/v2/<name>/tags/list", query={"last": last})
            assert resp.status == 200, resp.describe()
            partial = resp.json().get("tags") or []
            found += [f"{t!r} returned after last={last!r}" for t in ordered[:end] if t in partial]
            found += [
                f"{t!r} missing after last={last!r}" for t in ordered[end:] if t not in partial
            ]
        no_problems(found)

    # --- head (TestHead) ---------------------------------------------------------------------

    async def test_head_manifests_by_tag(self, conformance: Conformance, data: DataSet) -> None:
        await self._read_manifests(conformance, data, "HEAD", data.tags.items())

    async def test_head_manifests_by_digest(self, conformance: Conformance, data: DataSet) -> None:
        await self._read_manifests(conformance, data, "HEAD", [(d, d) for d in data.order])

    async def test_head_blobs(self, conformance: Conformance, data: DataSet) -> None:
        await self._read_blobs(conformance, data, "HEAD")

    # --- pull (TestPull) ---------------------------------------------------------------------

    async def test_pull_manifests_by_tag(self, conformance: Conformance, data: DataSet) -> None:
        await self._read_manifests(conformance, data, "GET", data.tags.items())

    async def test_pull_manifests_by_digest(self, conformance: Conformance, data: DataSet) -> None:
        await self._read_manifests(conformance, data, "GET", [(d, d) for d in data.order])

    async def test_pull_blobs(self, conformance: Conformance, data: DataSet) -> None:
        await self._read_blobs(conformance, data, "GET")

    async def _read_manifests(
        self, conformance: Conformance, data: DataSet, method: str, refs: Any
    ) -> None:
        found: list[str] = []
        for reference, dig in refs:
            resp = await conformance.client.do(
                method, f"/v2/<name>/manifests/{reference}", headers=MANIFEST_ACCEPT
            )
            found += problems_with_manifest(resp, data, dig, body=method == "GET")
        no_problems(found)

    async def _read_blobs(self, conformance: Conformance, data: DataSet, method: str) -> None:
        found: list[str] = []
        for dig, blob in data.blobs.items():
            resp = await conformance.client.do(method, f"/v2/<name>/blobs/{dig}")
            if resp.status != 200 or resp.body != (blob if method == "GET" else b""):
                found.append(f"expected 200 and the blob: {resp.describe()}")
            elif resp.header("Content-Length") != str(len(blob)):
                found.append(f"Content-Length mismatch: {resp.describe()}")
            found += problems_with_digest_header(resp, dig)
        no_problems(found)

    # --- referrers (TestReferrers) -----------------------------------------------------------

    async def test_referrers(self, conformance: Conformance, data: DataSet) -> None:
        if not data.referrers:
            pytest.skip("the data set has no referrers")
        found: list[str] = []
        for subject, goals in data.referrers.items():
            listed = await self._referrers(conformance, subject, None, found)
            found += [
                f"{g['digest']} not listed for {subject}" for g in goals if not _has(listed, g)
            ]
            for artifact_type in {g["artifactType"] for g in goals}:
                listed = await self._referrers(conformance, subject, artifact_type, found)
                wanted = [g for g in goals if g["artifactType"] == artifact_type]
                found += [f"{g['digest']} not listed" for g in wanted if not _has(listed, g)]
                found += [
                    f"filter {artifact_type} listed {d}"
                    for d in listed
                    if d.get("artifactType") != artifact_type
                ]
        no_problems(found)

    async def _referrers(
        self, conformance: Conformance, subject: str, artifact_type: str | None, found: list[str]
    ) -> list[dict[str, Any]]:
        query = {"artifactType": artifact_type} if artifact_type else None
        resp = await conformance.client.do("GET", f"/v2/<name>/referrers/{subject}", query=query)
        if resp.status != 200 or resp.header("Content-Type") != INDEX_MEDIA_TYPE:
            found.append(f"expected 200 and an index: {resp.describe()}")
            return []
        index = resp.json()
        if index.get("mediaType") != INDEX_MEDIA_TYPE or index.get("schemaVersion") != 2:
            found.append(f"not a valid OCI index: {resp.describe()}")
        applied = {f.strip() for f in resp.header("OCI-Filters-Applied").split(",")}
        if artifact_type and "artifactType" not in applied:
            found.append(f"no OCI-Filters-Applied: artifactType: {resp.describe()}")
        manifests: list[dict[str, Any]] = index.get("manifests") or []
        return manifests

    # --- delete (TestDelete) -----------------------------------------------------------------

    async def test_delete_tags(self, conformance: Conformance, data: DataSet) -> None:
        found: list[str] = []
        for tag in data.tags:
            if tag in data.tag_pushed:
                found += await _delete(conformance, f"/v2/<name>/manifests/{tag}", (202,))
        no_problems(found)

    async def test_delete_manifests(self, conformance: Conformance, data: DataSet) -> None:
        found: list[str] = []
        for dig in reversed(data.order):
            found += await _delete(conformance, f"/v2/<name>/manifests/{dig}", (202,))
        no_problems(found)

    async def test_delete_blobs(self, conformance: Conformance, data: DataSet) -> None:
        found: list[str] = []
        for dig in data.blobs:
            found += await _delete(conformance, f"/v2/<name>/blobs/{dig}", (202, 404))
        no_problems(found)


def _has(listed: list[dict[str, Any]], goal: dict[str, Any]) -> bool:
    """run.go's match of a referrers entry: digest, media type, size, artifact type, and the
    goal's annotations among the entry's."""
    return any(
        entry.get("digest") == goal["digest"]
        and entry.get("mediaType") == goal["mediaType"]
        and entry.get("size") == goal["size"]
        and entry.get("artifactType") == goal["artifactType"]
        and goal["annotations"].items() <= (entry.get("annotations") or {}).items()
        for entry in listed
    )


async def _delete(conformance: Conformance, path: str, allowed: tuple[int, ...]) -> list[str]:
    """A delete answered with one of `allowed`, after which a HEAD finds nothing (the
    `atomic` checks, on by default)."""
    client = conformance.client
    resp = await client.do("DELETE", path)
    if resp.status not in allowed:
        return [f"expected one of {allowed}: {resp.describe()}"]
    resp = await client.do("HEAD", path, headers=MANIFEST_ACCEPT)
    return [] if resp.status == 404 else [f"still there after the delete: {resp.describe()}"]


class TestSha512(DataSetWorkflow):
    """`sha512`: pushed by digest only (a tag would be digested with sha256)."""

    make = staticmethod(sha512_data)


class TestTagParamSha256(DataSetWorkflow):
    make = staticmethod(lambda: tag_param_data("sha256"))


class TestTagParamSha512(DataSetWorkflow):
    """`tag-param-sha512`: the data set the upstream program failed 12 checks on (each tag
    was pushed as a tag and stored under a sha256 digest)."""

    make = staticmethod(lambda: tag_param_data("sha512"))


class TestArtifactsWithSubjectSha512(DataSetWorkflow):
    make = staticmethod(subject_sha512_data)


async def test_data_sets_use_their_algorithm_throughout() -> None:
    """Every digest a sha512 data set pushes or names is sha512 (the generator's own check)."""
    for data in (sha512_data(), tag_param_data("sha512"), subject_sha512_data()):
        for raw in data.manifests.values():
            named = [m.group(0) for m in _DIGESTS.finditer(raw.decode())]
            assert named, raw
            assert all(d.startswith("sha512:") for d in named), raw
        assert all(d.startswith("sha512:") for d in (*data.blobs, *data.manifests))
        for dig, raw in data.manifests.items():
            assert json.loads(raw)["schemaVersion"] == 2
            assert dig == "sha512:" + hashlib.sha512(raw).hexdigest()


_DIGESTS = re.compile(r"sha(?:256|512):[0-9a-f]+")
