#!/usr/bin/env bash
# Regenerates docs/reference/ (one Markdown page per module and role, from their own documentation).
#   bash scripts/build_docs.sh           # write the pages
#   bash scripts/build_docs.sh --check   # fail (exit 1) when the committed pages are out of date
#   bash scripts/build_docs.sh --head    # document the committed tree (HEAD), not work in progress
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "build_docs: .venv is missing: run 'make setup' first" >&2; exit 2; }
if [ "${1:-}" = "--head" ]; then
  shift
  tree=$(mktemp -d "${TMPDIR:-/tmp}/cws-docs-head.XXXXXX")
  trap 'rm -rf "$tree"' EXIT
  git archive HEAD | tar -x -C "$tree"
  "$py" scripts/build_docs.py --source "$tree" "$@"
  exit $?
fi
exec "$py" scripts/build_docs.py "$@"
