"""The keys of the sync config: which each section knows, and which regsync ones Dockyard
refuses (each with the reason the error gives).
"""

from __future__ import annotations

TOP_KEYS = ("version", "creds", "defaults", "sync")
CREDS_KEYS = (
    "registry",
    "hostname",
    "user",
    "pass",
    "tls",
    "scheme",
    "regcert",
    "reqPerSec",
    "reqConcurrent",
    "blobChunk",
)
COMMON_KEYS = (
    "interval",
    "schedule",
    "ratelimit",
    "referrers",
    "referrerFilters",
    "referrerSource",
    "referrerTarget",
    "digestTags",
    "fastCheck",
    "forceRecursive",
    "includeExternal",
    "platforms",
    "mediaTypes",
)
DEFAULTS_KEYS = (*COMMON_KEYS, "parallel", "skipDockerConfig", "userAgent")
SYNC_KEYS = (
    *COMMON_KEYS,
    "source",
    "target",
    "type",
    "tags",
    "tagSets",
    "repos",
    "platform",
    "fastCopy",
)
FILTER_KEYS = ("allow", "deny")
RATELIMIT_KEYS = ("min", "retry")
REFERRER_FILTER_KEYS = ("artifactType", "annotations")

_NOT_SUPPORTED = "a regsync setting dockyard sync does not support"
UNSUPPORTED_CREDS = dict.fromkeys(
    (
        "credHelper",
        "credExpire",
        "credHost",
        "pathPrefix",
        "mirrors",
        "priority",
        "repoAuth",
        "api",
        "apiOpts",
        "blobMax",
        "clientCert",
        "clientKey",
        "token",
        "dns",
    ),
    _NOT_SUPPORTED,
)
UNSUPPORTED_CREDS["credHelper"] = (
    "credential helpers are not run by dockyard; use user/pass (with {{file}} or {{env}}), "
    "`dockyard registry login`, or Docker's config.json"
)
UNSUPPORTED_COMMON = {
    "backup": "backups of overwritten tags are not made by dockyard sync",
    "hooks": "hooks are not run by dockyard sync",
    "referrerSlow": _NOT_SUPPORTED,
}
UNSUPPORTED_DEFAULTS = {
    **UNSUPPORTED_COMMON,
    "blobLimit": _NOT_SUPPORTED,
    "cacheCount": _NOT_SUPPORTED,
    "cacheTime": _NOT_SUPPORTED,
}
UNSUPPORTED_FILTER = {"semverRange": "semver ranges are not supported; use allow/deny regexes"}


# keys in the wrong section: where they belong
HOMES = {
    **{key: "`defaults`" for key in DEFAULTS_KEYS if key not in SYNC_KEYS},
    **{key: "a `sync` entry" for key in SYNC_KEYS if key not in DEFAULTS_KEYS},
}
