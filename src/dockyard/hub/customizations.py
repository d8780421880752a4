"""Customizations of mirrored images: who may keep which, the tags they own, and their builds.

Rules (seed 002, Docker's customization docs): a customization builds on tags of mirrored
image repositories of one organization; anyone who may push to all of them may create one,
and edit or delete those they created; the organization's owners manage all. Its result tags
(`3.13_custom`) are its own: a suffix that would take a tag it does not own is refused. Every
create and edit queues a build of each target (`customization.build` jobs); deleting stops
the rebuilds and keeps the built tags unless asked to delete them too.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.auth.policy import Action, Role, Subject, may_manage
from dockyard.build.basecache import read_base
from dockyard.build.model import Customization, from_fields, split_reference, to_fields
from dockyard.build.packages import PackageLayers
from dockyard.build.plan import plan
from dockyard.build.rootfs import image_for_platform
from dockyard.hub.errors import Conflict, Invalid, NotFound
from dockyard.hub.jobs import JobQueue
from dockyard.metadata import accounts as account_rows
from dockyard.metadata import customizations as rows
from dockyard.metadata import mirrors as mirror_rows
from dockyard.metadata import repositories as repository_rows
from dockyard.metadata.customizations import BuildRow, CustomizationRow
from dockyard.oci.descriptor import Platform
from dockyard.oci.errors import Denied, NameUnknown, Unauthorized
from dockyard.oci.names import namespace_of
from dockyard.oci.reference import Reference
from dockyard.registry.service import Registry
from dockyard.registry.target import StoreTarget

BUILD_JOB = "customization.build"
LOCAL_REGISTRY = "dockyard.local"  # a reference's registry part means nothing to the store
_BUILD_ATTEMPTS = 3


def builder_subject(namespace: str) -> Subject:
    """Who a build (or a plan) of `namespace`'s customization acts as: a member there, and
    nowhere else."""
    return Subject(name="dockyard-builder", roles={namespace: Role.MEMBER})


class Customizations:
    """Creating, reading, editing and deleting customizations, and queueing their builds
    (`wake`: poke the local worker after something was queued)."""

    def __init__(
        self,
        registry: Registry,
        queue: JobQueue,
        *,
        wake: Callable[[], None] = lambda: None,
        packages: Callable[[], PackageLayers | None] = lambda: None,
        workdir: Path | None = None,
    ) -> None:
        self.registry = registry
        self.db = registry.store.db
        self.queue = queue
        self.wake = wake
        self.packages = packages
        self.workdir = workdir

    async def prepare(self, subject: Subject, custom: Customization) -> list[dict[str, Any]]:
        """What building `custom` would do (the review step), resolved to digests, after the
        same checks as a create (or as an edit, when it names its id); nothing is written."""
        owned_by = None
        if custom.id is not None:
            owned_by = (await self._editable(subject, custom.id)).id
        namespace = await self._check(subject, custom, owned_by=owned_by)
        place = StoreTarget(self.registry, builder_subject(namespace))
        return await plan(place, custom, LOCAL_REGISTRY, self.packages(), self.workdir)

    async def create(self, subject: Subject, custom: Customization) -> CustomizationRow:
        """Keep `custom` and queue a build of each of its targets."""
        namespace = await self._check(subject, custom, owned_by=None)
        uid = secrets.token_hex(8)
        document = orjson.dumps(to_fields(custom.model_copy(update={"id": None}))).decode()
        now = time.time()
        async with self._owning() as conn:
            namespace_row = await account_rows.namespace_by_name(conn, namespace)
            assert namespace_row is not None  # _check found the repositories in it
            row_id = await rows.insert_customization(
                conn,
                uid=uid,
                namespace_id=namespace_row.id,
                name=custom.name,
                document=document,
                created_by=subject.name or subject.org or "",
                now=now,
            )
            await self._set_targets(conn, row_id, custom, "created")
        self.wake()
        return await self.get(subject, uid)

    async def edit(self, subject: Subject, uid: str, custom: Customization) -> CustomizationRow:
        """Replace a customization's document and rebuild each of its targets."""
        current = await self._editable(subject, uid)
        await self._check(subject, custom, owned_by=current.id)
        document = orjson.dumps(to_fields(custom.model_copy(update={"id": None}))).decode()
        async with self._owning() as conn:
            await rows.update_customization(
                conn, current.id, name=custom.name, document=document, now=time.time()
            )
            await self._set_targets(conn, current.id, custom, "edited")
        self.wake()
        return await self.get(subject, uid)

    @contextlib.asynccontextmanager
    async def _owning(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that takes result tags: a tag another customization took
        meanwhile (the unique key of its targets) is a `Conflict`."""
        try:
            async with self.db.write() as conn:
                yield conn
        except IntegrityError:
            raise Conflict(
                "another customization took one of these tags meanwhile: choose another tag_suffix",
                {"field": "tag_suffix"},
            ) from None

    async def _set_targets(
        self, conn: AsyncConnection, customization_id: int, custom: Customization, trigger: str
    ) -> None:
        """Record `custom`'s targets (and the tags they own) and queue a build of each."""
        targets = await self._targets(conn, custom)
        await rows.set_targets(conn, customization_id, targets)
        for repository_id, base_tag, _ in targets:
            await self.queue_build(conn, customization_id, repository_id, base_tag, trigger, None)

    async def delete(self, subject: Subject, uid: str, *, delete_tags: bool = False) -> None:
        """Stop rebuilding; the built tags stay unless `delete_tags`."""
        current = await self._editable(subject, uid)
        if delete_tags:
            for target in current.targets:
                await self.registry.repositories.require(subject, target.repository, Action.DELETE)
        async with self.db.write() as conn:
            await rows.delete_customization(conn, current.id)
            if delete_tags:
                for target in current.targets:
                    await repository_rows.delete_tag(conn, target.repository_id, target.result_tag)

    async def get(self, subject: Subject, uid: str) -> CustomizationRow:
        """A customization `subject` may see (pull from one of its repositories)."""
        async with self.db.read() as conn:
            row = await rows.get_customization(conn, uid)
        if row is None or not await self._visible(subject, row):
            raise NotFound(f"no customization {uid!r} that you can see", {"id": uid})
        return row

    async def find(
        self,
        subject: Subject,
        *,
        namespace: str | None = None,
        repository: str | None = None,
        after_id: int = 0,
        limit: int = 50,
    ) -> list[CustomizationRow]:
        """Customizations `subject` may see, in id order after `after_id`."""
        seen: list[CustomizationRow] = []
        while len(seen) < limit:
            async with self.db.read() as conn:
                batch = await rows.find_customizations(
                    conn, namespace=namespace, repository=repository, after_id=after_id, limit=limit
                )
            seen += [row for row in batch if await self._visible(subject, row)]
            if len(batch) < limit:
                break
            after_id = batch[-1].id
        return seen[:limit]

    async def builds(
        self, subject: Subject, uid: str, *, before_id: int | None = None, limit: int = 50
    ) -> list[BuildRow]:
        """A customization's builds, newest first."""
        row = await self.get(subject, uid)
        async with self.db.read() as conn:
            return await rows.find_builds(conn, row.id, before_id=before_id, limit=limit)

    async def build(self, subject: Subject, uid: str, build_id: int) -> tuple[BuildRow, str]:
        """One build of a customization and its log."""
        row = await self.get(subject, uid)
        async with self.db.read() as conn:
            found = await rows.get_build(conn, build_id)
            log = await rows.build_log(conn, build_id) if found is not None else None
        if found is None or found.customization_id != row.id:
            raise NotFound(f"customization {uid!r} has no build {build_id}", {"build": build_id})
        return found, log or ""

    async def rebuild(self, subject: Subject, uid: str) -> list[int]:
        """Queue a build of each target now (a person asked); the builds' ids."""
        current = await self._editable(subject, uid)
        async with self.db.write() as conn:
            queued = [
                await self.queue_build(
                    conn, current.id, t.repository_id, t.base_tag, "manual", None
                )
                for t in current.targets
            ]
        self.wake()
        return queued

    async def search_packages(
        self, subject: Subject, repository: str, tag: str, platform: str, query: str
    ) -> list[dict[str, str]]:
        """The packages a customization of `repository:tag` can add whose names contain
        `query` (whoever may pull from the repository): the packages drop-down."""
        await self.registry.repositories.require(subject, repository, Action.PULL)
        packages = self.packages()
        namespace = namespace_of(repository) or ""
        place = StoreTarget(self.registry, builder_subject(namespace))
        ref = Reference(LOCAL_REGISTRY, repository, tag)
        wanted = Platform.parse(platform)
        base = await image_for_platform(
            place, ref, wanted, field="platform", what=f"{repository}:{tag}"
        )
        rootfs = await read_base(self.workdir, place, ref.with_digest(base.digest), base)
        if packages is None:
            return []
        return await packages.search(rootfs, wanted, query)

    @staticmethod
    def document(row: CustomizationRow) -> Customization:
        """The row's customization, with its id."""
        return from_fields({**orjson.loads(row.document), "id": row.uid})

    async def queue_build(
        self,
        conn: AsyncConnection,
        customization_id: int,
        repository_id: int,
        base_tag: str,
        trigger: str,
        detail: str | None,
    ) -> int:
        build_id = await rows.insert_build(
            conn,
            customization_id=customization_id,
            repository_id=repository_id,
            base_tag=base_tag,
            trigger=trigger,
            trigger_detail=detail,
            now=time.time(),
        )
        job_id = await self.queue.enqueue(
            BUILD_JOB,
            {"build_id": build_id},
            max_attempts=_BUILD_ATTEMPTS,
            conn=conn,
        )
        await rows.update_build(conn, build_id, job_id=job_id)
        return build_id

    async def _check(self, subject: Subject, custom: Customization, owned_by: int | None) -> str:
        """The organization of `custom`'s targets, once everything it names may be used."""
        namespaces = {namespace_of(t.destination) for t in custom.targets}
        if len(namespaces) != 1:
            raise Invalid(
                "targets: every target must be a repository of one organization",
                {"field": "targets"},
            )
        namespace = namespaces.pop()
        assert namespace is not None  # the model requires NAMESPACE/NAME
        async with self.db.read() as conn:
            for i, target in enumerate(custom.targets):
                field = f"targets[{i}]"
                repository = await self._repository(
                    subject, target.destination, Action.PUSH, f"{field}.destination"
                )
                kinds = await mirror_rows.mirrored_kinds(conn, repository.id)
                if "image" not in kinds:
                    raise Invalid(
                        f"{field}.destination: {target.destination} is not a mirrored image "
                        "repository: mirror one from the catalog first",
                        {"field": f"{field}.destination"},
                    )
                if await repository_rows.tag_digest(conn, repository.id, target.base_tag) is None:
                    raise Invalid(
                        f"{field}.tag: {target.destination} has no tag {target.base_tag!r}",
                        {"field": f"{field}.tag"},
                    )
                result = custom.result_tag(target)
                owner = await rows.owner_of_tag(conn, repository.id, result)
                taken = await repository_rows.tag_digest(conn, repository.id, result)
                if (owner is not None and owner != owned_by) or (owner is None and taken):
                    raise Conflict(
                        f"tag_suffix: {target.destination}:{result} is a tag this "
                        "customization does not own: choose another tag_suffix",
                        {"field": "tag_suffix", "tag": result},
                    )
            for i, artifact in enumerate(custom.contents.artifacts):
                await self._check_artifact(subject, conn, namespace, i, artifact.name)
        return namespace

    async def _check_artifact(
        self, subject: Subject, conn: AsyncConnection, namespace: str, i: int, name: str
    ) -> None:
        field = f"contents.artifacts[{i}].name"
        repository_name, tag, _ = split_reference(name)
        if namespace_of(repository_name) != namespace:
            raise Invalid(
                f"{field}: {repository_name} is outside {namespace}: artifacts come from "
                "repositories of the same organization",
                {"field": field},
            )
        repository = await self._repository(subject, repository_name, Action.PULL, field)
        if tag is not None and await repository_rows.tag_digest(conn, repository.id, tag) is None:
            raise Invalid(f"{field}: {repository_name} has no tag {tag!r}", {"field": field})

    async def _repository(
        self, subject: Subject, name: str, action: Action, field: str | None = None
    ) -> repository_rows.RepositoryRow:
        try:
            return await self.registry.repositories.require(subject, name, action)
        except NameUnknown:
            where = f"{field}: " if field else ""
            raise Invalid(f"{where}there is no repository {name}", {"field": field}) from None

    async def _targets(
        self, conn: AsyncConnection, custom: Customization
    ) -> Sequence[tuple[int, str, str]]:
        found = []
        for target in custom.targets:
            repository = await repository_rows.by_name(conn, target.destination)
            assert repository is not None  # checked by _check
            found.append((repository.id, target.base_tag, custom.result_tag(target)))
        return found

    async def _editable(self, subject: Subject, uid: str) -> CustomizationRow:
        row = await self.get(subject, uid)
        for target in row.targets:
            await self.registry.repositories.require(subject, target.repository, Action.PUSH)
        creator = subject.name or subject.org
        if creator != row.created_by and not may_manage(subject, row.namespace):
            raise Denied(
                f"customization {uid!r} was created by {row.created_by!r}: only they and the "
                f"owners of {row.namespace!r} may change it"
            )
        return row

    async def _visible(self, subject: Subject, row: CustomizationRow) -> bool:
        for target in row.targets:
            try:
                await self.registry.repositories.authorize(subject, target.repository, Action.PULL)
                return True
            except (Denied, Unauthorized):
                continue
        return not row.targets and may_manage(subject, row.namespace)
