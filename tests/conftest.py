"""Shared fixtures: real peers (`support.peers`), the app in process (`support.inprocess`),
clients for loopback registries (`support.remote`)."""

pytest_plugins = ["support.peers", "support.inprocess", "support.remote"]
