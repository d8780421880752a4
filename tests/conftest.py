"""Shared fixtures: real peers over loopback come from `support.peers`."""

pytest_plugins = ["support.peers", "support.inprocess"]
