#!/usr/bin/env bash
# Regenerates docs/reference/ (one Markdown page per module and role, from their own documentation).
#   bash scripts/build_docs.sh           # write the pages
#   bash scripts/build_docs.sh --check   # fail (exit 1) when the committed pages are out of date
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "build_docs: .venv is missing: run 'make setup' first" >&2; exit 2; }
exec "$py" scripts/build_docs.py "$@"
