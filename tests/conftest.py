"""Shared fixtures: real peers (`support.peers`, `support.postgres`), the app in process
(`support.inprocess`), clients for loopback registries (`support.remote`); and the rules that
let the suite run in parallel and without PostgreSQL (`support.rules`)."""

pytest_plugins = [
    "support.peers",
    "support.postgres",
    "support.rules",
    "support.inprocess",
    "support.remote",
]
