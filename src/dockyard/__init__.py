"""Dockyard: a self-hosted hub for hardened container images, on a complete OCI registry."""

__version__ = "0.1.0"
