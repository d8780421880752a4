"""Debian and Ubuntu packages without apt or dpkg: signed indexes, dependency resolution, `.deb`
files unpacked in process, and the dpkg database written as dpkg would."""
