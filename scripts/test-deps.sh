#!/usr/bin/env bash
# Install the Debian packages the tests run as real peers; a quick no-op when all are present.
set -euo pipefail

# package:command pairs; the command proves the package is usable, dpkg proves it is installed.
readonly DEPS=(
  "skopeo:skopeo"
  "podman:podman"
  "docker-registry:docker-registry"
  "postgresql:pg_ctlcluster"
  "apache2-utils:htpasswd"
  "wrk:wrk"
  "curl:curl"
  "umoci:umoci"
  "apt-utils:apt-ftparchive"
  "mmdebstrap:mmdebstrap"
  "gpg:gpg"
  "dpkg-dev:dpkg-scanpackages"
)

missing=()
for dep in "${DEPS[@]}"; do
  package="${dep%%:*}"
  command_name="${dep#*:}"
  if ! dpkg -s "$package" >/dev/null 2>&1 || ! command -v "$command_name" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

echo "test-deps: installing ${missing[*]}" >&2

if ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: apt-get not found; install these Debian packages by hand: ${missing[*]}" >&2
  exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo --non-interactive)
  else
    echo "test-deps: not root and sudo is not available; as root run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
# With recommends, as on the machines the tests were written on (podman recommends uidmap,
# fuse-overlayfs, catatonit, ...).
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"

# Verify: a package that installed without its command is as good as missing.
for dep in "${DEPS[@]}"; do
  command_name="${dep#*:}"
  if ! command -v "$command_name" >/dev/null 2>&1; then
    echo "test-deps: ${dep%%:*} installed but '$command_name' is not on PATH" >&2
    exit 1
  fi
done
