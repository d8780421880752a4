"""Shared fixtures: real peers (`support.peers`, `support.postgres`), the app in process
(`support.inprocess`), clients for loopback registries (`support.remote`); and the rules that
let the suite run in parallel and without PostgreSQL (`support.rules`)."""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = [
    "support.peers",
    "support.postgres",
    "support.debian",
    "support.rules",
    "support.inprocess",
    "support.remote",
    "support.aptrepo",
]

# Hypothesis checks what a function does, not how fast: no per-example deadline and no
# "generation is slow" health check, which fail on a loaded machine (parallel workers, CI).
settings.register_profile("dockyard", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dockyard"))
