#!/usr/bin/env bash
# One-command set-up: virtualenv with pinned requirements, the collection made importable
# under .build/collections, and the ansible-test get-pip stand-in. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PYTHON=${PYTHON:-python3}

die() { echo "bootstrap: $*" >&2; exit 2; }

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "Python 3.11 or newer is required (found: $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11."
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || die "Python's venv/ensurepip is missing: install the python3-venv package."

# PostgreSQL server and client binaries are a system prerequisite (the tests start a real server).
bash scripts/system_packages.sh check postgres \
  || die "PostgreSQL is a prerequisite (above; a server elsewhere than the Debian path: set PG_BINDIR)."

stamp=.venv/.requirements-stamp
want=$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python requirements into .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
  echo "$want" > "$stamp"
fi

# The collection, importable by its FQCN from this checkout.
mkdir -p .build/collections/ansible_collections/cleanwithsnapshot
ln -sfn "$root" .build/collections/ansible_collections/cleanwithsnapshot/release

# Collections the AWX tooling needs (awx.awx), from the ansible package on PyPI (no Galaxy here).
bash scripts/fetch_collections.sh >/dev/null

# ansible-test downloads get-pip from a host this network cannot reach; a stand-in that uses
# ensurepip does the same job.
mkdir -p "$HOME/.ansible/test/cache"
for ver in 24_2 25_2 25_3; do
  target="$HOME/.ansible/test/cache/get_pip_${ver}.py"
  [ -f "$target" ] || cp scripts/get_pip_standin.py "$target"
done
echo "bootstrap: ready (.venv, .build/collections)"
