"""The handler of `customization.build` jobs: one build of one target of a customization.

A build runs as a subject that is a member of the customization's organization and nothing
else, so it reads and writes only there, through the same store services a push uses (events
and webhooks follow). A build refused for its inputs fails with the reason and keeps the last
good image; a build that finds a newer one of the same target queued leaves the work to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from dockyard.build.builder import Builder, BuildResult, PackageLayer
from dockyard.build.errors import BuildError, InputUnavailable
from dockyard.build.model import Customization, Target
from dockyard.hub.customizations import LOCAL_REGISTRY, Customizations, builder_subject
from dockyard.hub.jobs import Job, JobContext, Retry
from dockyard.metadata import customizations as rows
from dockyard.metadata.customizations import BuildRow
from dockyard.oci.errors import OciError, UpstreamUnavailable
from dockyard.registry.service import Registry
from dockyard.registry.target import StoreTarget

log = logging.getLogger(__name__)
MAX_LOG = 256 * 1024


class CustomizationBuilds:
    """Runs builds; `packages` makes the package layer for a build (None: no sources)."""

    def __init__(
        self,
        registry: Registry,
        workdir: Path,
        packages: Callable[[], PackageLayer | None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.db = registry.store.db
        self.workdir = workdir
        self.packages = packages

    async def __call__(self, job: Job, ctx: JobContext) -> None:
        build_id = int(job.payload["build_id"])
        async with self.db.read() as conn:
            build = await rows.get_build(conn, build_id)
            row = (
                await rows.get_customization_by_id(conn, build.customization_id)
                if build is not None
                else None
            )
            newer = (
                await rows.find_builds(conn, build.customization_id, limit=50)
                if build is not None
                else []
            )
        if build is None or row is None:
            return  # the customization was deleted: nothing to build
        if any(b.id > build.id and b.status == "queued" and _same_target(b, build) for b in newer):
            await self._finish(build_id, "superseded", error="a newer build of this target")
            return
        custom = Customizations.document(row)
        which = _target(custom, build)
        if which is None:
            await self._finish(build_id, "failed", error="the customization no longer has it")
            return
        await self._run(job, build, row.namespace, custom, which)

    async def _run(
        self, job: Job, build: BuildRow, namespace: str, custom: Customization, which: Target
    ) -> None:
        started = time.time()
        async with self.db.write() as conn:
            await rows.update_build(conn, build.id, status="running", started_at=started)
            previous = await rows.last_good_build(
                conn, build.customization_id, build.repository_id, build.base_tag
            )
        lines: list[str] = []

        def note(line: str) -> None:
            lines.append(f"{time.time() - started:7.2f}s {line}")

        note(
            f"build {build.id} of {which.destination}:{custom.result_tag(which)} ({build.trigger})"
        )
        target = StoreTarget(self.registry, builder_subject(namespace))
        self.workdir.mkdir(parents=True, exist_ok=True)
        builder = Builder(target, self.workdir, packages=self.packages())
        outputs = orjson.loads(previous.outputs) if previous and previous.outputs else None
        try:
            result = await builder.build(custom, which, LOCAL_REGISTRY, outputs, note)
        except (InputUnavailable, UpstreamUnavailable, ConnectionError, TimeoutError) as exc:
            if job.attempts >= job.max_attempts:
                note(f"failed: could not reach an input, {job.attempts} times: {exc}")
                await self._finish(build.id, "failed", error=str(exc), log=lines)
                return
            note(f"could not reach an input: {exc}; trying again later")
            await self._finish(build.id, "queued", log=lines)
            raise Retry(str(exc)) from exc
        except (BuildError, OciError) as exc:
            message = getattr(exc, "message", str(exc))
            note(f"failed: {message}")
            await self._finish(build.id, "failed", error=message, log=lines)
            return
        changes = _changes(
            orjson.loads(previous.lock) if previous and previous.lock else None, result
        )
        unchanged = previous is not None and previous.result_digest == str(result.index.digest)
        note("nothing changed: the image is the one built before" if unchanged else "done")
        await self._finish(
            build.id,
            "unchanged" if unchanged else "succeeded",
            log=lines,
            lock=orjson.dumps(result.lock).decode(),
            changes=orjson.dumps(changes).decode(),
            result_digest=str(result.index.digest),
            outputs=orjson.dumps(result.outputs()).decode(),
        )

    async def _finish(
        self, build_id: int, status: str, *, log: list[str] | None = None, **values: Any
    ) -> None:
        if log is not None:
            text = "\n".join(log) + "\n"
            values["log"] = text[-MAX_LOG:]
        if status != "queued":
            values["finished_at"] = time.time()
        async with self.db.write() as conn:
            await rows.update_build(conn, build_id, status=status, **values)


def _same_target(a: BuildRow, b: BuildRow) -> bool:
    return (a.repository_id, a.base_tag) == (b.repository_id, b.base_tag)


def _target(custom: Customization, build: BuildRow) -> Target | None:
    for target in custom.targets:
        if (target.destination, target.base_tag) == (build.repository, build.base_tag):
            return target
    return None


def _changes(before: dict[str, Any] | None, result: BuildResult) -> dict[str, Any]:
    """What moved since the last good build: the base, artifacts, and packages up or down."""
    after = result.lock
    if before is None:
        return {"first": True}
    changes: dict[str, Any] = {}
    if before.get("base") != after.get("base"):
        changes["base"] = {"from": before.get("base"), "to": after.get("base")}
    for platform, now in (after.get("platforms") or {}).items():
        then = (before.get("platforms") or {}).get(platform) or {}
        entry: dict[str, Any] = {}
        if then.get("artifacts") != now.get("artifacts"):
            entry["artifacts"] = {"from": then.get("artifacts"), "to": now.get("artifacts")}
        old = _versions(then.get("packages"))
        new = _versions(now.get("packages"))
        moved = {
            name: {"from": old.get(name), "to": new.get(name)}
            for name in sorted(old.keys() | new.keys())
            if old.get(name) != new.get(name)
        }
        if moved:
            entry["packages"] = moved
        if entry:
            changes[platform] = entry
    return changes


def _versions(lock: Any) -> dict[str, str]:
    if not isinstance(lock, dict):
        return {}
    return {p["name"]: p["version"] for p in lock.get("packages", []) if isinstance(p, dict)}
