#!/usr/bin/env bash
# Runs Molecule scenarios (default: default nogo drill canary), each with a HOME of its own, against the
# collection linked under .build/collections.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(default nogo drill canary)
failed=()
for scenario in "${scenarios[@]}"; do
  home=$(mktemp -d "${TMPDIR:-/tmp}/cws-molecule-home.XXXXXX")
  echo "=== molecule test -s $scenario"
  started=$(date +%s)
  if HOME="$home" molecule test -s "$scenario"; then
    echo "molecule: $scenario passed in $(( $(date +%s) - started )) s"
  else
    failed+=("$scenario")
  fi
  rm -rf "$home"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: FAILED scenarios: ${failed[*]}" >&2
  exit 1
fi
