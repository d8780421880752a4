"""The metadata schema. Migrations under `migrations/versions` create exactly these tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

namespaces = Table(
    "namespaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # "user" or "org"
    Column("created_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("namespace_id", Integer, ForeignKey("namespaces.id"), nullable=False),
    Column("created_at", Float, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column(
        "namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # "owner" or "member"
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    # set for an organization access token: it acts for the organization, not for a user
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), nullable=True),
    Column("scope", String(16), nullable=False),  # "read", "write" or "delete"
    Column("expires_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id"), nullable=True),
    Column("visibility", String(16), nullable=False, default="private"),
    Column("immutable_tags", Boolean, nullable=False, default=False),
    # an index may name manifests the repository lacks; None: the site's `index_platforms`
    Column("sparse_indexes", Boolean, nullable=True),
    Column("created_at", Float, nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    # moved forward by every push or mount; garbage collection spares recent blobs
    Column("last_linked_at", Float, nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), ForeignKey("blobs.digest"), primary_key=True),
    Column("last_used_at", Float, nullable=False),
)

manifests = Table(
    "manifests",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(200), primary_key=True),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("subject_digest", String(200), nullable=True),
    Column("annotations", Text, nullable=True),  # JSON, for the referrers API
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),  # the exact bytes received
    Column("created_at", Float, nullable=False),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
)

manifest_references = Table(
    "manifest_references",
    metadata,
    Column("repository_id", Integer, primary_key=True),
    Column("manifest_digest", String(200), primary_key=True),
    Column("target_digest", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),  # "blob" or "manifest"
    Index("ix_manifest_references_target", "repository_id", "target_digest"),
)

tags = Table(
    "tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(128), primary_key=True),
    Column("digest", String(200), nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_tags_digest", "repository_id", "digest"),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    UniqueConstraint("key"),
)

# --- the hub: catalog, mirrors, jobs, events, webhooks, pull-through cache ---------------------

catalog_entries = Table(
    "catalog_entries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # "image" or "chart"
    Column("description", Text, nullable=False, default=""),
    # where the images are: a full repository reference without tag, e.g. dhi.io/python
    Column("source", String(512), nullable=False),
    Column("source_tls", String(16), nullable=False),  # "enabled", "insecure", "disabled"
    Column("username", String(255), nullable=True),
    Column("password", Text, nullable=True),  # needed in clear to log in upstream
    # where their signed attestations are (referrers), when not beside the images
    Column("attestation_source", String(512), nullable=True),
    Column("attestation_tls", String(16), nullable=True),
    Column("attestation_username", String(255), nullable=True),
    Column("attestation_password", Text, nullable=True),
    Column("eol_pattern", String(512), nullable=True),  # anchored regex of end-of-life tags
    # the secret in the URL upstream notifies (a Docker Hub-style webhook); only its hash
    Column("hook_token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

catalog_tags = Table(
    "catalog_tags",
    metadata,
    Column(
        "entry_id", Integer, ForeignKey("catalog_entries.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("tag", String(128), primary_key=True),
    Column("digest", String(200), nullable=False),
    Column("variant", String(64), nullable=False),  # "standard", "dev", "fips", ...
    Column("eol", Boolean, nullable=False, default=False),
    Column("updated_at", Float, nullable=False),
)

mirrors = Table(
    "mirrors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entry_id", Integer, ForeignKey("catalog_entries.id"), nullable=False),
    Column(
        "repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    Column("include_eol", Boolean, nullable=False, default=False),
    # "active", "paused" (the repository was made public), "stopped"
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("interval_seconds", Float, nullable=True),  # None: the site default
    Column("next_sync_at", Float, nullable=True),
    Column("last_synced_at", Float, nullable=True),
    Column("tags_total", Integer, nullable=False, default=0),
    Column("tags_done", Integer, nullable=False, default=0),
    Column("bytes_done", BigInteger, nullable=False, default=0),
    UniqueConstraint("entry_id", "repository_id"),
    Index("ix_mirrors_repository", "repository_id"),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("mirror_id", Integer, ForeignKey("mirrors.id", ondelete="CASCADE"), nullable=False),
    Column("trigger", String(16), nullable=False),  # "create", "schedule", "webhook", "manual"
    Column("outcome", String(16), nullable=False),  # "running", "succeeded", "failed", "skipped"
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("tags_added", Integer, nullable=False, default=0),
    Column("tags_updated", Integer, nullable=False, default=0),
    Column("tags_unchanged", Integer, nullable=False, default=0),
    Column("referrers_copied", Integer, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Index("ix_sync_runs_mirror", "mirror_id", "started_at"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    # "queued", "running", "succeeded", "failed" (gave up), "cancelled"
    Column("state", String(16), nullable=False),
    # while queued or running, at most one job per key ("sync:3"); cleared when it ends
    Column("dedupe_key", String(255), nullable=True, unique=True),
    # asked for again while running: queued once more when this run succeeds
    Column("rerun", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("run_after", Float, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("progress", Text, nullable=True),  # JSON, the handler's own report
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Index("ix_jobs_due", "state", "run_after"),
)

# An outbox: a row per tag pushed or moved, written in the transaction that moved the tag, so
# no event is lost and none is announced for a push that rolled back.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),  # "push"
    Column(
        "repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    Column("tag", String(128), nullable=False),
    Column("old_digest", String(200), nullable=True),
    Column("new_digest", String(200), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("pusher", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("dispatched", Boolean, nullable=False, default=False),
    Index("ix_events_pending", "dispatched", "id"),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(255), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=True),  # needed in clear to sign deliveries
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("repository_id", "name"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Integer, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("event_uuid", String(64), nullable=False, unique=True),
    Column("payload", Text, nullable=False),  # JSON, exactly the bytes sent
    # "pending", "delivered", "failed" (gave up)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("response_status", Integer, nullable=True),
    Column("response_excerpt", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    # the receiver's answer through callback_url: "success", "failure" or "error"
    Column("callback_token_hash", String(64), nullable=False, unique=True),
    Column("callback_state", String(16), nullable=True),
    Column("callback_description", Text, nullable=True),
    Column("callback_context", Text, nullable=True),
    Column("callback_target_url", Text, nullable=True),
    Column("callback_at", Float, nullable=True),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
    UniqueConstraint("webhook_id", "event_id"),  # one delivery per event, even if dispatched twice
)

# The pull-through cache: when each cached tag was last checked upstream.
proxy_tags = Table(
    "proxy_tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(128), primary_key=True),
    Column("fetched_at", Float, nullable=False),
)

# Token buckets of the limits (rate limit, failed sign-ins) where several nodes share the
# database: one row per bucket, keyed by a hash of its name. Used on PostgreSQL only (SQLite
# means one host, whose workers share an mmap'd table instead). A row whose `idle_at` has
# passed holds nothing worth keeping (the bucket is full again) and may be deleted.
limit_buckets = Table(
    "limit_buckets",
    metadata,
    Column("key", LargeBinary(16), primary_key=True),
    Column("stamp", Float, nullable=False),
    Column("tokens", Float, nullable=False),
    Column("taken", Integer, nullable=False),  # what the last lease took (RETURNING sees it)
    Column("idle_at", Float, nullable=False),
    Index("ix_limit_buckets_idle_at", "idle_at"),
)

# A customization (build/model.py): a document kept as JSON, and one row per target it builds
# (a mirrored repository and base tag), so that a repository's customizations, and the tags
# they own, are found by query.
customizations = Table(
    "customizations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(32), nullable=False, unique=True),  # the id users see (Docker's `id`)
    Column("namespace_id", Integer, ForeignKey("namespaces.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("document", Text, nullable=False),  # JSON, as to_fields writes it
    Column("created_by", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_customizations_namespace", "namespace_id"),
)

customization_targets = Table(
    "customization_targets",
    metadata,
    Column(
        "customization_id",
        Integer,
        ForeignKey("customizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("base_tag", String(128), primary_key=True),
    Column("result_tag", String(128), nullable=False),
    UniqueConstraint("repository_id", "result_tag"),  # a tag has one owner
    Index("ix_customization_targets_base", "repository_id", "base_tag"),
)

# One build of one target of a customization: why it ran, the lock of every input digest it
# used, what changed against the build before, and what it made. A failed build keeps the
# last good image and says why.
builds = Table(
    "builds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "customization_id",
        Integer,
        ForeignKey("customizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False
    ),
    Column("base_tag", String(128), nullable=False),
    # "created", "edited", "base", "artifact", "packages", "manual"
    Column("trigger", String(16), nullable=False),
    Column("trigger_detail", Text, nullable=True),
    # "queued", "running", "succeeded", "unchanged" (the lock matched the last one), "failed"
    Column("status", String(16), nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
    Column("lock", Text, nullable=True),  # JSON: every input digest
    Column("changes", Text, nullable=True),  # JSON: against the previous good build
    Column("result_digest", String(80), nullable=True),  # the index pushed
    Column("outputs", Text, nullable=True),  # JSON: per-platform manifests; later signatures
    Column("error", Text, nullable=True),
    Column("log", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ix_builds_customization", "customization_id", "id"),
)
