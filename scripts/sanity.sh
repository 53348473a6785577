#!/usr/bin/env bash
# ansible-test sanity on a private copy of the files git knows (scripts/collection_copy.sh says why).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/collection_copy.sh
. scripts/collection_copy.sh
collection_copy sanity
pyver=$("$root/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$root/.venv/bin/ansible-test" sanity --venv --python "$pyver" --color no ${SANITY_ARGS:-}
