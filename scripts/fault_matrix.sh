#!/usr/bin/env bash
# The whole fault matrix from one command: every fault case (tests/integration/matrix/matrix_cases.py) through
# verify.yml or release.yml, the database-cluster-stopped and TLS cases, the flake detector (CWS_FLAKE_RUNS healthy
# runs in a row, default 20) and the secret canaries. CI runs the representative subset instead:
#   python -m pytest tests/integration/matrix -m "not matrix_full"
# Extra arguments go to pytest (for example -k policy, or -x).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
if [ ! -x .venv/bin/python ] || [ ! -d .build/collections ]; then
  echo "fault_matrix: run 'make setup' first" >&2
  exit 2
fi
export CWS_MATRIX_FULL=1
exec python -m pytest tests/integration/matrix -p no:cacheprovider -ra "$@"
