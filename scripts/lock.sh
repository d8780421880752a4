#!/usr/bin/env bash
# Regenerate requirements/*.txt, exact versions with hashes, from pyproject.toml (`make lock`).
# Pins already in those files are kept while they still fit, so adding a dependency moves only
# what it needs; `--upgrade` (`make lock-upgrade`) moves everything to the newest allowed.
# The locks are universal (any platform, Python >= 3.11), so they do not depend on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

uv=${UV:-.venv/bin/uv}
common=(pip compile --quiet --no-config --universal --python-version 3.11 --generate-hashes
        --custom-compile-command "make lock")
if [ "${1:-}" = "--upgrade" ]; then
  common+=(--upgrade)
fi

mkdir -p requirements
# What `make run` installs: the package's own dependencies.
"$uv" "${common[@]}" pyproject.toml -o requirements/runtime.txt
# What `make test` installs: the same versions, plus the test and lint groups.
"$uv" "${common[@]}" pyproject.toml --group test --group lint -c requirements/runtime.txt \
  -o requirements/test.txt
# pip, and the build backend pyproject.toml asks for (the editable install builds with it).
python3 -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print("pip", *tomllib.load(f)["build-system"]["requires"], sep="\n")
' | "$uv" "${common[@]}" - -o requirements/build.txt
# uv itself, for the next `make lock`.
"$uv" "${common[@]}" --group lock -o requirements/uv.txt
