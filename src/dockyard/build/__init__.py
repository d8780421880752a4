"""Customizations: daemonless, reproducible builds that add layers to a mirrored base image.

Package sources (`apt/`: Debian and Ubuntu) fetch only what a signature or a digest vouches
for; the builder reads and writes images through the Target protocol; only `hub/` decides when
a build runs.
"""
