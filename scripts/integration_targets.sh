#!/usr/bin/env bash
# Runs the ansible-test integration targets (tests/integration/targets/<module>/, one per module, needing
# nothing but the machine: loopback, a temporary directory) against the collection as ansible-test wants it:
# the files git knows copied to a private ansible_collections/<ns>/<name> tree, as scripts/sanity.sh does.
#   bash scripts/integration_targets.sh                 # every target
#   bash scripts/integration_targets.sh readiness_probe gate   # some of them
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/collection_copy.sh
. scripts/collection_copy.sh
collection_copy integration
pyver=$("$root/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# --local: the targets run with this checkout's Python and ansible-core, on this machine (connection local).
"$root/.venv/bin/ansible-test" integration --local --python "$pyver" --color no "$@"
